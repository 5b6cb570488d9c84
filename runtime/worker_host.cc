#include "runtime/worker_host.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string_view>

namespace wisp::runtime {
namespace {

// Header names and values must not smuggle CR or LF into the HTTP reply.
bool IsSafeHeaderText(const char* s, bool is_name) {
  if (s == nullptr) return false;
  if (is_name && *s == '\0') return false;
  for (const char* p = s; *p != '\0'; ++p) {
    const unsigned char c = static_cast<unsigned char>(*p);
    if (c == '\r' || c == '\n') return false;
    if (is_name && (c <= ' ' || c == ':' || c >= 0x7f)) return false;
  }
  return true;
}

// Headers on one emitted event; the controller checks them again.
constexpr size_t kMaxEventHeaders = 64;

// Takes n bytes from the invocation's reply budget (body, headers and events
// together), or returns false when they do not fit.
bool Reserve(wisp_ctx* ctx, size_t n) {
  if (n > ctx->max_reply_bytes - ctx->reply_bytes) {
    ctx->limit_crossed = "max_reply";
    return false;
  }
  ctx->reply_bytes += n;
  return true;
}

int HostWrite(wisp_ctx* ctx, const void* data, size_t len) {
  if (ctx == nullptr || (data == nullptr && len > 0)) return WISP_E_INVALID;
  if (!Reserve(ctx, len)) return WISP_E_LIMIT;
  ctx->result->mutable_body()->append(static_cast<const char*>(data), len);
  return WISP_OK;
}

int HostSetStatus(wisp_ctx* ctx, int code) {
  if (ctx == nullptr || code < 200 || code > 599) return WISP_E_INVALID;
  ctx->result->set_status(code);
  return WISP_OK;
}

int HostSetHeader(wisp_ctx* ctx, const char* name, const char* value) {
  if (ctx == nullptr || !IsSafeHeaderText(name, true) || !IsSafeHeaderText(value, false)) {
    return WISP_E_INVALID;
  }
  if (ctx->result->headers_size() >= 100) return WISP_E_LIMIT;
  if (!Reserve(ctx, std::strlen(name) + std::strlen(value))) return WISP_E_LIMIT;
  proto::Header* header = ctx->result->add_headers();
  header->set_name(name);
  header->set_value(value);
  return WISP_OK;
}

int HostEmitEvent(wisp_ctx* ctx, const char* subject, const void* data, size_t len,
                  const wisp_header* headers, size_t header_count) {
  if (ctx == nullptr || subject == nullptr || *subject == '\0' || (data == nullptr && len > 0) ||
      (headers == nullptr && header_count > 0)) {
    return WISP_E_INVALID;
  }
  if (static_cast<size_t>(ctx->result->events_size()) >= ctx->max_events) {
    ctx->limit_crossed = "max_events";
    return WISP_E_LIMIT;
  }
  if (header_count > kMaxEventHeaders) return WISP_E_LIMIT;
  size_t bytes = std::strlen(subject) + len;
  for (size_t i = 0; i < header_count; ++i) {
    const wisp_header& h = headers[i];
    if ((h.name.data == nullptr && h.name.len > 0) || (h.value.data == nullptr && h.value.len > 0)) {
      return WISP_E_INVALID;
    }
    bytes += h.name.len + h.value.len;
  }
  if (!Reserve(ctx, bytes)) return WISP_E_LIMIT;
  proto::Event* event = ctx->result->add_events();
  event->set_subject(subject);
  event->set_data(static_cast<const char*>(data), len);
  for (size_t i = 0; i < header_count; ++i) {
    proto::Header* h = event->add_headers();
    h->set_name(headers[i].name.data, headers[i].name.len);
    h->set_value(headers[i].value.data, headers[i].value.len);
  }
  return WISP_OK;
}

int HostEmit(wisp_ctx* ctx, const char* subject, const void* data, size_t len) {
  return HostEmitEvent(ctx, subject, data, len, nullptr, 0);
}

int HostLog(wisp_ctx* ctx, int level, const char* msg, size_t len) {
  if (ctx == nullptr || (msg == nullptr && len > 0)) return WISP_E_INVALID;
  static const char* const kLevels[] = {"debug", "info", "warn", "error"};
  const char* name = (level >= 0 && level <= 3) ? kLevels[level] : "info";
  std::string line = "[";
  line += name;
  line += "] ";
  line.append(msg, len);
  line += '\n';
  // Stderr is captured by the controller as this function's log.
  (void)!::write(STDERR_FILENO, line.data(), line.size());
  return WISP_OK;
}

// Hands body to the function as *reply, kept alive until the invocation ends.
void SetReply(wisp_ctx* ctx, std::string body, wisp_str* reply) {
  ctx->call_replies.push_back(std::move(body));
  *reply = {ctx->call_replies.back().c_str(), ctx->call_replies.back().size()};
}

int HostCall(wisp_ctx* ctx, const char* name, const void* data, size_t len, uint32_t timeout_ms,
             int* status, wisp_str* reply) {
  if (ctx == nullptr || name == nullptr || (data == nullptr && len > 0) || status == nullptr ||
      reply == nullptr) {
    return WISP_E_INVALID;
  }
  if (!ctx->call_out) return WISP_E_UNSUPPORTED;
  if (len > ctx->max_reply_bytes) return WISP_E_LIMIT;
  proto::Call call;
  call.set_function(name);
  call.set_body(static_cast<const char*>(data), len);
  call.set_timeout_ms(timeout_ms);
  proto::CallReply answer;
  if (!ctx->call_out(call, &answer)) {
    *status = 503;
    SetReply(ctx,
             R"({"error":{"code":"controller_gone","message":"the controller closed the channel"}})",
             reply);
    return WISP_E_CALL;
  }
  *status = answer.status();
  SetReply(ctx, std::move(*answer.mutable_body()), reply);
  return answer.failed() ? WISP_E_CALL : WISP_OK;
}

const wisp_host kHostTable = {
    sizeof(wisp_host), WISP_ABI_VERSION, HostWrite,     HostSetStatus, HostSetHeader,
    HostEmit,          HostLog,          HostEmitEvent, HostCall,
};

}  // namespace

const wisp_host* WorkerHostTable() { return &kHostTable; }

}  // namespace wisp::runtime
