// Runs a check as an unprivileged user: permission errors cannot be tested as
// root, and CI runs as root. When the tests run as root, the check runs in a
// forked child that has switched to uid/gid 65534 (nobody).
#ifndef WISP_TESTS_LOADER_UNPRIVILEGED_H_
#define WISP_TESTS_LOADER_UNPRIVILEGED_H_

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

namespace wisp::testing {

// check returns an empty string on success, else what went wrong.
template <typename Check>
::testing::AssertionResult RunUnprivileged(Check check) {
  if (::geteuid() != 0) {
    const std::string failure = check();
    if (failure.empty()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << failure;
  }
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) return ::testing::AssertionFailure() << "pipe failed";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pipe_fds[0]);
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
    const std::string failure = check();
    if (!failure.empty()) (void)!::write(pipe_fds[1], failure.data(), failure.size());
    ::_exit(failure.empty() ? 0 : 1);
  }
  ::close(pipe_fds[1]);
  std::string failure;
  char buf[512];
  ssize_t n;
  while ((n = ::read(pipe_fds[0], buf, sizeof(buf))) > 0) failure.append(buf, static_cast<size_t>(n));
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return ::testing::AssertionSuccess();
  if (WIFEXITED(status) && WEXITSTATUS(status) == 2) {
    return ::testing::AssertionFailure() << "could not switch to uid 65534";
  }
  return ::testing::AssertionFailure() << "as uid 65534: " << failure;
}

}  // namespace wisp::testing

#endif  // WISP_TESTS_LOADER_UNPRIVILEGED_H_
