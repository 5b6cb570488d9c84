#include "runtime/seccomp_filter.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace wisp::runtime {
namespace {

// Denied with EPERM. Grouped by what they would let a function reach.
constexpr const char* kDenied[] = {
    // Other processes: tracing, their memory, their descriptors.
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    // Filesystems and namespaces.
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "mount_setattr",
    "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "name_to_handle_at",
    "open_by_handle_at", "quotactl", "quotactl_fd", "fanotify_init",
    // Kernel code, modules, the machine itself.
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
    "swapon", "swapoff", "acct", "syslog", "iopl", "ioperm", "uselib", "lookup_dcookie",
    "nfsservctl", "vhangup", "bpf", "perf_event_open", "userfaultfd",
    // The clock and the host's names.
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname",
    // The kernel keyring.
    "add_key", "request_key", "keyctl",
    // io_uring runs operations the filter would not see.
    "io_uring_setup", "io_uring_enter", "io_uring_register",
};

// clone flags that make a namespace.
constexpr unsigned long kNamespaceFlags[] = {
    CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET,
    CLONE_NEWCGROUP,
};

struct ContextDeleter {
  void operator()(scmp_filter_ctx ctx) const { seccomp_release(ctx); }
};
using Context = std::unique_ptr<void, ContextDeleter>;

Status Failed(const char* step, int rc) {
  return Status::Internal(std::string("seccomp: ") + step + ": " + std::strerror(-rc));
}

}  // namespace

const std::vector<std::string>& SeccompDeniedSyscalls() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> list;
    for (const char* name : kDenied) {
      if (seccomp_syscall_resolve_name(name) != __NR_SCMP_ERROR) list.emplace_back(name);
    }
    return list;
  }();
  return names;
}

namespace {

// The filter as libseccomp builds it.
Status BuildFilter(Context* out) {
  Context ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (ctx == nullptr) return Status::Internal("seccomp: seccomp_init failed");
  int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  if (rc == 0) rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_TSYNC, 1);
  if (rc != 0) return Failed("seccomp_attr_set", rc);
  for (const std::string& name : SeccompDeniedSyscalls()) {
    rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(EPERM),
                          seccomp_syscall_resolve_name(name.c_str()), 0);
    if (rc != 0) return Failed(("deny " + name).c_str(), rc);
  }
  for (unsigned long flag : kNamespaceFlags) {
    rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                          SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag));
    if (rc != 0) return Failed("deny clone with a namespace flag", rc);
  }
  rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
  if (rc != 0) return Failed("deny clone3", rc);
  *out = std::move(ctx);
  return Status::OK();
}

// The BPF program PrepareSeccompFilter compiled; empty until then.
std::vector<sock_filter>& PreparedProgram() {
  static std::vector<sock_filter> program;
  return program;
}

}  // namespace

Status PrepareSeccompFilter() {
  Context ctx;
  WISP_RETURN_IF_ERROR(BuildFilter(&ctx));
  // libseccomp 2.5 exports only to a descriptor: a memory file, read back.
  const int fd = ::memfd_create("wisp-seccomp", MFD_CLOEXEC);
  if (fd < 0) return Status::IOError(std::string("seccomp: memfd_create: ") + std::strerror(errno));
  Status s = [&]() -> Status {
    const int rc = seccomp_export_bpf(ctx.get(), fd);
    if (rc != 0) return Failed("seccomp_export_bpf", rc);
    struct stat st {};
    if (::fstat(fd, &st) != 0 || st.st_size <= 0 ||
        st.st_size % static_cast<off_t>(sizeof(sock_filter)) != 0) {
      return Status::Internal("seccomp: the exported filter has an unexpected size");
    }
    if (static_cast<size_t>(st.st_size) / sizeof(sock_filter) > BPF_MAXINSNS) {
      return Status::Internal("seccomp: the exported filter is longer than the kernel takes");
    }
    std::vector<sock_filter> program(static_cast<size_t>(st.st_size) / sizeof(sock_filter));
    if (::pread(fd, program.data(), static_cast<size_t>(st.st_size), 0) != st.st_size) {
      return Status::IOError("seccomp: cannot read the exported filter back");
    }
    PreparedProgram() = std::move(program);
    return Status::OK();
  }();
  ::close(fd);
  return s;
}

namespace {

// Whether this process has the filter (a forked child keeps both).
bool& FilterInstalled() {
  static bool installed = false;
  return installed;
}

Status InstallOnce() {
  const std::vector<sock_filter>& prepared = PreparedProgram();
  if (!prepared.empty()) {
    // What seccomp_load does with the same program, minus compiling it.
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
      return Status::Internal(std::string("seccomp: no_new_privs: ") + std::strerror(errno));
    }
    sock_fprog program{static_cast<unsigned short>(prepared.size()),
                       const_cast<sock_filter*>(prepared.data())};
    const long rc =
        ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &program);
    if (rc != 0) {
      return Status::Internal(rc > 0 ? "seccomp: thread " + std::to_string(rc) +
                                           " could not take the filter"
                                     : std::string("seccomp: ") + std::strerror(errno));
    }
    return Status::OK();
  }
  Context ctx;
  WISP_RETURN_IF_ERROR(BuildFilter(&ctx));
  const int rc = seccomp_load(ctx.get());
  if (rc != 0) return Failed("seccomp_load", rc);
  return Status::OK();
}

}  // namespace

Status InstallSeccompFilter() {
  if (FilterInstalled()) return Status::OK();
  WISP_RETURN_IF_ERROR(InstallOnce());
  FilterInstalled() = true;
  return Status::OK();
}

}  // namespace wisp::runtime
