#include "runtime/worker_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <vector>

#include "runtime/base/check.h"
#include "runtime/signal_names.h"
#include "runtime/zygote.h"

namespace wisp::runtime {
namespace {

constexpr size_t kReadBufferBytes = 64 * 1024;
constexpr size_t kMaxLogLineBytes = 16 * 1024;
constexpr uint64_t kEofGraceMs = 500;

Status MakeSocketPair(int fds[2]) {
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return Status::FromErrno("socketpair", errno);
  }
  return Status::OK();
}

Status UvStatus(const char* what, int rc) {
  if (rc >= 0) return Status::OK();
  return Status::IOError(std::string(what) + ": " + uv_strerror(rc));
}

}  // namespace

std::string WorkerExit::Describe() const {
  if (!kill_reason.empty()) return kill_reason;
  return DescribeExit(exit_status, term_signal);
}

WorkerProcess::WorkerProcess(uv_loop_t* loop, const Options& options, WorkerListener* listener)
    : loop_(loop),
      options_(options),
      listener_(listener),
      decoder_(options.max_frame_bytes) {}

StatusOr<WorkerProcess*> WorkerProcess::Spawn(uv_loop_t* loop, Zygote* zygote,
                                              const Options& options, WorkerListener* listener) {
  auto* worker = new WorkerProcess(loop, options, listener);
  Status s = worker->Start(zygote);
  if (!s.ok()) {
    worker->state_ = State::kExited;
    worker->exited_ = true;
    worker->CloseHandles();  // deletes the worker once closed
    return s;
  }
  return worker;
}

Status WorkerProcess::Start(Zygote* zygote) {
  for (uv_handle_t* h : {reinterpret_cast<uv_handle_t*>(&flush_check_),
                         reinterpret_cast<uv_handle_t*>(&flush_prepare_),
                         reinterpret_cast<uv_handle_t*>(&deadline_),
                         reinterpret_cast<uv_handle_t*>(&channel_),
                         reinterpret_cast<uv_handle_t*>(&channel_out_),
                         reinterpret_cast<uv_handle_t*>(&log_)}) {
    h->data = this;
  }
  uv_check_init(loop_, &flush_check_);
  uv_prepare_init(loop_, &flush_prepare_);
  uv_timer_init(loop_, &deadline_);
  uv_pipe_init(loop_, &channel_, 0);
  uv_pipe_init(loop_, &channel_out_, 0);
  uv_pipe_init(loop_, &log_, 0);
  open_handles_ = 6;

  // [read end, write end] of each: the controller keeps the read end of
  // from_worker, the write end of to_worker and log[0]; the worker gets the
  // rest. An end a handle has taken is -1 here; on failure close_all closes
  // the others.
  int to_worker[2] = {-1, -1};
  int from_worker[2] = {-1, -1};
  int log_fds[2] = {-1, -1};
  auto close_all = [&] {
    for (int fd : {to_worker[0], to_worker[1], from_worker[0], from_worker[1], log_fds[0],
                   log_fds[1]}) {
      if (fd >= 0) ::close(fd);
    }
  };
  if (::pipe2(to_worker, O_CLOEXEC) != 0 || ::pipe2(from_worker, O_CLOEXEC) != 0) {
    const int err = errno;
    close_all();
    return Status::FromErrno("pipe2", err);
  }
  Status s = MakeSocketPair(log_fds);
  if (!s.ok()) {
    close_all();
    return s;
  }
  int* kept[3] = {&from_worker[0], &to_worker[1], &log_fds[0]};
  uv_pipe_t* handles[3] = {&channel_, &channel_out_, &log_};
  for (int i = 0; i < 3; ++i) {
    if (uv_pipe_open(handles[i], *kept[i]) != 0) {
      close_all();
      return Status::IOError("cannot open the worker's pipes");
    }
    *kept[i] = -1;  // the handle's now, closed with it
  }
  s = UvStatus("read worker channel",
               uv_read_start(reinterpret_cast<uv_stream_t*>(&channel_), AllocCb, ReadCb));
  if (s.ok()) {
    s = UvStatus("read worker log",
                 uv_read_start(reinterpret_cast<uv_stream_t*>(&log_), AllocCb, LogReadCb));
  }
  if (!s.ok()) {
    close_all();
    return s;
  }
  started_ms_ = uv_now(loop_);
  // Last: once the zygote knows this worker, it must live until its exit.
  // The zygote takes the worker's ends.
  return zygote->RequestFork(this, to_worker[0], from_worker[1], log_fds[1]);
}

