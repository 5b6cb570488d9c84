// The controller's side of the zygote (zygote_server.h): one wisp-worker
// --zygote child that forks generic workers on request. Asking for a worker
// is one small message; the controller's loop never blocks on fork or exec,
// and a new worker is a fork of a small, already-linked process.
//
// The zygote reaps the workers and reports their exits; this class routes
// ZygoteForked / ZygoteExited to the WorkerProcess they belong to. If the
// zygote itself dies, its workers die with it: each gets an exit with that
// reason, and a new zygote is started.
//
// Ownership: owned by the controller; WorkerProcess objects register
// themselves through RequestFork and are forgotten once their exit is routed.
// Threading: the loop thread only.
#ifndef WISP_RUNTIME_ZYGOTE_H_
#define WISP_RUNTIME_ZYGOTE_H_

#include <uv.h>

#include <deque>
#include <functional>
#include <string>
#include <unordered_map>

#include "runtime/base/status.h"
#include "runtime/framing.h"

namespace wisp::runtime {

class WorkerProcess;

class Zygote {
 public:
  // loop is borrowed; worker_path is the wisp-worker binary; its workers poll
  // for up to worker_spin_us before sleeping while invocations come densely.
  Zygote(uv_loop_t* loop, std::string worker_path, uint64_t worker_spin_us);
  ~Zygote();
  Zygote(const Zygote&) = delete;
  Zygote& operator=(const Zygote&) = delete;

  // Spawns the zygote process. IOError if it cannot be started.
  Status Start();

  // Asks for a worker whose channel is the given pipe ends (input: the read
  // end of the controller's frames; output: the write end of the worker's)
  // and whose log is the given socket end; takes ownership of the three
  // descriptors (they are closed once handed over, or on failure). worker is borrowed until its exit has been routed to it; once
  // this returns OK every outcome, a failed fork included, arrives through
  // WorkerProcess::OnForked / OnExited. Unavailable when the zygote is not
  // running (nothing was queued). At most kMaxForksInFlight requests are
  // outstanding at the zygote; the rest wait here, so a burst of cold starts
  // never overfills the socket.
  Status RequestFork(WorkerProcess* worker, int input_fd, int output_fd, int log_fd);

  static constexpr size_t kMaxForksInFlight = 32;

  // From now on a zygote that dies is not restarted (the controller is
  // shutting down). Idempotent.
  void StopRestarting() { closing_ = true; }

  // Stops the zygote (its workers die with it); on_closed runs once its
  // handles are closed.
  void Close(std::function<void()> on_closed);

 private:
  struct QueuedFork {
    uint64_t id;
    WorkerProcess* worker;
    int input_fd;
    int output_fd;
    int log_fd;
    void CloseFds() const;
  };
  void SendQueuedForks();
  bool SendFork(const QueuedFork& fork);
  void OnRead(ssize_t nread, const uv_buf_t* buf);
  void OnFrame(const proto::Frame& frame);
  void OnExit(int64_t exit_status, int term_signal);
  void FailAll(const std::string& reason);
  void CloseHandles();
  void ScheduleRestart();
  void OnHandleClosed();

  uv_loop_t* loop_;
  std::string worker_path_;
  std::string spin_arg_;
  uv_process_t* process_ = nullptr;  // owned; freed in its close callback
  uv_pipe_t* channel_ = nullptr;     // owned; freed in its close callback
  int channel_fd_ = -1;
  bool running_ = false;
  uint64_t started_ms_ = 0;
  int restart_failures_ = 0;
  uv_timer_t* restart_timer_ = nullptr;  // owned; freed in its close callback
  bool closing_ = false;
  int open_handles_ = 0;
  std::function<void()> on_closed_;
  FrameDecoder decoder_;
  std::string read_buf_;
  uint64_t next_id_ = 1;
  std::deque<QueuedFork> queued_;                         // not yet sent
  std::unordered_map<uint64_t, WorkerProcess*> pending_;  // sent, by request id
  std::unordered_map<int, WorkerProcess*> live_;          // by pid
};

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_ZYGOTE_H_
