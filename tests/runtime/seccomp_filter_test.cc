// The seccomp filter (runtime/seccomp_filter.h), installed in a forked child
// both ways: compiled on the spot, and from the program PrepareSeccompFilter
// compiled beforehand (as the zygote does). Calls the filter denies must
// fail the way it says; the others still reach the kernel.
#include "runtime/seccomp_filter.h"

#include <gtest/gtest.h>
#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace wisp::runtime {
namespace {

// Exit codes of the child, each naming what went wrong.
enum ChildExit {
  kAllAsExpected = 0,
  kPrepareFailed = 10,
  kInstallFailed = 11,
  kClone3NotEnosys = 12,
  kKcmpNotEperm = 13,
  kGetpidBroken = 14,
};

const char* Describe(int code) {
  switch (code) {
    case kAllAsExpected: return "all as expected";
    case kPrepareFailed: return "PrepareSeccompFilter failed";
    case kInstallFailed: return "InstallSeccompFilter failed";
    case kClone3NotEnosys: return "clone3 did not fail with ENOSYS";
    case kKcmpNotEperm: return "kcmp did not fail with EPERM";
    case kGetpidBroken: return "getpid no longer works";
    default: return "the child died";
  }
}

int RunChild(bool prepare) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (prepare && !PrepareSeccompFilter().ok()) ::_exit(kPrepareFailed);
    if (!InstallSeccompFilter().ok()) ::_exit(kInstallFailed);
    // Without the filter clone3 with no arguments fails with EINVAL.
    if (::syscall(SYS_clone3, nullptr, 0) != -1 || errno != ENOSYS) ::_exit(kClone3NotEnosys);
    // Without the filter comparing a process's descriptor with itself works.
    if (::syscall(SYS_kcmp, ::getpid(), ::getpid(), KCMP_FILE, 0, 0) != -1 || errno != EPERM) {
      ::_exit(kKcmpNotEperm);
    }
    if (::syscall(SYS_getpid) != ::getpid()) ::_exit(kGetpidBroken);
    ::_exit(kAllAsExpected);
  }
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(SeccompFilterTest, CompiledOnTheSpotDeniesWhatItSays) {
  const int code = RunChild(/*prepare=*/false);
  EXPECT_EQ(code, kAllAsExpected) << "child: " << Describe(code) << " (exit " << code << ")";
}

TEST(SeccompFilterTest, PreparedBeforehandDeniesTheSame) {
  const int code = RunChild(/*prepare=*/true);
  EXPECT_EQ(code, kAllAsExpected) << "child: " << Describe(code) << " (exit " << code << ")";
}

TEST(SeccompFilterTest, WithoutTheFilterTheSameCallsReachTheKernel) {
  // The control: the checks above would pass for the wrong reason if the
  // kernel refused these calls anyway.
  errno = 0;
  if (::syscall(SYS_kcmp, ::getpid(), ::getpid(), KCMP_FILE, 0, 0) != 0) {
    GTEST_SKIP() << "kcmp is refused here already (" << std::strerror(errno)
                 << "): the filter's checks cannot be told apart";
  }
  errno = 0;
  EXPECT_EQ(::syscall(SYS_clone3, nullptr, 0), -1);
  EXPECT_EQ(errno, EINVAL) << "clone3 without the filter";
  EXPECT_EQ(::syscall(SYS_kcmp, ::getpid(), ::getpid(), KCMP_FILE, 0, 0), 0)
      << "kcmp without the filter: " << std::strerror(errno);
}

}  // namespace
}  // namespace wisp::runtime
