// libFuzzer target: the CloudEvents decoder. The input is headers, one
// "name:value" per line, then an empty line, then the payload.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "triggers/cloudevents.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  wisp::triggers::BrokerMessage message;
  message.subject = "fuzz.events";
  while (!input.empty()) {
    const size_t end = input.find('\n');
    std::string_view line = input.substr(0, end);
    input = end == std::string_view::npos ? std::string_view() : input.substr(end + 1);
    if (line.empty()) break;
    const size_t colon = line.find(':');
    message.headers.push_back({std::string(line.substr(0, colon)),
                               colon == std::string_view::npos ? std::string()
                                                               : std::string(line.substr(colon + 1))});
  }
  message.data = std::string(input);
  wisp::Status s = wisp::triggers::NormalizeCloudEvent(&message, {"/fuzz", "io.wisp.fuzz"});
  if (s.ok()) {
    // An accepted event has its required attributes.
    for (const char* name : {"ce-id", "ce-source", "ce-type", "ce-specversion"}) {
      if (wisp::triggers::FindHeader(message.headers, name) == nullptr) __builtin_trap();
    }
  }
  return 0;
}
