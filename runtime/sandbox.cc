#include "runtime/sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <new>
#include <system_error>

#include "runtime/seccomp_filter.h"

#if defined(WISP_SANITIZED)
#include <sanitizer/lsan_interface.h>
#endif

namespace wisp::runtime {
namespace {

// AddressSanitizer reserves terabytes of address space for its shadow, so an
// RLIMIT_AS would refuse it: sanitizer builds (scripts/sanitize.sh) do not
// limit memory.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitizerBuild = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitizerBuild = true;
#else
constexpr bool kSanitizerBuild = false;
#endif
#else
constexpr bool kSanitizerBuild = false;
#endif

// LeakSanitizer stops the world with ptrace, which the seccomp filter denies,
// so its check at exit would fail. A sanitizer build checks the worker for
// leaks once, just before the filter goes in; the check at exit is then off.
void CheckLeaksBeforeSeccomp() {
#if defined(WISP_SANITIZED)
  __lsan_do_leak_check();
#endif
}

Status Errno(const std::string& what) { return Status::FromErrno(what, errno); }

Status SetLimit(int resource, rlim_t soft, rlim_t hard, const char* name) {
  rlimit limit{soft, hard};
  if (::setrlimit(resource, &limit) != 0) return Errno(std::string("setrlimit ") + name);
  return Status::OK();
}

// Makes dir an empty directory owned by uid/gid (mode 0700).
Status PrepareWorkDir(const std::string& dir, bool chown_it, uid_t uid, gid_t gid) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);  // symlinks are removed, not followed
  if (ec) return Status::IOError("cannot clear " + dir + ": " + ec.message());
  if (::mkdir(dir.c_str(), 0700) != 0) return Errno("mkdir " + dir);
  if (chown_it && ::chown(dir.c_str(), uid, gid) != 0) return Errno("chown " + dir);
  if (::chdir(dir.c_str()) != 0) return Errno("chdir " + dir);
  ::setenv("HOME", dir.c_str(), 1);
  ::setenv("TMPDIR", dir.c_str(), 1);
  return Status::OK();
}

void OnTerminate() {
  int code = kExitUncaughtException;
  const char* what = "an exception escaped the function";
  if (std::exception_ptr e = std::current_exception()) {
    try {
      std::rethrow_exception(e);
    } catch (const std::bad_alloc&) {
      code = kExitMemoryLimit;
      what = "std::bad_alloc escaped the function: an allocation was refused at the memory limit";
    } catch (const std::exception& ex) {
      std::fprintf(stderr, "wisp-worker: uncaught exception: %s\n", ex.what());
      std::fflush(stderr);
      std::_Exit(code);
    } catch (...) {
    }
  }
  std::fprintf(stderr, "wisp-worker: %s\n", what);
  std::fflush(stderr);
  std::_Exit(code);
}

// Whether the calling process is the only one of its user: with
// RLIMIT_NPROC at 2, a fork succeeds only if no other process of the user
// exists (zombies not yet reaped included).
bool AloneAsUser() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  if (child < 0) return false;
  while (::waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
  }
  return true;
}

}  // namespace

pid_t StartSweep(uid_t uid, gid_t gid) {
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  rlimit two{2, 2};
  if (::setgroups(0, nullptr) != 0 || ::setresgid(gid, gid, gid) != 0 ||
      ::setrlimit(RLIMIT_NPROC, &two) != 0 || ::setresuid(uid, uid, uid) != 0) {
    ::_exit(1);
  }
  // kill(-1) reaches every process this user may signal but the caller;
  // repeated, because a fork bomb forks while it is being killed, and until
  // the killed are reaped (by the zygote, their subreaper).
  for (int round = 0; round < 3000; ++round) {
    if (AloneAsUser()) ::_exit(0);
    ::kill(-1, SIGKILL);
    if (round >= 10) ::usleep(1000);
  }
  ::_exit(2);
}

Status EnterSandbox(const proto::Sandbox& sandbox, std::string* artifact_path,
                    int* artifact_fd) {
  *artifact_fd = -1;
  const bool drop = sandbox.drop_privileges();
  const uid_t uid = sandbox.uid();
  const gid_t gid = sandbox.gid();
  if (drop) {
    if (uid == 0 || gid == 0) return Status::InvalidArgument("refusing to run a function as root");
    const int fd = ::open(artifact_path->c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Errno("open " + *artifact_path);
    *artifact_fd = fd;
    *artifact_path = "/proc/self/fd/" + std::to_string(fd);
  }
  if (drop && sandbox.sweep_first()) {
    const pid_t sweeper = StartSweep(uid, gid);
    if (sweeper < 0) return Errno("fork");
    int status = 0;
    while (::waitpid(sweeper, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      return Status::IOError("could not end the leftover processes of uid " + std::to_string(uid));
    }
  }
  if (!sandbox.work_dir().empty()) {
    WISP_RETURN_IF_ERROR(PrepareWorkDir(sandbox.work_dir(), drop, uid, gid));
  }
  WISP_RETURN_IF_ERROR(SetLimit(RLIMIT_CORE, 0, 0, "RLIMIT_CORE"));
  if (sandbox.memory_bytes() > 0 && !kSanitizerBuild) {
    WISP_RETURN_IF_ERROR(
        SetLimit(RLIMIT_AS, sandbox.memory_bytes(), sandbox.memory_bytes(), "RLIMIT_AS"));
  }
  if (sandbox.open_files() > 0) {
    WISP_RETURN_IF_ERROR(
        SetLimit(RLIMIT_NOFILE, sandbox.open_files(), sandbox.open_files(), "RLIMIT_NOFILE"));
  }
  if (drop && sandbox.processes() > 0) {
    WISP_RETURN_IF_ERROR(
        SetLimit(RLIMIT_NPROC, sandbox.processes(), sandbox.processes(), "RLIMIT_NPROC"));
  }
  if (drop) {
    if (::setgroups(0, nullptr) != 0) return Errno("setgroups");
    if (::setresgid(gid, gid, gid) != 0) return Errno("setresgid");
    if (::setresuid(uid, uid, uid) != 0) return Errno("setresuid");
    if (::getuid() != uid || ::geteuid() != uid || ::setuid(0) == 0) {
      return Status::Internal("the worker kept root after dropping it");
    }
  }
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return Errno("PR_SET_NO_NEW_PRIVS");
  if (sandbox.seccomp()) {
    CheckLeaksBeforeSeccomp();
    WISP_RETURN_IF_ERROR(InstallSeccompFilter());
  }
  return Status::OK();
}

void InstallTerminateHandler() { std::set_terminate(OnTerminate); }

void LimitCpuFromNow(uint64_t cpu_ms) {
  if (cpu_ms == 0) return;
  rusage usage{};
  if (::getrusage(RUSAGE_SELF, &usage) != 0) return;
  const uint64_t used_s = static_cast<uint64_t>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + 1;
  rlimit limit{static_cast<rlim_t>(used_s + (cpu_ms + 999) / 1000), RLIM_INFINITY};
  (void)::setrlimit(RLIMIT_CPU, &limit);
}

}  // namespace wisp::runtime
