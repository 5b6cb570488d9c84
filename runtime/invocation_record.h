// One invocation's record, as the invocation log keeps it
// (runtime/invocation_log.h) and GET /v1/invocations shows it.
#ifndef WISP_RUNTIME_INVOCATION_RECORD_H_
#define WISP_RUNTIME_INVOCATION_RECORD_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace wisp::runtime {

struct InvocationRecord {
  int64_t seq = 0;  // filled when read back
  std::string id;   // e.g. "Ab12Cd34-1f"
  std::string function, version;
  std::string trigger;        // "http", "event", "request", "invoke"
  int64_t started_at_us = 0;  // unix time, microseconds
  int64_t duration_us = 0;
  bool cold = false;
  int status = 0;                 // HTTP status given to the caller
  std::string error_code, error;  // empty on success
  // W3C trace id (trace_context.h), inline: a record made on the loop thread
  // and freed on the writer's holds no heap memory in the common case.
  struct TraceId {
    char hex[32] = {};
    uint8_t size = 0;
    void assign(std::string_view text) {
      size = static_cast<uint8_t>(std::min(text.size(), sizeof(hex)));
      std::memcpy(hex, text.data(), size);
    }
    std::string_view view() const { return {hex, size}; }
  } trace_id;
};

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_INVOCATION_RECORD_H_
