// One wisp-worker subprocess, seen from the controller.
//
// Workers are forked by the zygote (zygote.h). The channel is two pipes
// carrying framed protobuf, one each way (the worker's fds 3 and 4): a pipe
// write costs about a third of a socket write here, and a reader sleeping on
// one is not woken when the other side drains its own frames. Frames may be
// sent at once, before the fork has happened: they wait in the pipe.
// The worker's stdout and stderr share a socketpair whose lines are
// written to the controller's stderr, prefixed with the function's name.
// Frames sent during one loop iteration leave in one write (a uv_prepare
// flushes them before the loop next blocks), so a burst of invocations costs one wake-up of the worker.
//
// Ownership: a WorkerProcess owns itself. It is created by Spawn and deletes
// itself after the process has exited, its listener's OnWorkerExit has
// returned and all its handles are closed. The listener must not use the
// pointer after OnWorkerExit.
// Threading: the loop thread only; callbacks arrive there.
#ifndef WISP_RUNTIME_WORKER_PROCESS_H_
#define WISP_RUNTIME_WORKER_PROCESS_H_

#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>

#include "runtime/base/status.h"
#include "runtime/framing.h"
#include "worker.pb.h"

namespace wisp::runtime {

class WorkerProcess;
class Zygote;

struct WorkerExit {
  int64_t exit_status = 0;
  int term_signal = 0;
  // Set when the controller ended the worker (timeout, bad frame, ...).
  std::string kill_reason;
  // "killed by SIGSEGV", "exited with status 3", or the kill reason.
  std::string Describe() const;
};

class WorkerListener {
 public:
  virtual ~WorkerListener() = default;
  // A frame arrived; frame may be moved from.
  virtual void OnWorkerFrame(WorkerProcess* worker, proto::Frame& frame) = 0;
  // The deadline set with SetDeadline passed.
  virtual void OnWorkerDeadline(WorkerProcess* worker) = 0;
  // The process is gone; every frame it sent has been delivered before this.
  virtual void OnWorkerExit(WorkerProcess* worker, const WorkerExit& exit) = 0;
};

class WorkerProcess {
 public:
  enum class State { kRunning, kExiting, kExited };

  struct Options {
    size_t max_frame_bytes = kDefaultMaxFrameBytes;
  };

  // Starts a generic worker (no function loaded) through zygote. listener is
  // borrowed and may be changed later with set_listener. IOError or
  // Unavailable if the pipes or the log socket cannot be created or the
  // zygote cannot be asked; a fork that fails later arrives as OnWorkerExit.
  static StatusOr<WorkerProcess*> Spawn(uv_loop_t* loop, Zygote* zygote, const Options& options,
                                        WorkerListener* listener);

  // Called by the zygote: the process now exists as pid.
  void OnForked(int pid);
  // Called by the zygote: the process has ended (or never started, with
  // reason set). Delivers what it wrote, then OnWorkerExit, then closes.
  void OnExited(int64_t exit_status, int term_signal, const std::string& reason);

  // Queues a frame; it leaves at the end of this loop iteration.
  // Ignored once the worker is exiting.
  void Send(const proto::Frame& frame);

  // Ends the worker with SIGKILL; reason ends up in WorkerExit::kill_reason.
  void Kill(const std::string& reason);

  // Arms the one deadline timer (replacing an earlier one); 0 disarms it.
  void SetDeadline(uint64_t timeout_ms);

  void set_listener(WorkerListener* listener) { listener_ = listener; }
  // The function this worker serves, for log prefixes; empty while generic.
  void set_label(std::string label) { label_ = std::move(label); }
  // sink(line) runs on the loop thread for each line the worker writes to
  // stdout or stderr (besides the controller's stderr); empty: none.
  void set_log_sink(std::function<void(const std::string& line)> sink) {
    log_sink_ = std::move(sink);
  }
  // 0 until the zygote has reported the fork.
  int pid() const { return pid_; }
  State state() const { return state_; }
  uint64_t started_ms() const { return started_ms_; }

 private:
  WorkerProcess(uv_loop_t* loop, const Options& options, WorkerListener* listener);
  ~WorkerProcess() = default;
  Status Start(Zygote* zygote);
  void Flush();
  void OnRead(ssize_t nread, const uv_buf_t* buf);
  void OnLogRead(ssize_t nread, const uv_buf_t* buf);
  void EmitLogLine();
  void DrainLog();
  void DrainChannel();
  void DeliverFrames();
  void CloseHandles();
  void OnHandleClosed();
  void OnChannelClosedByWorker();

  static void AllocCb(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void ReadCb(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void LogReadCb(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void FlushCheckCb(uv_check_t* check);
  static void FlushPrepareCb(uv_prepare_t* prepare);
  void StopFlushers();
  static void WriteCb(uv_write_t* req, int status);
  static void TimerCb(uv_timer_t* timer);
  static void CloseCb(uv_handle_t* handle);

  uv_loop_t* loop_;
  Options options_;
  WorkerListener* listener_;
  State state_ = State::kRunning;
  std::string label_;
  int pid_ = 0;
  uint64_t started_ms_ = 0;

  uv_pipe_t channel_{};      // reads the worker's frames
  uv_pipe_t channel_out_{};  // writes frames to the worker
  uv_pipe_t log_{};
  // Queued frames are flushed by whichever runs first: the check after the
  // poll phase that queued them, or the prepare before the next poll (for
  // frames queued by timers).
  uv_check_t flush_check_{};
  uv_prepare_t flush_prepare_{};
  uv_timer_t deadline_{};
  int open_handles_ = 0;
  bool kill_pending_ = false;  // Kill before the pid was known

  FrameDecoder decoder_;
  std::string pending_;   // frames not yet handed to libuv
  std::string inflight_;  // bytes of the write in progress
  uv_write_t write_req_{};
  bool writing_ = false;
  std::string log_line_;
  std::function<void(const std::string& line)> log_sink_;
  bool log_seen_ = false;  // the worker has written to its log

  bool exited_ = false;
  bool eof_grace_ = false;
  bool killed_ = false;
  bool channel_eof_ = false;
  WorkerExit exit_;
};

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_WORKER_PROCESS_H_
