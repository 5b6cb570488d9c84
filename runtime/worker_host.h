// The worker's implementation of the host table (wisp_host) and the per-
// invocation context (wisp_ctx) handed to a function.
// Threading: the worker's single thread.
#ifndef WISP_RUNTIME_WORKER_HOST_H_
#define WISP_RUNTIME_WORKER_HOST_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <string>

#include "wisp/function.h"
#include "worker.pb.h"

// Defined here, opaque to functions: one invocation's reply under construction.
struct wisp_ctx {
  wisp::runtime::proto::Result* result;  // borrowed; the reply being built
  std::string function;                  // for log lines
  size_t max_reply_bytes;  // body, headers and events together
  size_t max_events;
  size_t reply_bytes = 0;  // used so far
  // The limit a host call was refused by ("max_reply", "max_events"): the
  // invocation fails with it, whatever the function returns.
  const char* limit_crossed = nullptr;
  // Sends a Call (its id filled in) and waits for the reply; false when the
  // controller is gone. Empty: calls are not offered (warm-up).
  std::function<bool(wisp::runtime::proto::Call& call, wisp::runtime::proto::CallReply* reply)>
      call_out;
  std::deque<std::string> call_replies;  // bodies handed out by call, kept for the invocation
};

namespace wisp::runtime {

inline constexpr size_t kDefaultMaxReplyBytes = 6 * 1024 * 1024;
inline constexpr size_t kDefaultMaxEventsPerInvocation = 1000;

// The host table; static storage, valid for the life of the process.
const wisp_host* WorkerHostTable();

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_WORKER_HOST_H_
