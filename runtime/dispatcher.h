// The dispatcher of one deployed function version: a bounded queue of
// invocations in front of up to max_workers workers, each fed pipelined
// invocations.
//
// Policy: an invocation goes to a worker with nothing in flight; failing that
// it is pipelined onto the least-loaded worker, up to pipeline_depth in
// flight per worker, and the rest waits in the queue (503 with Retry-After
// once the queue is full). A new worker is started then (one at a time, up to
// max_workers) only when the workers are the bottleneck, from the run time
// they report per invocation (Result.run_ns):
//   - no run time is known yet for this version;
//   - the workers were busy more than kScaleOutBusyShare of the last
//     kBusyWindowNs (the run times' sum against the wall time, per worker);
//   - the invocation would wait behind more than kScaleOutWaitNs of work
//     (the invocations in flight on that worker times the average run time);
//   - the invocation running on that worker has been on it for more than
//     kStuckHeadNs (the age includes the controller's own delay in sending
//     it, hence the longer bound); invocations left in the queue are looked
//     at again then, though no result or call comes, but those already
//     pipelined behind it wait for it;
//   - the invocation running on that worker waits on a call it made (which
//     may be waiting on this function): nothing is pipelined behind it while
//     another worker can take it.
// So a function of a few microseconds keeps one worker under many callers
// unless that worker is busy more than half the time: a second would only
// split its batches over two channels (with 32 callers of hello, one worker
// serves 9% more requests than two), while a slow or busy function gets every
// worker it may.
// Workers run invocations in order, so the head of a worker's in-flight list
// is the one running: its deadline is the timeout, its failure is the one
// reported, and the invocations behind it (never started) go back to the
// front of the queue.
//
// Failures reach the caller as InvocationOutcome errors: 504 on timeout (the
// worker is killed), 502 when the worker dies or cannot load the function,
// 503 when the queue is full or no worker can be started.
//
// Ownership: owned by the controller. Destroy only after Drain's callback.
// Threading: the loop thread only.
#ifndef WISP_RUNTIME_DISPATCHER_H_
#define WISP_RUNTIME_DISPATCHER_H_

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/function_limits.h"
#include "runtime/worker_identities.h"
#include "runtime/worker_pool.h"
#include "runtime/worker_process.h"
#include "worker.pb.h"

namespace wisp::runtime {

// When a dispatcher starts another worker (see the policy above).
inline constexpr uint64_t kScaleOutWaitNs = 1000 * 1000;
inline constexpr uint64_t kStuckHeadNs = 20 * 1000 * 1000;
inline constexpr uint64_t kBusyWindowNs = 100 * 1000 * 1000;
inline constexpr double kScaleOutBusyShare = 0.5;

struct FunctionSpec {
  std::string name;
  std::string version;
  std::string artifact_path;
  std::map<std::string, std::string> env;  // the config map
  uint64_t timeout_ms = 30000;
  uint64_t idle_ms = 60000;
  uint32_t max_workers = 2;
  FunctionLimits limits;
  uint32_t pipeline_depth = 32;
  size_t max_queue = 1000;
};

// Counters of one function, kept across versions by the controller.
struct FunctionCounters {
  uint64_t loads = 0;
  uint64_t invocations = 0;
  uint64_t errors = 0;
};

// Either the function's successful reply, or why there is none: the
// dispatcher turns a failed wisp_handle (500 function_error) and a reply it
// cannot pass on into errors too.
struct InvocationOutcome {
  bool has_result = false;
  proto::Result result;       // when has_result: what the function replied
  int http_status = 0;        // otherwise: the error
  std::string error_code;     // "timeout", "worker_crashed", "load_failed", ...
  std::string error_message;
  int retry_after_s = 0;      // for 503: when to retry
  bool cold = false;          // it waited for its worker to load the function
  std::string version;        // the version of the function that ran it
  uint64_t duration_ns = 0;   // from Submit to completion
  std::string trace_id;       // the invocation's span (trace_context.h), for
  std::string span_id;        // the events it emitted
};

// The HTTP status the caller of an invocation gets: the function's (200 when
// it set none) or the error's.
inline int OutcomeStatus(const InvocationOutcome& outcome) {
  if (!outcome.has_result) return outcome.http_status;
  return outcome.result.status() == 0 ? 200 : static_cast<int>(outcome.result.status());
}

using InvocationDone = std::function<void(InvocationOutcome outcome)>;

class Dispatcher : public WorkerListener {
 public:
  // loop, pool, identities and counters are borrowed and must outlive the
  // dispatcher. Each worker loading the function takes an identity (its
  // user, directory and limits) from identities until it has exited.
  Dispatcher(uv_loop_t* loop, WorkerPool* pool, WorkerIdentities* identities, FunctionSpec spec,
             FunctionCounters* counters);
  ~Dispatcher() override;
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Queues one invocation; done runs exactly once, possibly before Submit
  // returns (full queue, a body over the max_request limit: 413), always on
  // the loop thread.
  void Submit(proto::Invoke invoke, InvocationDone done);

  // Stops taking work: in-flight invocations finish, then workers are shut
  // down. Invocations still waiting, or put back later after a worker
  // failure, go to successor() when it returns a dispatcher (a new version of
  // the function), else fail with 503. on_drained runs once every worker has
  // exited and the dispatcher's handles are closed; it may destroy this.
  void Drain(std::function<void()> on_drained, std::function<Dispatcher*()> successor = nullptr);