void WorkerProcess::OnForked(int pid) {
  pid_ = pid;
  if (kill_pending_) ::kill(pid_, SIGKILL);
}

void WorkerProcess::Send(const proto::Frame& frame) {
  if (state_ != State::kRunning) return;
  Status s = AppendFrame(frame, &pending_, options_.max_frame_bytes);
  if (!s.ok()) {
    std::fprintf(stderr, "wisp: not sending frame to worker %d: %s\n", pid_,
                 s.ToString().c_str());
    return;
  }
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&flush_check_))) {
    uv_check_start(&flush_check_, FlushCheckCb);
    uv_prepare_start(&flush_prepare_, FlushPrepareCb);
  }
}

void WorkerProcess::StopFlushers() {
  uv_check_stop(&flush_check_);
  uv_prepare_stop(&flush_prepare_);
}

void WorkerProcess::FlushCheckCb(uv_check_t* check) {
  auto* self = static_cast<WorkerProcess*>(check->data);
  self->StopFlushers();
  self->Flush();
}

void WorkerProcess::FlushPrepareCb(uv_prepare_t* prepare) {
  auto* self = static_cast<WorkerProcess*>(prepare->data);
  self->StopFlushers();
  self->Flush();
}

void WorkerProcess::Flush() {
  if (writing_ || pending_.empty() || state_ != State::kRunning) return;
  uv_buf_t buf = uv_buf_init(pending_.data(), static_cast<unsigned>(pending_.size()));
  auto* stream = reinterpret_cast<uv_stream_t*>(&channel_out_);
  int written = uv_try_write(stream, &buf, 1);
  if (written == UV_EAGAIN) written = 0;
  if (written < 0) {
    Kill(std::string("write to worker failed: ") + uv_strerror(written));
    return;
  }
  if (static_cast<size_t>(written) == pending_.size()) {
    pending_.clear();
    return;
  }
  inflight_.assign(pending_, static_cast<size_t>(written));
  pending_.clear();
  buf = uv_buf_init(inflight_.data(), static_cast<unsigned>(inflight_.size()));
  write_req_.data = this;
  const int rc = uv_write(&write_req_, stream, &buf, 1, WriteCb);
  if (rc < 0) {
    Kill(std::string("write to worker failed: ") + uv_strerror(rc));
    return;
  }
  writing_ = true;
}

void WorkerProcess::WriteCb(uv_write_t* req, int status) {
  auto* self = static_cast<WorkerProcess*>(req->data);
  self->writing_ = false;
  self->inflight_.clear();
  if (status < 0) {
    if (status != UV_ECANCELED) {
      self->Kill(std::string("write to worker failed: ") + uv_strerror(status));
    }
    return;
  }
  self->Flush();
}

void WorkerProcess::Kill(const std::string& reason) {
  if (exited_ || state_ == State::kExited || killed_) return;
  killed_ = true;
  if (exit_.kill_reason.empty()) exit_.kill_reason = reason;
  state_ = State::kExiting;
  uv_timer_stop(&deadline_);
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
  } else {
    kill_pending_ = true;
  }
}

void WorkerProcess::SetDeadline(uint64_t timeout_ms) {
  if (state_ != State::kRunning) return;
  if (timeout_ms == 0) {
    uv_timer_stop(&deadline_);
    return;
  }
  uv_timer_start(&deadline_, TimerCb, timeout_ms, 0);
}

void WorkerProcess::TimerCb(uv_timer_t* timer) {
  auto* self = static_cast<WorkerProcess*>(timer->data);
  if (self->eof_grace_) {
    self->Kill("worker closed its channel");
    return;
  }
  if (self->state_ == State::kRunning && self->listener_ != nullptr) {
    self->listener_->OnWorkerDeadline(self);
  }
}

// Every worker of a loop reads into one buffer: a read callback consumes
// what it is given before it returns (the decoder and the log line copy
// it), and a buffer per worker would cost each a 64 KiB allocation, paged
// in on the cold start's path and kept while the function is loaded.
void WorkerProcess::AllocCb(uv_handle_t*, size_t, uv_buf_t* buf) {
  thread_local std::unique_ptr<char[]> shared;
  if (shared == nullptr) shared = std::make_unique<char[]>(kReadBufferBytes);
  *buf = uv_buf_init(shared.get(), static_cast<unsigned>(kReadBufferBytes));
}

void WorkerProcess::ReadCb(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  static_cast<WorkerProcess*>(stream->data)->OnRead(nread, buf);
}

