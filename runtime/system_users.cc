#include "runtime/system_users.h"

#include <fcntl.h>
#include <pwd.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

extern char** environ;

namespace wisp::runtime {
namespace {

constexpr const char* kGetent = "/usr/bin/getent";
constexpr size_t kMaxListingBytes = 64 << 20;

// Runs `getent passwd` and visits the users it prints. False, with nothing
// visited, when getent could not run or did not list every user.
bool VisitGetent(const std::function<bool(uid_t, std::string_view)>& visit) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return false;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  char arg0[] = "getent";
  char arg1[] = "passwd";
  char* argv[] = {arg0, arg1, nullptr};
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, kGetent, &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    return false;
  }
  // All of it first, then parsed from memory: fgetpwent seeks in its stream,
  // which a pipe cannot do.
  std::string listing;
  bool read_all = false;
  char buf[16 * 1024];
  while (listing.size() <= kMaxListingBytes) {
    const ssize_t n = ::read(fds[0], buf, sizeof(buf));
    if (n > 0) {
      listing.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    read_all = n == 0;
    break;
  }
  ::close(fds[0]);  // a getent with more to print gets EPIPE
  int status = 0;
  pid_t waited;
  do {
    waited = ::waitpid(pid, &status, 0);
  } while (waited < 0 && errno == EINTR);
  // Not reaped here (SIGCHLD ignored): how getent ended is unknown.
  if (waited != pid) return false;
  if (!read_all || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return false;
  FILE* in = ::fmemopen(listing.data(), listing.size(), "r");
  if (in == nullptr) return false;
  for (const passwd* pw = ::fgetpwent(in); pw != nullptr; pw = ::fgetpwent(in)) {
    if (!visit(pw->pw_uid, pw->pw_name)) break;
  }
  std::fclose(in);
  return true;
}

}  // namespace

void ForEachSystemUser(const std::function<bool(uid_t, std::string_view)>& visit) {
  if (VisitGetent(visit)) return;
  ::setpwent();
  for (passwd* pw = ::getpwent(); pw != nullptr; pw = ::getpwent()) {
    if (!visit(pw->pw_uid, pw->pw_name)) break;
  }
  ::endpwent();
}

}  // namespace wisp::runtime
