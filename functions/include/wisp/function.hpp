// C++ sugar over the wisp C ABI (wisp/function.h). Header-only; nothing here
// crosses the ABI: the exported symbols stay plain C.
//
//   #include <wisp/function.hpp>
//   static void Echo(const wisp::Request& req, wisp::Response& res) {
//     res.Write(req.Body());
//   }
//   WISP_FUNCTION(Echo)
//
// A handler that throws fails the invocation (HTTP 500) and logs what().
#ifndef WISP_FUNCTION_HPP_
#define WISP_FUNCTION_HPP_

#include <wisp/function.h>

#include <cstddef>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wisp {

// A read-only view of one invocation's request; valid during the handler.
class Request {
 public:
  explicit Request(const wisp_request* raw) : raw_(raw) {}

  std::string_view Method() const { return View(raw_->method); }
  std::string_view Path() const { return View(raw_->path); }
  std::string_view Query() const { return View(raw_->query); }
  std::string_view Subject() const { return View(raw_->subject); }
  std::string_view Body() const {
    return {static_cast<const char*>(raw_->body), raw_->body_len};
  }
  bool IsEvent() const { return raw_->trigger == WISP_TRIGGER_EVENT; }
  bool IsCall() const { return raw_->trigger == WISP_TRIGGER_CALL; }
  uint32_t Attempt() const { return raw_->attempt; }
  size_t HeaderCount() const { return raw_->header_count; }
  std::string_view HeaderName(size_t i) const { return View(raw_->headers[i].name); }
  std::string_view HeaderValue(size_t i) const { return View(raw_->headers[i].value); }

  // The first header named `name` (lower-case for HTTP), or an empty view.
  std::string_view Header(std::string_view name) const {
    for (size_t i = 0; i < raw_->header_count; ++i) {
      if (View(raw_->headers[i].name) == name) return View(raw_->headers[i].value);
    }
    return {};
  }
  const wisp_request* raw() const { return raw_; }

 private:
  static std::string_view View(wisp_str s) { return {s.data, s.len}; }
  const wisp_request* raw_;
};

// The reply of one invocation; each call returns a WISP_* code.
class Response {
 public:
  Response(const wisp_host* host, wisp_ctx* ctx) : host_(host), ctx_(ctx) {}

  int Write(std::string_view data) { return host_->write(ctx_, data.data(), data.size()); }
  int Status(int code) { return host_->set_status(ctx_, code); }
  int Header(const std::string& name, const std::string& value) {
    return host_->set_header(ctx_, name.c_str(), value.c_str());
  }
  int Emit(const std::string& subject, std::string_view data) {
    return host_->emit(ctx_, subject.c_str(), data.data(), data.size());
  }
  // Emits with headers, e.g. {{"ce-type", "com.example.order.priced"}}.
  int Emit(const std::string& subject, std::string_view data,
           std::initializer_list<std::pair<std::string_view, std::string_view>> headers) {
    if (!WISP_HOST_HAS(host_, emit_event)) return WISP_E_UNSUPPORTED;
    std::vector<wisp_header> raw;
    raw.reserve(headers.size());
    for (const auto& [name, value] : headers) {
      raw.push_back(wisp_header{{name.data(), name.size()}, {value.data(), value.size()}});
    }
    return host_->emit_event(ctx_, subject.c_str(), data.data(), data.size(), raw.data(),
                             raw.size());
  }
  int Log(int level, std::string_view msg) {
    return host_->log(ctx_, level, msg.data(), msg.size());
  }

  // What Call got: code is WISP_OK when the function replied (with status
  // and body), WISP_E_CALL when it did not (status says why, body is a JSON
  // error), or another WISP_E_*. body stays valid during the handler.
  struct CallReply {
    int code = WISP_E_UNSUPPORTED;
    int status = 0;
    std::string_view body;
  };
  // Calls the function `name` with data and waits for its reply, at most
  // timeout_ms (0: its own timeout).
  CallReply Call(const std::string& name, std::string_view data, uint32_t timeout_ms = 0) {
    CallReply reply;
    if (!WISP_HOST_HAS(host_, call)) return reply;
    wisp_str body{"", 0};
    reply.code = host_->call(ctx_, name.c_str(), data.data(), data.size(), timeout_ms,
                             &reply.status, &body);
    reply.body = {body.data, body.len};
    return reply;
  }

 private:
  const wisp_host* host_;
  wisp_ctx* ctx_;
};

namespace detail {
template <typename Handler>
int Invoke(Handler handler, wisp_ctx* ctx, const wisp_request* req) {
  Request request(req);
  Response response(req->host, ctx);
  try {
    handler(request, response);
    return 0;
  } catch (const std::exception& e) {
    response.Log(WISP_LOG_ERROR, e.what());
  } catch (...) {
    response.Log(WISP_LOG_ERROR, "handler threw a non-standard exception");
  }
  return 1;
}
}  // namespace detail

}  // namespace wisp

// Exports the ABI symbols for a handler `void handler(const wisp::Request&,
// wisp::Response&)`.
#define WISP_FUNCTION(handler)                                              \
  extern "C" {                                                              \
  WISP_DEFINE_ABI_VERSION()                                                 \
  WISP_EXPORT int wisp_handle(void*, wisp_ctx* ctx, const wisp_request* req) { \
    return ::wisp::detail::Invoke(handler, ctx, req);                       \
  }                                                                         \
  }

#endif  // WISP_FUNCTION_HPP_
