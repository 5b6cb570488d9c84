// The zygote: a wisp-worker started with --zygote that forks generic workers
// on request, so a new worker costs a fork of a small, already-linked process
// (no exec, no dynamic loading) and the controller's loop never blocks on it.
//
// Protocol on fd 3 (framing.h): the controller sends ZygoteFork frames, each
// carrying three descriptors by SCM_RIGHTS (the new worker's input pipe, its
// output pipe, then its log socket); the zygote answers ZygoteForked or ZygoteForkFailed, and
// reports every worker's end with ZygoteExited after reaping it. Workers die
// with the zygote (PR_SET_PDEATHSIG), and the zygote dies with the controller.
// Threading: the zygote process's only thread.
#ifndef WISP_RUNTIME_ZYGOTE_SERVER_H_
#define WISP_RUNTIME_ZYGOTE_SERVER_H_

#include <chrono>

namespace wisp::runtime {

// Serves fd 3 until the controller goes away; returns the exit code. The
// workers it forks poll for up to worker_spin before sleeping (RunWorker).
int RunZygote(std::chrono::microseconds worker_spin);

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_ZYGOTE_SERVER_H_
