#include "runtime/sandbox.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
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

// An open descriptor of dir if it already is what PrepareWorkDir makes: a
// directory, not a symlink, of owner uid and group gid, mode 0700, with
// nothing in it and no extended attributes (no ACL a worker set); else -1.
int OpenEmptyPrivateDir(const std::string& dir, uid_t uid, gid_t gid) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st {};
  char attr_names[1];
  if (::fstat(fd, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != uid || st.st_gid != gid ||
      (st.st_mode & 07777) != 0700 || ::flistxattr(fd, attr_names, 0) != 0) {
    ::close(fd);
    return -1;
  }
  const int listing = ::dup(fd);  // closedir closes the one it reads
  DIR* entries = listing < 0 ? nullptr : ::fdopendir(listing);
  if (entries == nullptr) {
    if (listing >= 0) ::close(listing);
    ::close(fd);
    return -1;
  }
  bool empty = true;
  while (const dirent* e = ::readdir(entries)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
      empty = false;
      break;
    }
  }
  ::closedir(entries);
  if (!empty) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Makes dir an empty directory owned by uid/gid (mode 0700). One that
// already is (the last worker of this identity left nothing) is kept:
// removing and making it again costs a cold start 0.3 to 0.7 ms.
Status PrepareWorkDir(const std::string& dir, bool chown_it, uid_t uid, gid_t gid) {
  const uid_t owner = chown_it ? uid : ::geteuid();
  const gid_t group = chown_it ? gid : ::getegid();
  const int kept = OpenEmptyPrivateDir(dir, owner, group);
  if (kept >= 0) {
    // Into the directory checked, not whatever the path names by now.
    const int rc = ::fchdir(kept);
    ::close(kept);
    if (rc != 0) return Errno("fchdir " + dir);
  } else {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);  // symlinks are removed, not followed
    if (ec) return Status::IOError("cannot clear " + dir + ": " + ec.message());
    if (::mkdir(dir.c_str(), 0700) != 0) return Errno("mkdir " + dir);
    if (chown_it && ::chown(dir.c_str(), uid, gid) != 0) return Errno("chown " + dir);
    if (::chdir(dir.c_str()) != 0) return Errno("chdir " + dir);
  }
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

// The decimal number at text; 0 when there is none.
unsigned long ParseDecimal(const char* text) {
  unsigned long value = 0;
  while (*text >= '0' && *text <= '9') value = value * 10 + static_cast<unsigned long>(*text++ - '0');
  return value;
}

// Whether /proc/<pid>/status names a live process (not a zombie) that uid
// can signal: its real or saved uid is uid. False when it cannot be read
// (the process is gone).
bool LiveProcessOf(const char* pid, uid_t uid) {
  char path[64];
  const size_t length = std::strlen(pid);
  if (length > 20) return false;
  std::memcpy(path, "/proc/", 6);
  std::memcpy(path + 6, pid, length);
  std::memcpy(path + 6 + length, "/status", 8);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char text[4096];
  ssize_t n;
  do {
    n = ::read(fd, text, sizeof(text) - 1);
  } while (n < 0 && errno == EINTR);
  ::close(fd);
  if (n <= 0) return false;
  text[n] = '\0';
  const char* state = std::strstr(text, "\nState:\t");
  const char* uids = std::strstr(text, "\nUid:\t");
  if (state == nullptr || uids == nullptr) return false;
  const char code = state[8];
  if (code == 'Z' || code == 'X' || code == 'x') return false;
  // "Uid:\t<real>\t<effective>\t<saved>\t<filesystem>"
  const char* field = uids + 6;
  const unsigned long real = ParseDecimal(field);
  for (int skip = 0; skip < 2 && field != nullptr; ++skip) {
    field = std::strchr(field, '\t');
    if (field != nullptr) ++field;
  }
  const unsigned long saved = field != nullptr ? ParseDecimal(field) : real;
  return real == uid || saved == uid;
}

// Whether a process of uid other than the caller is still alive. Zombies do
// not count: SIGKILL cannot end them, they run nothing, and when their parent
// died too they wait for pid 1, which in a container may take seconds to reap
// them. System calls and stack buffers only: the caller is a fork.
bool OthersAliveAsUser(uid_t uid) {
  const int dir = ::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return true;
  char self[24];
  std::snprintf(self, sizeof(self), "%d", static_cast<int>(::getpid()));
  alignas(8) char entries[8192];
  bool alive = false;
  long n;
  while (!alive && (n = ::syscall(SYS_getdents64, dir, entries, sizeof(entries))) > 0) {
    for (long at = 0; at < n && !alive;) {
      const auto* entry = reinterpret_cast<const dirent64*>(entries + at);
      at += entry->d_reclen;
      const char* name = entry->d_name;
      if (name[0] < '1' || name[0] > '9' || std::strcmp(name, self) == 0) continue;
      alive = LiveProcessOf(name, uid);
    }
  }
  ::close(dir);
  return alive;
}

}  // namespace

pid_t StartSweep(uid_t uid, gid_t gid) {
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  // A sweep dies with its parent (the zygote, or a worker about to start):
  // it must never outlive its claim on the user and kill the processes of
  // whoever holds that user next.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(3);
  rlimit two{2, 2};
  if (::setgroups(0, nullptr) != 0 || ::setresgid(gid, gid, gid) != 0 ||
      ::setrlimit(RLIMIT_NPROC, &two) != 0 || ::setresuid(uid, uid, uid) != 0) {
    ::_exit(1);
  }
  // kill(-1) reaches every process this user may signal but the caller;
  // repeated, because a fork bomb forks while it is being killed, and until
  // the killed are reaped: by the zygote, their subreaper, or by pid 1 when
  // the zygote died too (zombies left to pid 1 run nothing and are not
  // waited for).
  for (int round = 0; round < 3000; ++round) {
    if (AloneAsUser()) ::_exit(0);
    ::kill(-1, SIGKILL);
    if (round >= 10) {
      if (!OthersAliveAsUser(uid)) ::_exit(0);
      ::usleep(1000);
    }
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
  if (sandbox.seccomp()) WISP_RETURN_IF_ERROR(InstallSeccompAhead());
  return Status::OK();
}

Status InstallSeccompAhead() {
  CheckLeaksBeforeSeccomp();
  return InstallSeccompFilter();
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
