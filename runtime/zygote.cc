#include "runtime/zygote.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/signal_names.h"
#include "runtime/worker_process.h"

namespace wisp::runtime {
namespace {
constexpr size_t kReadBufferBytes = 64 * 1024;
constexpr uint64_t kYoungMs = 1000;
constexpr uint64_t kMaxRestartDelayMs = 10000;
}  // namespace

Zygote::Zygote(uv_loop_t* loop, std::string worker_path, uint64_t worker_spin_us)
    : loop_(loop), worker_path_(std::move(worker_path)), spin_arg_(std::to_string(worker_spin_us)) {}

Zygote::~Zygote() = default;

namespace {

// What of the controller's environment reaches the zygote and so every
// function: only what a process needs to run (the search path, locale, time
// zone, temporary dir) and sanitizer settings. Nothing else leaks through:
// no WISP_TOKEN, no credentials the controller was started with. A function
// gets its own config map on top (worker.proto's Load.env).
std::vector<std::string> WorkerEnvironment() {
  static constexpr std::string_view kKept[] = {"PATH",  "HOME",         "LANG",        "LC_ALL",
                                               "TZ",    "TMPDIR",       "ASAN_OPTIONS", "UBSAN_OPTIONS",
                                               "LSAN_OPTIONS"};
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const std::string_view name = entry.substr(0, entry.find('='));
    for (std::string_view kept : kKept) {
      if (name == kept || (name.starts_with("LC_") && kept == "LC_ALL")) {
        env.emplace_back(entry);
        break;
      }
    }
  }
  return env;
}

}  // namespace

Status Zygote::Start() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return Status::FromErrno("socketpair", errno);
  }
  process_ = new uv_process_t;
  channel_ = new uv_pipe_t;
  process_->data = this;
  channel_->data = this;
  uv_pipe_init(loop_, channel_, 0);
  ++open_handles_;

  std::vector<char*> args = {const_cast<char*>(worker_path_.c_str()),
                             const_cast<char*>("--zygote"), const_cast<char*>("--spin-us"),
                             spin_arg_.data(), nullptr};
  uv_stdio_container_t stdio[4];
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = UV_INHERIT_FD;
  stdio[1].data.fd = STDERR_FILENO;
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = STDERR_FILENO;
  stdio[3].flags = UV_INHERIT_FD;
  stdio[3].data.fd = fds[1];
  uv_process_options_t options{};
  options.file = worker_path_.c_str();
  options.args = args.data();
  std::vector<std::string> env = WorkerEnvironment();
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  options.env = envp.data();
  options.stdio = stdio;
  options.stdio_count = 4;
  options.exit_cb = [](uv_process_t* p, int64_t status, int signal) {
    static_cast<Zygote*>(p->data)->OnExit(status, signal);
  };
  const int rc = uv_spawn(loop_, process_, &options);
  process_->data = this;
  ++open_handles_;
  ::close(fds[1]);
  if (rc < 0) {
    ::close(fds[0]);
    CloseHandles();
    return Status::IOError("spawn " + worker_path_ + " --zygote: " + uv_strerror(rc));
  }
  channel_fd_ = fds[0];
  uv_pipe_open(channel_, channel_fd_);
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(channel_),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* self = static_cast<Zygote*>(h->data);
        self->read_buf_.resize(kReadBufferBytes);
        *buf = uv_buf_init(self->read_buf_.data(), static_cast<unsigned>(kReadBufferBytes));
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
        static_cast<Zygote*>(s->data)->OnRead(nread, buf);
      });
  running_ = true;
  started_ms_ = uv_now(loop_);
  return Status::OK();
}

void Zygote::QueuedFork::CloseFds() const {
  ::close(input_fd);
  ::close(output_fd);
  ::close(log_fd);
}

Status Zygote::RequestFork(WorkerProcess* worker, int input_fd, int output_fd, int log_fd) {
  const QueuedFork fork{next_id_++, worker, input_fd, output_fd, log_fd};
  if (!running_) {
    fork.CloseFds();
    return Status::Unavailable("the worker zygote is not running");
  }
  queued_.push_back(fork);
  SendQueuedForks();
  return Status::OK();
}

void Zygote::SendQueuedForks() {
  while (running_ && !queued_.empty() && pending_.size() < kMaxForksInFlight) {
    QueuedFork fork = queued_.front();
    queued_.pop_front();
    const bool sent = SendFork(fork);
    fork.CloseFds();
    if (!sent) {
      // The stream is unusable: restart the zygote; OnExit fails this
      // request with the others.
      pending_[fork.id] = fork.worker;
      uv_process_kill(process_, SIGKILL);
      return;
    }
    pending_[fork.id] = fork.worker;
  }
}

bool Zygote::SendFork(const QueuedFork& fork) {
  proto::Frame frame;
  frame.mutable_zygote_fork()->set_id(fork.id);
  std::string bytes;
  if (!AppendFrame(frame, &bytes).ok()) return false;
  const int fds[3] = {fork.input_fd, fork.output_fd, fork.log_fd};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(fds))] = {};
  iovec iov{bytes.data(), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(fds));
  std::memcpy(CMSG_DATA(c), fds, sizeof(fds));
  ssize_t n;
  do {
    n = ::sendmsg(channel_fd_, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(bytes.size())) {
    std::fprintf(stderr, "wisp: cannot send a fork request to the zygote: %s\n",
                 n < 0 ? std::strerror(errno) : "short send");
    return false;
  }
  return true;
}

