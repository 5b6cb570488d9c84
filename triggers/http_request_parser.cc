// Request parsing for the HTTP trigger on top of http_parser's callbacks.
#include "triggers/http_request_parser.h"

#include <algorithm>
#include <string_view>

#include "runtime/base/ascii.h"

namespace wisp::triggers {
namespace {

constexpr int kPayloadTooLarge = 413;
constexpr int kHeadersTooLarge = 431;
// on_headers_complete: 1 and 2 mean "skip the body"; other nonzero values fail.
constexpr int kRejectHeaders = 3;

bool IsContinueExpected(const HttpRequest& request) {
  if (request.http_major != 1 || request.http_minor == 0) return false;
  const std::string* expect = request.Header("expect");
  return expect != nullptr && EqualsIgnoreCase(*expect, "100-continue");
}

// "path?query#fragment" into path and query.
void SplitUrl(HttpRequest* request) {
  std::string_view url = request->url;
  url = url.substr(0, url.find('#'));
  size_t question = url.find('?');
  request->path.assign(url.substr(0, question));
  if (question != std::string_view::npos) request->query.assign(url.substr(question + 1));
}

}  // namespace

const std::string* HttpRequest::Header(std::string_view name) const {
  for (const auto& header : headers) {
    if (header.first == name) return &header.second;
  }
  return nullptr;
}

HttpRequestParser::HttpRequestParser(const HttpServerOptions* options, Sink* sink)
    : options_(options), sink_(sink) {
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
}

const http_parser_settings& HttpRequestParser::Settings() {
  static const http_parser_settings settings = [] {
    http_parser_settings s;
    http_parser_settings_init(&s);
    s.on_message_begin = OnMessageBegin;
    s.on_url = OnUrl;
    s.on_header_field = OnHeaderField;
    s.on_header_value = OnHeaderValue;
    s.on_headers_complete = OnHeadersComplete;
    s.on_body = OnBody;
    s.on_chunk_header = OnChunkHeader;
    s.on_message_complete = OnMessageComplete;
    return s;
  }();
  return settings;
}

HttpRequestParser::Outcome HttpRequestParser::Execute(const char* data, size_t length,
                                                      ParseError* error) {
  if (stopped_) return Outcome::kStopped;
  size_t parsed = http_parser_execute(&parser_, &Settings(), data, length);
  http_errno errno_value = HTTP_PARSER_ERRNO(&parser_);
  if (stopped_ || errno_value == HPE_PAUSED) return Outcome::kStopped;
  if (errno_value == HPE_OK && parsed == length) return Outcome::kNeedMore;
  if (rejected_.status != 0) {
    *error = rejected_;
  } else if (limit_status_ == kPayloadTooLarge) {
    *error = {kPayloadTooLarge, "payload_too_large",
              "the request body is over the limit of " + std::to_string(body_limit_) + " bytes"};
  } else if (limit_status_ == kHeadersTooLarge || errno_value == HPE_HEADER_OVERFLOW) {
    *error = {kHeadersTooLarge, "headers_too_large", "the request headers are too large"};
  } else {
    *error = {400, "bad_request",
              std::string("malformed request: ") + http_errno_description(errno_value)};
  }
  return Outcome::kFailed;
}

void HttpRequestParser::Stop() {
  stopped_ = true;
  http_parser_pause(&parser_, 1);
}

HttpRequestParser* HttpRequestParser::From(http_parser* parser) {
  return static_cast<HttpRequestParser*>(parser->data);
}

bool HttpRequestParser::AddHeaderBytes(size_t length) {
  header_bytes_ += length;
  if (header_bytes_ <= options_->max_header_bytes) return true;
  limit_status_ = kHeadersTooLarge;
  return false;
}

int HttpRequestParser::Reject(int status, std::string code, std::string message) {
  rejected_ = {status, std::move(code), std::move(message)};
  return kRejectHeaders;  // nonzero fails every callback; 1 and 2 would not in on_headers_complete
}

namespace {

// RFC 9110's token characters: what a header name is made of (no space
// before the colon, which would let two parsers disagree on a header).
bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  for (char t : std::string_view("!#$%&'*+-.^_`|~")) {
    if (c == t) return true;
  }
  return false;
}

}  // namespace

int HttpRequestParser::OnMessageBegin(http_parser* parser) {
  HttpRequestParser* self = From(parser);
  self->phase_ = Phase::kHeaders;
  self->request_ = HttpRequest();
  self->request_.headers.reserve(8);
  self->in_header_value_ = false;
  self->header_bytes_ = 0;
  self->chunked_bytes_ = 0;
  self->body_limit_ = self->options_->max_body_bytes;
  return 0;
}

