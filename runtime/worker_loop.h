// The worker's main loop: loads one function and serves its invocations.
//
// The protocol channel is two pipes: the controller's frames arrive on fd 3
// (kWorkerChannelFd), the worker's leave on fd 4 (kWorkerOutputFd); stdout
// and stderr are the function's log. A worker starts generic (no function),
// waits for a Load frame, dlopens the function, then runs Invoke frames one
// at a time, in order, writing each result before it runs the next. It exits
// on Shutdown, when the controller goes away, or after a failed load.
// Threading: the worker process's only thread.
#ifndef WISP_RUNTIME_WORKER_LOOP_H_
#define WISP_RUNTIME_WORKER_LOOP_H_

#include <chrono>

namespace wisp::runtime {

inline constexpr int kWorkerChannelFd = 3;
inline constexpr int kWorkerOutputFd = 4;

// Serves fds 3 and 4 until the worker should exit; never returns. While
// invocations arrive densely the worker polls for up to spin before sleeping
// (0: never; also off when it may run on one CPU only).
[[noreturn]] void RunWorker(std::chrono::microseconds spin);

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_WORKER_LOOP_H_