void Zygote::OnRead(ssize_t nread, const uv_buf_t* buf) {
  if (nread < 0) {
    uv_read_stop(reinterpret_cast<uv_stream_t*>(channel_));
    if (running_) uv_process_kill(process_, SIGKILL);
    return;
  }
  decoder_.Feed(buf->base, static_cast<size_t>(nread));
  proto::Frame frame;
  while (true) {
    StatusOr<bool> got = decoder_.Next(&frame);
    if (!got.ok()) {
      std::fprintf(stderr, "wisp: zygote sent a bad frame: %s\n", got.status().ToString().c_str());
      uv_read_stop(reinterpret_cast<uv_stream_t*>(channel_));
      uv_process_kill(process_, SIGKILL);
      return;
    }
    if (!*got) return;
    OnFrame(frame);
  }
}

void Zygote::OnFrame(const proto::Frame& frame) {
  if (frame.has_zygote_forked()) {
    auto it = pending_.find(frame.zygote_forked().id());
    if (it == pending_.end()) return;
    WorkerProcess* worker = it->second;
    pending_.erase(it);
    live_[frame.zygote_forked().pid()] = worker;
    worker->OnForked(frame.zygote_forked().pid());
    SendQueuedForks();
  } else if (frame.has_zygote_fork_failed()) {
    auto it = pending_.find(frame.zygote_fork_failed().id());
    if (it == pending_.end()) return;
    WorkerProcess* worker = it->second;
    pending_.erase(it);
    worker->OnExited(-1, 0, "cannot fork a worker: " + frame.zygote_fork_failed().message());
    SendQueuedForks();
  } else if (frame.has_zygote_exited()) {
    auto it = live_.find(frame.zygote_exited().pid());
    if (it == live_.end()) return;
    WorkerProcess* worker = it->second;
    live_.erase(it);
    worker->OnExited(frame.zygote_exited().exit_status(), frame.zygote_exited().term_signal(), "");
  }
}

void Zygote::FailAll(const std::string& reason) {
  auto queued = std::move(queued_);
  auto pending = std::move(pending_);
  auto live = std::move(live_);
  queued_.clear();
  pending_.clear();
  live_.clear();
  for (const QueuedFork& fork : queued) {
    fork.CloseFds();
    fork.worker->OnExited(-1, SIGKILL, reason);
  }
  for (auto& [id, worker] : pending) worker->OnExited(-1, SIGKILL, reason);
  for (auto& [pid, worker] : live) {
    ::kill(pid, SIGKILL);  // normally already dead with the zygote
    worker->OnExited(-1, SIGKILL, reason);
  }
}

void Zygote::OnExit(int64_t exit_status, int term_signal) {
  running_ = false;
  const std::string how = DescribeExit(exit_status, term_signal);
  if (!closing_) std::fprintf(stderr, "wisp: the worker zygote %s; restarting it\n", how.c_str());
  FailAll("worker lost: the worker zygote " + how);
  CloseHandles();
  if (closing_) return;
  // A zygote that dies young is in a crash loop: back off.
  const bool died_young = uv_now(loop_) - started_ms_ < kYoungMs;
  restart_failures_ = died_young ? restart_failures_ + 1 : 0;
  ScheduleRestart();
}

void Zygote::ScheduleRestart() {
  const uint64_t delay =
      restart_failures_ == 0 ? 0 : std::min<uint64_t>(kMaxRestartDelayMs, 50ull << std::min(restart_failures_, 8));
  if (restart_timer_ == nullptr) {
    restart_timer_ = new uv_timer_t;
    uv_timer_init(loop_, restart_timer_);
    restart_timer_->data = this;
    ++open_handles_;
  }
  uv_timer_start(restart_timer_, [](uv_timer_t* t) {
    auto* self = static_cast<Zygote*>(t->data);
    if (self->closing_) return;
    // Fresh handles for a fresh zygote; the old ones are freed in their
    // close callbacks.
    Status s = self->Start();
    if (!s.ok()) {
      std::fprintf(stderr, "wisp: cannot restart the worker zygote: %s\n", s.ToString().c_str());
      ++self->restart_failures_;
      self->ScheduleRestart();
    }
  }, delay, 0);
}

void Zygote::CloseHandles() {
  for (uv_handle_t* h : {reinterpret_cast<uv_handle_t*>(channel_),
                         reinterpret_cast<uv_handle_t*>(process_)}) {
    if (h == nullptr || uv_is_closing(h)) continue;
    uv_close(h, [](uv_handle_t* handle) {
      auto* self = static_cast<Zygote*>(handle->data);
      if (handle->type == UV_PROCESS) {
        delete reinterpret_cast<uv_process_t*>(handle);
      } else {
        delete reinterpret_cast<uv_pipe_t*>(handle);
      }
      self->OnHandleClosed();
    });
  }
  channel_ = nullptr;
  process_ = nullptr;
  channel_fd_ = -1;
  decoder_ = FrameDecoder();
}

void Zygote::OnHandleClosed() {
  --open_handles_;
  if (closing_ && open_handles_ == 0 && on_closed_) {
    auto done = std::move(on_closed_);
    on_closed_ = nullptr;
    done();
  }
}

void Zygote::Close(std::function<void()> on_closed) {
  closing_ = true;
  on_closed_ = std::move(on_closed);
  if (restart_timer_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(restart_timer_), [](uv_handle_t* h) {
      auto* self = static_cast<Zygote*>(h->data);
      delete reinterpret_cast<uv_timer_t*>(h);
      self->OnHandleClosed();
    });
    restart_timer_ = nullptr;
  }
  if (running_ && process_ != nullptr) {
    uv_process_kill(process_, SIGKILL);  // OnExit closes the handles
    return;
  }
  CloseHandles();
  if (open_handles_ == 0 && on_closed_) {
    auto done = std::move(on_closed_);
    on_closed_ = nullptr;
    done();
  }
}

}  // namespace wisp::runtime
