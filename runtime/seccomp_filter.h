// The optional seccomp filter a worker installs on itself before it opens a
// function (runtime/sandbox.cc): system calls a function has no reason to
// make fail with EPERM instead of running. It is a deny list on top of the
// other isolation (its own user, rlimits, no_new_privs), not an allow list:
// a function keeps every ordinary system call, and loses tracing and reading
// other processes, mounting and namespaces, loading kernel code or modules,
// kexec and reboot, swap, the clock, the kernel keyring, BPF, perf events,
// userfaultfd and io_uring. clone with a CLONE_NEW* flag fails with EPERM;
// clone3 fails with ENOSYS (its flags are out of the filter's reach), so C
// libraries fall back to clone. A system call made through another
// architecture's entry (int 0x80 on x86-64) kills the process.
// Threading: installed for every thread of the caller (TSYNC).
#ifndef WISP_RUNTIME_SECCOMP_FILTER_H_
#define WISP_RUNTIME_SECCOMP_FILTER_H_

#include <string>
#include <vector>

#include "runtime/base/status.h"

namespace wisp::runtime {

// The names of the system calls the filter denies outright (clone's
// namespace flags and clone3 aside), those this architecture has.
const std::vector<std::string>& SeccompDeniedSyscalls();

// Compiles the filter once, for InstallSeccompFilter in this process and
// the processes it forks afterwards: compiling costs about 0.6 ms, which a
// cold start would otherwise pay (the zygote calls it at start). A Status
// naming the libseccomp step that failed; InstallSeccompFilter then
// compiles it itself.
[[nodiscard]] Status PrepareSeccompFilter();

// Installs the filter on the calling process; it cannot be removed. Sets
// no_new_privs if it was not set. Once installed, a second call returns OK
// at once (a pooled worker installs it ahead of its Load). A Status naming
// the step that failed (the caller must then not run the function).
// Threading: the caller's threads only; not concurrently with
// PrepareSeccompFilter.
[[nodiscard]] Status InstallSeccompFilter();

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_SECCOMP_FILTER_H_
