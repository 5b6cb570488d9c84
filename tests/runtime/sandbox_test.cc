// The sweep of a worker's user (runtime/sandbox.h): it ends the user's live
// processes, and a zombie of the user that nobody reaps yet does not hold it
// up. Needs root (the sweep becomes the user); skipped otherwise.
#include "runtime/sandbox.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

namespace wisp::runtime {
namespace {

// A uid of its own per test process, far from the controller's range.
uid_t TestUid() { return 2100000000u + static_cast<uid_t>(::getpid() % 100000); }

// Forks a child that becomes uid and then either waits forever (live) or
// exits at once (left a zombie: this process does not reap it until told).
pid_t ChildAs(uid_t uid, bool live) {
  int ready[2];
  if (::pipe(ready) != 0) return -1;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(ready[0]);
    if (::setresgid(uid, uid, uid) != 0 || ::setresuid(uid, uid, uid) != 0) ::_exit(1);
    if (!live) ::_exit(0);
    (void)!::write(ready[1], "x", 1);
    while (true) ::pause();
  }
  ::close(ready[1]);
  char byte;
  if (live) (void)!::read(ready[0], &byte, 1);
  ::close(ready[0]);
  return pid;
}

// The sweep's exit status, or -1 when it did not end within timeout.
int WaitSweep(pid_t sweeper, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (::waitpid(sweeper, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(sweeper, SIGKILL);
      ::waitpid(sweeper, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

class SweepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "a sweep needs root";
  }
};

TEST_F(SweepTest, EndsALiveProcessOfTheUser) {
  const pid_t live = ChildAs(TestUid(), /*live=*/true);
  ASSERT_GT(live, 0);
  const pid_t sweeper = StartSweep(TestUid(), TestUid());
  ASSERT_GT(sweeper, 0);
  EXPECT_EQ(WaitSweep(sweeper, std::chrono::seconds(10)), 0)
      << "expected the sweep to exit 0 once the user was clear";
  int status = 0;
  ASSERT_EQ(::waitpid(live, &status, 0), live);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "expected the user's process killed by SIGKILL, got status " << status;
}

TEST_F(SweepTest, AZombieOfTheUserDoesNotHoldItUp) {
  const pid_t zombie = ChildAs(TestUid(), /*live=*/false);
  ASSERT_GT(zombie, 0);
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(zombie), &info, WEXITED | WNOWAIT), 0);
  const auto started = std::chrono::steady_clock::now();
  const pid_t sweeper = StartSweep(TestUid(), TestUid());
  ASSERT_GT(sweeper, 0);
  // Without the zombie rule the sweep spins for about 3 s and exits 2.
  EXPECT_EQ(WaitSweep(sweeper, std::chrono::seconds(10)), 0)
      << "expected the sweep to see only a zombie and exit 0";
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2));
  ASSERT_EQ(::waitpid(zombie, nullptr, 0), zombie);  // still there: reaped only now
}

}  // namespace
}  // namespace wisp::runtime
