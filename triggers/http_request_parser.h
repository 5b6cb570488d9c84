// Internal to the HTTP trigger: turns one connection's bytes into HttpRequests
// with a reused http_parser, enforcing the body and header limits.
// Threading: one connection's parser, used on the loop thread only.
#ifndef WISP_TRIGGERS_HTTP_REQUEST_PARSER_H_
#define WISP_TRIGGERS_HTTP_REQUEST_PARSER_H_

#include <http_parser.h>

#include <cstdint>
#include <string>

#include "triggers/http_server.h"
#include "triggers/http_wire.h"

namespace wisp::triggers {

// Why input was rejected: the error reply to send before closing.
struct ParseError {
  int status = 400;
  std::string code;
  std::string message;
};

class HttpRequestParser {
 public:
  // Receives what the parser finds; called from inside Execute.
  class Sink {
   public:
    virtual ~Sink() = default;
    // The client waits for "100 Continue" before sending request's body.
    virtual void OnContinueExpected(const HttpRequest& request) = 0;
    // A complete request and how its reply must be framed. May call Stop().
    virtual void OnRequest(HttpRequest request, const ResponseFraming& framing) = 0;
  };

  enum class Outcome {
    kNeedMore,  // all bytes consumed
    kStopped,   // Stop() was called (or a protocol upgrade): later bytes ignored
    kFailed,    // malformed or over a limit; *error says what to answer
  };

  // options and sink are borrowed and must outlive the parser.
  HttpRequestParser(const HttpServerOptions* options, Sink* sink);
  HttpRequestParser(const HttpRequestParser&) = delete;
  HttpRequestParser& operator=(const HttpRequestParser&) = delete;

  Outcome Execute(const char* data, size_t length, ParseError* error);
  // Ignores everything after the current request; final.
  void Stop();

  // Where the parser is: between requests, reading a request's line and
  // headers, or reading its body (for read timeouts).
  enum class Phase { kIdle, kHeaders, kBody };
  Phase phase() const { return phase_; }

 private:
  static HttpRequestParser* From(http_parser* parser);
  static int OnMessageBegin(http_parser* parser);
  static int OnUrl(http_parser* parser, const char* at, size_t length);
  static int OnHeaderField(http_parser* parser, const char* at, size_t length);
  static int OnHeaderValue(http_parser* parser, const char* at, size_t length);
  static int OnHeadersComplete(http_parser* parser);
  static int OnBody(http_parser* parser, const char* at, size_t length);
  static int OnChunkHeader(http_parser* parser);
  static int OnMessageComplete(http_parser* parser);
  static const http_parser_settings& Settings();

  bool AddHeaderBytes(size_t length);
  int Reject(int status, std::string code, std::string message);

  const HttpServerOptions* options_;
  Sink* sink_;
  http_parser parser_;
  bool stopped_ = false;
  Phase phase_ = Phase::kIdle;
  // The request being parsed.
  HttpRequest request_;
  bool in_header_value_ = false;
  size_t header_bytes_ = 0;
  uint64_t chunked_bytes_ = 0;
  size_t body_limit_ = 0;  // for the request being parsed
  int limit_status_ = 0;  // 413 or 431 when a callback rejected the request
  ParseError rejected_{0, "", ""};  // other refusals by a callback (status 0: none)
};

}  // namespace wisp::triggers

#endif  // WISP_TRIGGERS_HTTP_REQUEST_PARSER_H_