  // observer(true) runs when the function becomes loaded (a worker reported
  // Loaded) and observer(false) when its last loaded worker is gone; called
  // on the loop thread from inside worker callbacks.
  void set_load_observer(std::function<void(bool loaded)> observer) {
    load_observer_ = std::move(observer);
  }
  // observer(invoke, outcome) runs for every completed invocation, just
  // before its done callback, on the loop thread; it must not re-enter the
  // dispatcher.
  using CompletionObserver =
      std::function<void(const proto::Invoke& invoke, const InvocationOutcome& outcome)>;
  void set_completion_observer(CompletionObserver observer) {
    completion_observer_ = std::move(observer);
  }
  // observer(invocation_id, line) runs for each line a worker of this
  // dispatcher writes to stdout or stderr, with the id of the invocation it
  // was running when the line arrived (the oldest in flight; empty if none).
  using LogObserver = std::function<void(const std::string& invocation_id, const std::string& line)>;
  void set_log_observer(LogObserver observer) { log_observer_ = std::move(observer); }
  // handler(caller, call, reply) runs when the invocation caller, running on
  // one of this dispatcher's workers, calls another function (host->call);
  // reply(answer) sends the answer back to that worker if it still runs that
  // invocation (else it is dropped); it may be called after this dispatcher
  // is gone. Without a handler a call fails with 501.
  using CallHandler = std::function<void(const proto::Invoke& caller, proto::Call call,
                                         std::function<void(proto::CallReply)> reply)>;
  void set_call_handler(CallHandler handler) { call_handler_ = std::move(handler); }
  // Whether Submit would queue rather than refuse with 503.
  bool has_room() const { return !draining_ && queue_.size() < spec_.max_queue; }

  const FunctionSpec& spec() const { return spec_; }
  std::vector<int> WorkerPids() const;
  size_t queue_depth() const { return queue_.size(); }

  // WorkerListener.
  void OnWorkerFrame(WorkerProcess* worker, proto::Frame& frame) override;
  void OnWorkerDeadline(WorkerProcess* worker) override;
  void OnWorkerExit(WorkerProcess* worker, const WorkerExit& exit) override;

 private:
  struct Job {
    proto::Frame frame;  // holds the Invoke, kept to re-send after a crash
    InvocationDone done;
    uint64_t submitted_ns = 0;  // uv_hrtime at Submit
    bool cold = false;          // assigned to a worker still loading
  };
  struct Slot {
    enum class State { kLoading, kReady, kStopping, kDead };
    WorkerProcess* worker = nullptr;
    State state = State::kLoading;
    std::deque<std::unique_ptr<Job>> inflight;
    uint64_t idle_since_ms = 0;
    bool loaded = false;  // reported Loaded
    std::string last_invocation;  // id of the last invocation it answered
    int identity = -1;  // its WorkerIdentities slot
    uint64_t head_started_ns = 0;  // uv_hrtime when the running invocation began
    bool head_in_call = false;     // the running invocation waits on a call it made
  };

  void Dispatch();
  bool WorthAnotherWorker(const Slot* least_loaded) const;
  void NoteRunTime(uint64_t run_ns);
  double BusyShare() const;
  bool StartWorker();
  void Assign(Slot* slot, std::unique_ptr<Job> job);
  void Complete(std::unique_ptr<Job> job, InvocationOutcome outcome);
  void Fail(std::unique_ptr<Job> job, int http_status, std::string code, std::string message);
  void FailAllInflight(Slot* slot, int http_status, const std::string& code,
                       const std::string& message);
  void RequeueInflight(Slot* slot);
  void OnResult(Slot* slot, proto::Result& result);
  void OnCall(Slot* slot, proto::Call& call);
  void BecomeIdleOrContinue(Slot* slot);
  void StopWorker(Slot* slot);
  void ArmReaper();
  void Reap();
  void MaybeFinishDrain();
  void UpdateLoaded();
  void HandOverQueue();
  Slot* FindSlot(WorkerProcess* worker);
  size_t LiveSlots() const;
  static void ReaperCb(uv_timer_t* timer);

  std::string LimitCrossed(const proto::Result& result) const;
  std::string ExitCause(const WorkerExit& exit, std::string* code) const;

  uv_loop_t* loop_;
  WorkerPool* pool_;
  WorkerIdentities* identities_;
  FunctionSpec spec_;
  FunctionCounters* counters_;
  std::deque<std::unique_ptr<Job>> queue_;
  std::vector<std::unique_ptr<Slot>> slots_;
  uint64_t next_id_ = 1;
  uint64_t run_ns_average_ = 0;  // of Result.run_ns, exponentially weighted
  bool run_ns_known_ = false;
  uint64_t busy_ns_ = 0;               // run_ns summed since busy_window_start_ns_
  uint64_t busy_window_start_ns_ = 0;  // uv_hrtime; 0 before the first result
  double busy_share_ = 0;              // of the last whole window, per worker
  uint64_t recheck_at_ms_ = 0;         // uv_now when Dispatch looks again; 0: no need
  uv_timer_t* reaper_;  // owned; freed in its close callback
  bool draining_ = false;
  bool reaper_closed_ = false;
  std::function<void()> on_drained_;
  std::function<Dispatcher*()> successor_;
  std::function<void(bool)> load_observer_;
  CompletionObserver completion_observer_;
  LogObserver log_observer_;
  CallHandler call_handler_;
  // Outlives nothing: replies to calls hold a weak_ptr to see whether this
  // dispatcher still exists.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  bool announced_loaded_ = false;
};

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_DISPATCHER_H_