int HttpRequestParser::OnUrl(http_parser* parser, const char* at, size_t length) {
  HttpRequestParser* self = From(parser);
  if (!self->AddHeaderBytes(length)) return 1;
  self->request_.url.append(at, length);
  return 0;
}

int HttpRequestParser::OnHeaderField(http_parser* parser, const char* at, size_t length) {
  HttpRequestParser* self = From(parser);
  if (!self->AddHeaderBytes(length)) return 1;
  for (size_t i = 0; i < length; ++i) {
    if (!IsTokenChar(at[i])) {
      return self->Reject(400, "bad_request", "a header name holds a character other than a token's");
    }
  }
  HeaderList& headers = self->request_.headers;
  if (self->in_header_value_ || headers.empty()) {
    if (headers.size() >= self->options_->max_headers) {
      return self->Reject(kHeadersTooLarge, "headers_too_large",
                          "more than " + std::to_string(self->options_->max_headers) + " headers");
    }
    headers.emplace_back();
  }
  self->in_header_value_ = false;
  AppendLowerCase(at, length, &headers.back().first);
  return 0;
}

int HttpRequestParser::OnHeaderValue(http_parser* parser, const char* at, size_t length) {
  HttpRequestParser* self = From(parser);
  if (!self->AddHeaderBytes(length)) return 1;
  self->in_header_value_ = true;
  self->request_.headers.back().second.append(at, length);
  return 0;
}

int HttpRequestParser::OnHeadersComplete(http_parser* parser) {
  HttpRequestParser* self = From(parser);
  self->phase_ = Phase::kBody;
  HttpRequest& request = self->request_;
  request.method = http_method_str(static_cast<http_method>(parser->method));
  request.http_major = parser->http_major;
  request.http_minor = parser->http_minor;
  if (request.http_major != 1) {
    return self->Reject(505, "version_not_supported",
                        "HTTP/" + std::to_string(request.http_major) + "." +
                            std::to_string(request.http_minor) +
                            " is not supported (HTTP/1.0 and HTTP/1.1 are)");
  }
  if (request.http_minor >= 1 && request.Header("host") == nullptr) {
    return self->Reject(400, "bad_request", "an HTTP/1.1 request needs a Host header");
  }
  SplitUrl(&request);
  if (self->options_->body_limit) {
    self->body_limit_ = std::min(self->options_->max_body_bytes, self->options_->body_limit(request));
  }
  bool has_length = (parser->flags & F_CONTENTLENGTH) != 0;
  if (has_length && parser->content_length > self->body_limit_) {
    self->limit_status_ = kPayloadTooLarge;
    return kRejectHeaders;
  }
  if (has_length) request.body.reserve(parser->content_length);
  bool chunked = (parser->flags & F_CHUNKED) != 0;
  bool has_body = chunked || (has_length && parser->content_length > 0);
  if (has_body && IsContinueExpected(request)) self->sink_->OnContinueExpected(request);
  return 0;
}

int HttpRequestParser::OnBody(http_parser* parser, const char* at, size_t length) {
  HttpRequestParser* self = From(parser);
  if (self->request_.body.size() + length > self->body_limit_) {
    self->limit_status_ = kPayloadTooLarge;
    return 1;
  }
  self->request_.body.append(at, length);
  return 0;
}

int HttpRequestParser::OnChunkHeader(http_parser* parser) {
  HttpRequestParser* self = From(parser);
  self->chunked_bytes_ += parser->content_length;
  if (self->chunked_bytes_ > self->body_limit_) {
    self->limit_status_ = kPayloadTooLarge;
    return 1;
  }
  return 0;
}

int HttpRequestParser::OnMessageComplete(http_parser* parser) {
  HttpRequestParser* self = From(parser);
  self->phase_ = Phase::kIdle;
  ResponseFraming framing;
  // Protocol upgrades are not supported: the request is answered, then closed.
  framing.keep_alive = http_should_keep_alive(parser) != 0 && !parser->upgrade;
  framing.http10 = parser->http_major == 1 && parser->http_minor == 0;
  framing.head = parser->method == HTTP_HEAD;
  if (!framing.keep_alive) self->Stop();
  self->sink_->OnRequest(std::move(self->request_), framing);
  return 0;
}

}  // namespace wisp::triggers
