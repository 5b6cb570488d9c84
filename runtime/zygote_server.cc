#include "runtime/zygote_server.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "runtime/framing.h"
#include "runtime/sandbox.h"
#include "runtime/seccomp_filter.h"
#include "runtime/worker_loop.h"

namespace wisp::runtime {
namespace {

constexpr int kMaxFdsPerRead = 64;

class ZygoteServer {
 public:
  explicit ZygoteServer(std::chrono::microseconds worker_spin) : worker_spin_(worker_spin) {}
  int Run();

 private:
  bool ReadChannel();
  void ReapChildren();
  void Fork(uint64_t id);
  [[noreturn]] void BecomeWorker(int input_fd, int output_fd, int log_fd);
  void Send(const proto::Frame& frame);
  bool Flush();

  const std::chrono::microseconds worker_spin_;
  int signal_fd_ = -1;
  FrameDecoder decoder_;
  std::deque<int> fds_;  // received descriptors, in arrival order
  std::string out_;
  std::unordered_set<pid_t> workers_;  // forked and not yet reaped
  // A worker's exit waits for the sweep of its user: the controller may give
  // that user to a new worker once it hears of the exit.
  std::unordered_map<pid_t, proto::Frame> sweeps_;  // by the sweeper's pid
};

bool ZygoteServer::ReadChannel() {
  char buf[16 * 1024];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerRead)];
  iovec iov{buf, sizeof(buf)};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = ::recvmsg(kWorkerChannelFd, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return false;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const int* received = reinterpret_cast<const int*>(CMSG_DATA(c));
    for (size_t i = 0; i < count; ++i) fds_.push_back(received[i]);
  }
  if ((msg.msg_flags & MSG_CTRUNC) != 0) {
    // Descriptors were dropped (none free here): the queue no longer lines
    // up with the requests. Everything queued is closed, so the forks asked
    // for in this read fail ("without its descriptors") and later requests,
    // each with its own three, line up again.
    std::fprintf(stderr, "wisp-zygote: descriptors lost in transit (MSG_CTRUNC)\n");
    for (int fd : fds_) ::close(fd);
    fds_.clear();
  }
  decoder_.Feed(buf, static_cast<size_t>(n));
  proto::Frame frame;
  while (true) {
    StatusOr<bool> got = decoder_.Next(&frame);
    if (!got.ok()) {
      std::fprintf(stderr, "wisp-zygote: bad frame: %s\n", got.status().ToString().c_str());
      return false;
    }
    if (!*got) break;
    if (frame.has_zygote_fork()) Fork(frame.zygote_fork().id());
  }
  return true;
}

void ZygoteServer::Fork(uint64_t id) {
  proto::Frame reply;
  if (fds_.size() < 3) {
    reply.mutable_zygote_fork_failed()->set_id(id);
    reply.mutable_zygote_fork_failed()->set_message("fork request without its descriptors");
    Send(reply);
    return;
  }
  int fds[3];
  for (int& fd : fds) {
    fd = fds_.front();
    fds_.pop_front();
  }
  const pid_t pid = ::fork();
  if (pid == 0) BecomeWorker(fds[0], fds[1], fds[2]);
  for (int fd : fds) ::close(fd);
  if (pid < 0) {
    reply.mutable_zygote_fork_failed()->set_id(id);
    reply.mutable_zygote_fork_failed()->set_message(std::string("fork: ") + std::strerror(errno));
  } else {
    workers_.insert(pid);
    reply.mutable_zygote_forked()->set_id(id);
    reply.mutable_zygote_forked()->set_pid(pid);
  }
  Send(reply);
}