void WorkerProcess::OnRead(ssize_t nread, const uv_buf_t* buf) {
  if (nread > 0) {
    // The worker writes an invocation's output before its result: taking
    // what waits on the log first credits each line to the invocation that
    // wrote it, not to the next one.
    // Only for a worker that writes output at all: a silent one (most)
    // costs no extra read per batch.
    if (log_sink_ && log_seen_) DrainLog();
    decoder_.Feed(buf->base, static_cast<size_t>(nread));
    DeliverFrames();
    return;
  }
  if (nread == 0) return;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&channel_));
  channel_eof_ = true;
  if (!exited_) OnChannelClosedByWorker();
}

void WorkerProcess::OnChannelClosedByWorker() {
  // Usually the process is exiting and its exit status follows at once; give
  // it a moment so the caller learns the real cause, then make sure.
  if (state_ != State::kRunning) return;
  state_ = State::kExiting;
  eof_grace_ = true;
  uv_timer_start(&deadline_, TimerCb, kEofGraceMs, 0);
}

void WorkerProcess::DeliverFrames() {
  proto::Frame frame;
  while (!channel_eof_ || exited_) {
    StatusOr<bool> got = decoder_.Next(&frame);
    if (!got.ok()) {
      Kill("worker sent a bad frame: " + got.status().message());
      return;
    }
    if (!*got) return;
    if (listener_ != nullptr) listener_->OnWorkerFrame(this, frame);
    if (state_ == State::kExited) return;
  }
}

void WorkerProcess::LogReadCb(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  static_cast<WorkerProcess*>(stream->data)->OnLogRead(nread, buf);
}

void WorkerProcess::OnLogRead(ssize_t nread, const uv_buf_t* buf) {
  if (nread < 0) {
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&log_));
    if (!log_line_.empty()) EmitLogLine();
    return;
  }
  if (nread > 0) log_seen_ = true;
  for (ssize_t i = 0; i < nread; ++i) {
    const char c = buf->base[i];
    if (c == '\n' || log_line_.size() >= kMaxLogLineBytes) {
      EmitLogLine();
      if (c == '\n') continue;
    }
    log_line_ += c;
  }
}

void WorkerProcess::DrainLog() {
  int fd = -1;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(&log_), &fd) != 0) return;
  char buf[16 * 1024];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n > 0) {
      const uv_buf_t chunk = uv_buf_init(buf, static_cast<unsigned>(n));
      OnLogRead(n, &chunk);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return;  // nothing more now, or EOF (libuv's own read reports it)
  }
}

void WorkerProcess::EmitLogLine() {
  std::fprintf(stderr, "[%s %d] %s\n", label_.empty() ? "worker" : label_.c_str(), pid_,
               log_line_.c_str());
  if (log_sink_) log_sink_(log_line_);
  log_line_.clear();
}

void WorkerProcess::DrainChannel() {
  // The process is gone: whatever it wrote is already in the pipe.
  int fd = -1;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(&channel_), &fd) != 0) return;
  char buf[kReadBufferBytes];
  while (!channel_eof_) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n > 0) {
      decoder_.Feed(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;  // EOF, EAGAIN (a descendant still holds the pipe's write end), or an error
  }
  channel_eof_ = true;
}

void WorkerProcess::OnExited(int64_t exit_status, int term_signal, const std::string& reason) {
  if (exited_) return;
  exited_ = true;
  exit_.exit_status = exit_status;
  exit_.term_signal = term_signal;
  if (!reason.empty() && exit_.kill_reason.empty()) exit_.kill_reason = reason;
  if (state_ == State::kRunning) state_ = State::kExiting;
  DrainChannel();
  DeliverFrames();
  state_ = State::kExited;
  uv_timer_stop(&deadline_);
  if (listener_ != nullptr) listener_->OnWorkerExit(this, exit_);
  listener_ = nullptr;
  CloseHandles();
}

void WorkerProcess::CloseHandles() {
  auto close = [](auto* handle) {
    auto* h = reinterpret_cast<uv_handle_t*>(handle);
    if (!uv_is_closing(h)) uv_close(h, CloseCb);
  };
  close(&flush_check_);
  close(&flush_prepare_);
  close(&deadline_);
  close(&channel_);
  close(&channel_out_);
  close(&log_);
}

void WorkerProcess::CloseCb(uv_handle_t* handle) {
  static_cast<WorkerProcess*>(handle->data)->OnHandleClosed();
}

void WorkerProcess::OnHandleClosed() {
  if (--open_handles_ == 0) delete this;
}

}  // namespace wisp::runtime
