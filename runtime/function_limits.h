// A function's resource limits, given at deploy (query parameters, CLI flags,
// manifest fields of the same names) and stored with each version:
//
//   memory       address space of each worker (RLIMIT_AS), e.g. 256MiB
//   cpu          CPU time of one invocation (RLIMIT_CPU, whole seconds), e.g. 2s; 0: none
//   open_files   descriptors a worker may hold (RLIMIT_NOFILE)
//   processes    processes and threads of a worker (RLIMIT_NPROC; needs the
//                per-worker users the controller gives workers when run as root)
//   max_request  largest body an invocation takes (HTTP or event)
//   max_reply    largest reply: body, headers and emitted events together
//   max_events   events one invocation may emit
//
// Crossing memory, cpu, max_reply or max_events ends the invocation with an
// error naming the limit (the worker too for memory and cpu); open_files and
// processes make the call that would cross them fail (EMFILE, EAGAIN), as
// the kernel does; max_request refuses the request with 413.
// Pure; any thread.
#ifndef WISP_RUNTIME_FUNCTION_LIMITS_H_
#define WISP_RUNTIME_FUNCTION_LIMITS_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "runtime/base/status.h"

namespace wisp::runtime {

struct FunctionLimits {
  uint64_t memory_bytes = 1024ull << 20;
  uint64_t cpu_ms = 0;  // 0: no limit (the timeout still applies)
  uint32_t open_files = 1024;
  uint32_t processes = 256;
  uint64_t max_request_bytes = 6ull << 20;
  uint64_t max_reply_bytes = 6ull << 20;
  uint32_t max_events = 1000;

  bool operator==(const FunctionLimits&) const = default;
};

// The bounds a limit may be given within.
inline constexpr uint64_t kMinMemoryBytes = 32ull << 20;
inline constexpr uint64_t kMaxMemoryBytes = 1ull << 40;
inline constexpr uint64_t kMaxCpuMs = 24ull * 3600 * 1000;
inline constexpr uint32_t kMinOpenFiles = 16;
inline constexpr uint32_t kMaxOpenFiles = 1 << 20;
inline constexpr uint32_t kMinProcesses = 4;  // the worker's own threads among them
inline constexpr uint32_t kMaxProcesses = 1 << 16;
// max_request, max_reply: under the worker channel's 16 MiB frames with room
// for headers and framing.
inline constexpr uint64_t kMaxPayloadLimitBytes = 12ull << 20;
inline constexpr uint32_t kMaxEventsLimit = 100000;

// The parameter names, in the order above, for messages.
inline constexpr const char* kLimitKeys =
    "memory, cpu, open_files, processes, max_request, max_reply, max_events";

// Whether key names a limit.
bool IsLimitKey(std::string_view key);

// Sets the limit key to value ("256MiB", "2s", "64"). InvalidArgument names
// the key, the value and the accepted range; also for a key that is not a
// limit.
[[nodiscard]] Status ApplyLimit(std::string_view key, std::string_view value,
                                FunctionLimits* limits);

// Parses "1048576", "512KiB", "64MiB", "2GiB" (also KB/MB/GB as powers of
// 1000, and K/M/G as KiB/MiB/GiB) into bytes. InvalidArgument otherwise.
[[nodiscard]] Status ParseByteSize(std::string_view text, uint64_t* bytes);

// "64MiB", "512KiB", or "1234B" when not a whole number of KiB.
std::string FormatByteSize(uint64_t bytes);

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_FUNCTION_LIMITS_H_
