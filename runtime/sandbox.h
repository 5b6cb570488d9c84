// The worker's side of isolation: what a worker applies to itself, still as
// the controller's user, before it opens a function (worker_loop.cc), and the
// sweep that ends every process a worker's user left behind (used by the
// worker before it takes a user, and by the zygote after a worker exits).
//
// In order: the artifact is opened (the function's user cannot read the data
// dir), the user's leftover processes are killed (sweep_first: only after a
// controller died; otherwise the zygote swept the user when its last worker
// exited, before the user was released), the working directory is
// made empty and owned by the user, rlimits are set (core dumps off, address
// space, descriptors, processes), groups, gid and uid are dropped for good,
// and no_new_privs is set, so no setuid program can give privileges back;
// last, the seccomp filter when asked (runtime/seccomp_filter.h).
// Threading: a single-threaded process (the worker before the function
// loads, the zygote).
#ifndef WISP_RUNTIME_SANDBOX_H_
#define WISP_RUNTIME_SANDBOX_H_

#include <sys/types.h>

#include <string>

#include "runtime/base/status.h"
#include "worker.pb.h"

namespace wisp::runtime {

// Exit statuses a worker reports its own end with.
inline constexpr int kExitMemoryLimit = 86;        // std::bad_alloc escaped the function
inline constexpr int kExitUncaughtException = 87;  // another exception escaped

// Installs the seccomp filter EnterSandbox installs (runtime/seccomp_filter.h)
// now, ahead of it: a pooled worker does so while it waits, and the
// EnterSandbox of its Load then finds it in place. A sanitizer build first
// checks the process for leaks, once (LeakSanitizer's check at exit needs
// ptrace, which the filter denies). A Status naming the step that failed.
[[nodiscard]] Status InstallSeccompAhead();

// Applies sandbox to the calling process. *artifact_path is replaced by a
// path that stays readable after the drop (/proc/self/fd/N of a descriptor
// opened here, *artifact_fd, which the caller closes once the function is
// open; -1 when the path is left as it was). A Status naming the step that failed (FromErrno's code);
// the worker must then not load the function.
[[nodiscard]] Status EnterSandbox(const proto::Sandbox& sandbox, std::string* artifact_path,
                                  int* artifact_fd);

// Forks a process that becomes uid/gid and sends SIGKILL to every process of
// that user until none is left alive (zombies waiting for pid 1 do not
// count); returns its pid (the caller reaps it: exit status 0 once the user
// is clear, 2 if it never cleared within about 3 s), or -1 with errno set.
// The sweep dies with the calling process. Needs root.
pid_t StartSweep(uid_t uid, gid_t gid);

// Installs the std::terminate handler that turns an escaped exception into
// kExitMemoryLimit or kExitUncaughtException, with a line on stderr.
void InstallTerminateHandler();

// Sets RLIMIT_CPU so that the process may use cpu_ms more CPU time from now
// (rounded up to whole seconds; the hard limit stays unlimited). 0: none.
void LimitCpuFromNow(uint64_t cpu_ms);

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_SANDBOX_H_
