#include "runtime/worker_identities.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "loader/artifact_store.h"
#include "runtime/system_users.h"

namespace wisp::runtime {

namespace {

// A directory only root can change: made if missing, refused if it is a
// symlink or someone else's.
Status RootOnlyDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::FromErrno("mkdir " + path, errno);
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return Status::FromErrno("stat " + path, errno);
  if (!S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022) != 0) {
    return Status::InvalidArgument(path + " must be a directory owned by root and writable "
                                          "only by root");
  }
  return Status::OK();
}

}  // namespace

WorkerIdentities::~WorkerIdentities() {
  for (int fd : taken_) {
    if (fd > 0) ::close(fd);
  }
  if (base_dir_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(base_dir_, ec);
}

Status WorkerIdentities::Start() {
  drop_ = options_.separate_users && ::geteuid() == 0;
  if (drop_) {
    if (options_.first_uid == 0 || options_.count == 0 ||
        uint64_t{options_.first_uid} + options_.count > 0xfffffffeull) {
      return Status::InvalidArgument("the worker uid range must be within 1..4294967294");
    }
    std::string in_range;  // "uid U is the user N", for the first user found
    ForEachSystemUser([&](uid_t uid, std::string_view name) {
      if (uid < options_.first_uid || uid - options_.first_uid >= options_.count) return true;
      in_range = "uid " + std::to_string(uid) + " is the user " + std::string(name);
      return false;
    });
    if (!in_range.empty()) {
      return Status::InvalidArgument(in_range + ", inside the worker uid range " +
                                     std::to_string(options_.first_uid) + "-" +
                                     std::to_string(options_.first_uid + options_.count - 1) +
                                     "; choose another with --worker-uids");
    }
    Status s = RootOnlyDir("/run/wisp");
    if (s.ok()) s = RootOnlyDir("/run/wisp/worker-uids");
    if (!s.ok()) return s.WithContext("the worker uid locks");
    lock_dir_ = "/run/wisp/worker-uids";
  }
  WISP_RETURN_IF_ERROR(MakeBaseDir());
  taken_.assign(drop_ ? options_.count : 4096, -1);
  return Status::OK();
}

// The open lock file of slot's user, locked; -1 when another controller's
// worker has that user (or the file cannot be opened).
int WorkerIdentities::LockUser(size_t slot) const {
  const std::string path = lock_dir_ + "/" + std::to_string(options_.first_uid + slot);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return -1;
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool WorkerIdentities::Claim(size_t slot) {
  if (taken_[slot] != -1) return false;
  if (!drop_) {
    taken_[slot] = 0;
    return true;
  }
  const int fd = LockUser(slot);
  if (fd < 0) return false;
  taken_[slot] = fd;
  return true;
}

// The lock file's size is its user's state: not 0 while the user is in
// use, 0 once released cleanly (after the zygote swept the user). A size
// other than 0 found at claim time means a controller died holding it, and
// processes of that user may be left. The size is read from the inode
// open() has just read, never from a data page, which on a disk-backed
// /run could cost a read on the cold-start path. The file also holds '1'
// while in use, for controllers that read the older format (its byte: '1'
// in use, '0' or nothing released); a file of that format released cleanly
// ('0') counts as in use once, and its user is swept before its next use.
bool WorkerIdentities::ClaimedDirty(int fd) {
  struct stat st {};
  const bool dirty = ::fstat(fd, &st) != 0 || st.st_size != 0;
  // Emptied first, so writing the byte never reads the block it replaces.
  const char in_use = '1';
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, &in_use, 1, 0) != 1) (void)!::ftruncate(fd, 1);
  return dirty;
}

// Whether slot's user is free on this machine: no controller holds its lock.
bool WorkerIdentities::Lockable(size_t slot) const {
  if (!drop_) return true;
  const int fd = LockUser(slot);
  if (fd < 0) return false;
  ::close(fd);  // releases the lock
  return true;
}

// The base directory: the one named after the data dir, emptied, when it is
// a real directory of this user's (or absent); else a fresh mkdtemp one, so
// nobody else's file or link there is ever followed.
Status WorkerIdentities::MakeBaseDir() {
  const char* tmp = std::getenv("TMPDIR");
  const std::string parent = tmp != nullptr && *tmp == '/' ? tmp : "/tmp";
  const std::string named =
      parent + "/wisp-workers-" + loader::Sha256Hex(options_.data_dir).substr(0, 12);
  struct stat st {};
  const bool exists = ::lstat(named.c_str(), &st) == 0;
  if (!exists || (S_ISDIR(st.st_mode) && st.st_uid == ::geteuid())) {
    std::error_code ec;
    if (exists) std::filesystem::remove_all(named, ec);  // a crashed run's
    if (!ec && ::mkdir(named.c_str(), 0700) == 0) base_dir_ = named;
  }
  if (base_dir_.empty()) {
    std::string pattern = parent + "/wisp-workers-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      return Status::FromErrno("cannot create the workers' directory " + pattern, errno);
    }
    base_dir_ = pattern;
  }
  // Workers of other users pass through to their own directories only.
  if (::chmod(base_dir_.c_str(), drop_ ? 0711 : 0700) != 0) {
    return Status::FromErrno("chmod " + base_dir_, errno);
  }
  return Status::OK();
}

