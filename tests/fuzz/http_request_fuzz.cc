// libFuzzer target: the HTTP request path (http_parser through
// HttpRequestParser) on arbitrary bytes, fed in pieces whose sizes come from
// the input, with small limits so they are crossed.
#include <cstddef>
#include <cstdint>
#include <string>

#include "triggers/http_request_parser.h"

namespace {

class CountingSink : public wisp::triggers::HttpRequestParser::Sink {
 public:
  void OnContinueExpected(const wisp::triggers::HttpRequest&) override { ++continues; }
  void OnRequest(wisp::triggers::HttpRequest request,
                 const wisp::triggers::ResponseFraming&) override {
    bytes += request.body.size() + request.path.size();
  }
  size_t continues = 0;
  size_t bytes = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  wisp::triggers::HttpServerOptions options;
  options.max_header_bytes = 4096;
  options.max_body_bytes = 8192;
  const size_t piece = 1 + data[0] % 64;  // how the bytes arrive
  ++data;
  --size;
  CountingSink sink;
  wisp::triggers::HttpRequestParser parser(&options, &sink);
  for (size_t at = 0; at < size; at += piece) {
    wisp::triggers::ParseError error;
    const size_t n = size - at < piece ? size - at : piece;
    const auto outcome = parser.Execute(reinterpret_cast<const char*>(data) + at, n, &error);
    if (outcome == wisp::triggers::HttpRequestParser::Outcome::kFailed) {
      // A failure always answers with a status and a reason.
      if (error.status < 400 || error.status > 599 || error.code.empty()) __builtin_trap();
      break;
    }
    if (outcome == wisp::triggers::HttpRequestParser::Outcome::kStopped) break;
  }
  return 0;
}