void ZygoteServer::BecomeWorker(int input_fd, int output_fd, int log_fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() == 1) ::_exit(0);  // the zygote is already gone
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
  // Its own process group: what the function starts is killed with it.
  ::setpgid(0, 0);
  ::close(signal_fd_);
  for (int fd : fds_) ::close(fd);
  // Each descriptor is moved above the targets first, so no dup2 below can
  // overwrite one that is still to be moved.
  const int moved[3] = {::fcntl(input_fd, F_DUPFD_CLOEXEC, kWorkerOutputFd + 1),
                        ::fcntl(output_fd, F_DUPFD_CLOEXEC, kWorkerOutputFd + 1),
                        ::fcntl(log_fd, F_DUPFD_CLOEXEC, kWorkerOutputFd + 1)};
  if (moved[0] < 0 || moved[1] < 0 || moved[2] < 0) ::_exit(1);
  ::dup2(moved[0], kWorkerChannelFd);  // replaces the zygote's channel
  ::dup2(moved[1], kWorkerOutputFd);
  ::dup2(moved[2], STDOUT_FILENO);
  ::dup2(moved[2], STDERR_FILENO);
  for (int fd : {input_fd, output_fd, log_fd, moved[0], moved[1], moved[2]}) {
    if (fd > kWorkerOutputFd) ::close(fd);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  RunWorker(worker_spin_);
}

// Reaps every child: workers (reported, after their process group is killed
// and, for a worker that ran as its own user, after that user is swept),
// sweepers (their worker's exit is reported now), and orphans of workers,
// which the zygote inherits as the subreaper.
void ZygoteServer::ReapChildren() {
  signalfd_siginfo ignored;
  while (::read(signal_fd_, &ignored, sizeof(ignored)) == sizeof(ignored)) {
  }
  while (true) {
    siginfo_t info{};
    if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG) != 0 || info.si_pid == 0) break;
    const pid_t pid = info.si_pid;
    if (auto sweep = sweeps_.find(pid); sweep != sweeps_.end()) {
      Send(sweep->second);
      sweeps_.erase(sweep);
      continue;
    }
    if (workers_.erase(pid) == 0) continue;  // an orphan
    ::kill(-pid, SIGKILL);
    proto::Frame frame;
    proto::ZygoteExited* exited = frame.mutable_zygote_exited();
    exited->set_pid(pid);
    if (info.si_code == CLD_EXITED) {
      exited->set_exit_status(info.si_status);
    } else {
      exited->set_term_signal(info.si_status);
    }
    if (info.si_uid != ::getuid() && ::getuid() == 0) {
      const pid_t sweeper = StartSweep(info.si_uid, info.si_uid);
      if (sweeper > 0) {
        sweeps_.emplace(sweeper, std::move(frame));
        continue;
      }
    }
    Send(frame);
  }
}

void ZygoteServer::Send(const proto::Frame& frame) { (void)AppendFrame(frame, &out_); }

bool ZygoteServer::Flush() {
  size_t done = 0;
  while (done < out_.size()) {
    const ssize_t n = ::write(kWorkerChannelFd, out_.data() + done, out_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  out_.clear();
  return true;
}

int ZygoteServer::Run() {
  // Ctrl-C or a service manager signals the whole process group; the
  // controller decides when workers stop (Shutdown frames, then SIGKILL).
  // Workers inherit these dispositions.
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGTERM, SIG_IGN);
  // Processes a worker's function leaves behind come to the zygote, which
  // reaps them.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &chld, nullptr);
  signal_fd_ = ::signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd_ < 0) {
    std::fprintf(stderr, "wisp-zygote: signalfd: %s\n", std::strerror(errno));
    return 1;
  }
  while (true) {
    pollfd fds[2] = {{kWorkerChannelFd, POLLIN, 0}, {signal_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    if (fds[1].revents != 0) ReapChildren();
    if (fds[0].revents != 0 && !ReadChannel()) return 0;  // the controller is gone
    if (!Flush()) return 0;
  }
}

}  // namespace

int RunZygote(std::chrono::microseconds worker_spin) {
  // Once here rather than in every worker that loads a function.
  if (Status s = PrepareSeccompFilter(); !s.ok()) {
    std::fprintf(stderr, "wisp-zygote: %s; each worker will compile it\n", s.ToString().c_str());
  }
  ZygoteServer server(worker_spin);
  return server.Run();
}

}  // namespace wisp::runtime