StatusOr<int> WorkerIdentities::Acquire(const FunctionLimits& limits, proto::Sandbox* sandbox) {
  size_t slot = taken_.size();
  // The lowest free slot: few working directories, each emptied for reuse.
  for (size_t candidate = 0; candidate < taken_.size(); ++candidate) {
    if (Claim(candidate)) {
      slot = candidate;
      break;
    }
  }
  if (slot == taken_.size()) {
    return Status::ResourceExhausted("all " + std::to_string(taken_.size()) +
                                     " worker identities are in use");
  }
  sandbox->set_drop_privileges(drop_);
  if (drop_) {
    sandbox->set_sweep_first(ClaimedDirty(taken_[slot]));
    sandbox->set_uid(options_.first_uid + static_cast<uint32_t>(slot));
    sandbox->set_gid(options_.first_uid + static_cast<uint32_t>(slot));
  }
  sandbox->set_work_dir(base_dir_ + "/" + std::to_string(slot));
  sandbox->set_memory_bytes(limits.memory_bytes);
  sandbox->set_open_files(limits.open_files);
  sandbox->set_processes(limits.processes);
  sandbox->set_cpu_ms(limits.cpu_ms);
  sandbox->set_max_reply_bytes(limits.max_reply_bytes);
  sandbox->set_max_events(limits.max_events);
  sandbox->set_seccomp(options_.seccomp);
  return static_cast<int>(slot);
}

void WorkerIdentities::Release(int slot) {
  if (slot < 0 || static_cast<size_t>(slot) >= taken_.size() || taken_[slot] == -1) return;
  if (taken_[slot] > 0) {
    (void)!::ftruncate(taken_[slot], 0);  // released cleanly
    ::close(taken_[slot]);
  }
  taken_[slot] = -1;
}

void WorkerIdentities::PrepareNextDir() {
  if (base_dir_.empty()) return;
  for (size_t slot = 0; slot < taken_.size(); ++slot) {
    // A user another controller's worker has is skipped, as Acquire would.
    if (taken_[slot] != -1 || !Lockable(slot)) continue;
    const std::string dir = base_dir_ + "/" + std::to_string(slot);
    if (::mkdir(dir.c_str(), 0700) != 0) return;  // it exists (or cannot be made here)
    if (drop_) {
      const uint32_t id = options_.first_uid + static_cast<uint32_t>(slot);
      if (::chown(dir.c_str(), id, id) != 0) ::rmdir(dir.c_str());
    }
    return;
  }
}

std::string WorkerIdentities::Describe() const {
  const std::string seccomp =
      options_.seccomp
          ? "; a seccomp filter denies the system calls that reach past the worker (ptrace, "
            "mount, kexec, modules, bpf, io_uring, namespaces, ...)"
          : "; no seccomp filter (--no-seccomp)";
  std::string users =
      drop_ ? "each worker runs as its own user (uids " + std::to_string(options_.first_uid) + "-" +
                  std::to_string(options_.first_uid + options_.count - 1) + ")"
            : ::geteuid() == 0 ? "workers run as root (--worker-uids off): no process limit"
                               : "workers run as the controller's user (not root): no "
                                 "process limit, and they can read the data dir";
#if defined(__SANITIZE_ADDRESS__)
  return users + seccomp +
         "; memory not limited (an AddressSanitizer build: RLIMIT_AS would refuse its shadow)";
#else
  std::string memory = "; memory limited by RLIMIT_AS (address space";
  // The cgroup v2 memory controller would bound resident memory instead; wisp
  // does not use it yet, and says whether this machine has it.
  std::ifstream controllers("/sys/fs/cgroup/cgroup.controllers");
  std::string line;
  const bool cgroup2_memory = std::getline(controllers, line) &&
                              (" " + line + " ").find(" memory ") != std::string::npos;
  memory += cgroup2_memory ? "; this machine has the cgroup v2 memory controller, unused)"
                           : "; no cgroup v2 memory controller here)";
  return users + seccomp + memory;
#endif
}

}  // namespace wisp::runtime
