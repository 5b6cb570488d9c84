#include "runtime/dispatcher.h"

#include <signal.h>

#include <algorithm>
#include <cstdio>

#include "runtime/base/check.h"
#include "runtime/duration.h"
#include "runtime/sandbox.h"

namespace wisp::runtime {
namespace {
// How long a worker may take to exit after Shutdown before it is killed.
constexpr uint64_t kShutdownGraceMs = 5000;
}  // namespace

Dispatcher::Dispatcher(uv_loop_t* loop, WorkerPool* pool, WorkerIdentities* identities,
                       FunctionSpec spec, FunctionCounters* counters)
    : loop_(loop),
      pool_(pool),
      identities_(identities),
      spec_(std::move(spec)),
      counters_(counters),
      reaper_(new uv_timer_t) {
  uv_timer_init(loop_, reaper_);
  reaper_->data = this;
}

Dispatcher::~Dispatcher() { WISP_CHECK(slots_.empty() && reaper_closed_); }

void Dispatcher::Submit(proto::Invoke invoke, InvocationDone done) {
  auto job = std::make_unique<Job>();
  job->done = std::move(done);
  job->submitted_ns = uv_hrtime();
  *job->frame.mutable_invoke() = std::move(invoke);
  if (job->frame.invoke().body().size() > spec_.limits.max_request_bytes) {
    const std::string size = std::to_string(job->frame.invoke().body().size());
    Fail(std::move(job), 413, "request_too_large",
         "function " + spec_.name + " takes at most " +
             std::to_string(spec_.limits.max_request_bytes) + " bytes (its max_request limit); " +
             "this request has " + size);
    return;
  }
  if (draining_) {
    Fail(std::move(job), 503, "function_unavailable",
         "function " + spec_.name + " is being replaced or removed");
    return;
  }
  if (queue_.size() >= spec_.max_queue) {
    InvocationOutcome outcome;
    outcome.http_status = 503;
    outcome.error_code = "queue_full";
    outcome.error_message = "function " + spec_.name + " already has " +
                            std::to_string(queue_.size()) + " invocations waiting";
    outcome.retry_after_s = 1;
    Complete(std::move(job), std::move(outcome));
    return;
  }
  queue_.push_back(std::move(job));
  Dispatch();
}

size_t Dispatcher::LiveSlots() const {
  size_t n = 0;
  for (const auto& slot : slots_) {
    if (slot->state == Slot::State::kLoading || slot->state == Slot::State::kReady) ++n;
  }
  return n;
}

void Dispatcher::HandOverQueue() {
  Dispatcher* next = successor_ ? successor_() : nullptr;
  while (!queue_.empty()) {
    std::unique_ptr<Job> job = std::move(queue_.front());
    queue_.pop_front();
    if (next != nullptr && next != this) {
      next->Submit(std::move(*job->frame.mutable_invoke()), std::move(job->done));
    } else {
      Fail(std::move(job), 503, "function_unavailable",
           "function " + spec_.name + " was removed before this invocation could run");
    }
  }
}

void Dispatcher::Dispatch() {
  if (draining_) {
    HandOverQueue();  // only invocations put back after a worker failure
    return;
  }
  while (!queue_.empty()) {
    Slot* best = nullptr;
    bool loading = false;
    for (const auto& slot : slots_) {
      if (slot->state == Slot::State::kLoading) loading = true;
      if (slot->state != Slot::State::kLoading && slot->state != Slot::State::kReady) continue;
      // A worker already on its way out (killed, or closed its channel) gets
      // nothing more: what it was given would be failed without having run.
      if (slot->worker->state() != WorkerProcess::State::kRunning) continue;
      // A worker whose running invocation waits on a call may wait on an
      // invocation of this function: nothing goes behind it while another
      // worker can take it (two functions calling each other would
      // otherwise wait on each other's queues until a timeout).
      if (best == nullptr || std::pair(slot->head_in_call, slot->inflight.size()) <
                                 std::pair(best->head_in_call, best->inflight.size())) {
        best = slot.get();
      }
    }
    if (best != nullptr && best->inflight.empty()) {
      std::unique_ptr<Job> job = std::move(queue_.front());
      queue_.pop_front();
      Assign(best, std::move(job));
      continue;
    }
    if (!loading && LiveSlots() < spec_.max_workers && WorthAnotherWorker(best)) {
      if (StartWorker()) continue;
      if (best == nullptr) return;  // every waiting invocation has been failed
    }
    if (best != nullptr && best->inflight.size() < spec_.pipeline_depth) {
      std::unique_ptr<Job> job = std::move(queue_.front());
      queue_.pop_front();
      Assign(best, std::move(job));
      continue;
    }
    // Left waiting: if no result comes sooner, look again once the running
    // invocation counts as stuck, when another worker may be started for them.
    if (!loading && best != nullptr && LiveSlots() < spec_.max_workers) {
      const uint64_t age_ns = uv_hrtime() - best->head_started_ns;
      const uint64_t in_ms = age_ns >= kStuckHeadNs ? 1 : (kStuckHeadNs - age_ns) / 1000000 + 1;
      recheck_at_ms_ = uv_now(loop_) + in_ms;
      ArmReaper();
    }
    return;
  }
}

// The policy of dispatcher.h: whether the workers, least_loaded the least
// loaded of them (nullptr: none can take work), are the bottleneck.
bool Dispatcher::WorthAnotherWorker(const Slot* least_loaded) const {
  if (least_loaded == nullptr || !run_ns_known_ || least_loaded->head_in_call) return true;
  if (BusyShare() > kScaleOutBusyShare) return true;
  if (least_loaded->inflight.size() * run_ns_average_ > kScaleOutWaitNs) return true;
  return uv_hrtime() - least_loaded->head_started_ns > kStuckHeadNs;
}

// Samples are capped (a worker reports what it likes), so the product with
// an in-flight count cannot overflow; each moves the average by an eighth.
// A sample counts toward the busy share of the window it ends in, at most
// the window's length so far (a long first run is not a busy window).
void Dispatcher::NoteRunTime(uint64_t run_ns) {
  constexpr uint64_t kMaxSampleNs = uint64_t{3600} * 1000 * 1000 * 1000;
  run_ns = std::min(run_ns, kMaxSampleNs);
  if (!run_ns_known_) {
    run_ns_average_ = run_ns;
    run_ns_known_ = true;
  } else {
    run_ns_average_ = run_ns_average_ - run_ns_average_ / 8 + run_ns / 8;
  }
  const uint64_t now = uv_hrtime();
  if (busy_window_start_ns_ == 0) busy_window_start_ns_ = now;
  const uint64_t elapsed = now - busy_window_start_ns_;
  busy_ns_ += std::min(run_ns, elapsed);
  if (elapsed >= kBusyWindowNs) {
    busy_share_ = static_cast<double>(busy_ns_) / static_cast<double>(elapsed) /
                  static_cast<double>(std::max<size_t>(LiveSlots(), 1));
    busy_ns_ = 0;
    busy_window_start_ns_ = now;
  }
}

// The last whole window's share; none once no result has closed a window
// for two windows' time (the workers went quiet).
double Dispatcher::BusyShare() const {
  if (busy_window_start_ns_ == 0 || uv_hrtime() - busy_window_start_ns_ > 2 * kBusyWindowNs) {
    return 0;
  }
  return busy_share_;
}

bool Dispatcher::StartWorker() {
  StatusOr<WorkerProcess*> taken = pool_->Take(this);
  if (!taken.ok()) {
    const std::string message = "cannot start a worker for " + spec_.name + ": " +
                                taken.status().message();
    std::fprintf(stderr, "wisp: %s\n", message.c_str());
    if (LiveSlots() == 0) {
      while (!queue_.empty()) {
        std::unique_ptr<Job> job = std::move(queue_.front());
        queue_.pop_front();
        Fail(std::move(job), 503, "no_worker", message);
      }
    }
    return false;
  }
  // Measured again with the new worker.
  busy_share_ = 0;
  busy_ns_ = 0;
  busy_window_start_ns_ = 0;
  auto slot = std::make_unique<Slot>();
  slot->worker = *taken;
  slot->worker->set_label(spec_.name);
  WorkerProcess* worker = slot->worker;
  worker->set_log_sink([this, worker](const std::string& line) {
    if (!log_observer_) return;
    // The invocation in progress; with none, the one it just answered (its
    // output can be read after its result).
    Slot* s = FindSlot(worker);
    static const std::string kNone;
    const std::string& id = s == nullptr              ? kNone
                            : !s->inflight.empty()    ? s->inflight.front()->frame.invoke().invocation_id()
                                                      : s->last_invocation;
    log_observer_(id, line);
  });
  proto::Frame load;
  load.mutable_load()->set_path(spec_.artifact_path);
  load.mutable_load()->set_function(spec_.name);
  load.mutable_load()->set_version(spec_.version);
  for (const auto& [key, value] : spec_.env) (*load.mutable_load()->mutable_env())[key] = value;
  StatusOr<int> identity = identities_->Acquire(spec_.limits, load.mutable_load()->mutable_sandbox());
  if (identity.ok()) {
    slot->identity = *identity;
    slot->worker->Send(load);
  } else {
    slot->worker->Kill(identity.status().message());  // reported as a failed load
  }
  slot->worker->SetDeadline(spec_.timeout_ms);
  slots_.push_back(std::move(slot));
  return true;
}

void Dispatcher::Assign(Slot* slot, std::unique_ptr<Job> job) {
  job->frame.mutable_invoke()->set_id(next_id_++);
  job->cold = slot->state == Slot::State::kLoading;
  slot->worker->Send(job->frame);
  if (slot->inflight.empty() && slot->state == Slot::State::kReady) {
    slot->worker->SetDeadline(spec_.timeout_ms);
    slot->head_started_ns = uv_hrtime();
    slot->head_in_call = false;
  }
  slot->inflight.push_back(std::move(job));
}

void Dispatcher::Complete(std::unique_ptr<Job> job, InvocationOutcome outcome) {
  ++counters_->invocations;
  if (!outcome.has_result) ++counters_->errors;
  outcome.cold = job->cold;
  outcome.version = spec_.version;
  outcome.duration_ns = uv_hrtime() - job->submitted_ns;
  outcome.trace_id = job->frame.invoke().trace_id();
  outcome.span_id = job->frame.invoke().span_id();
  if (completion_observer_) completion_observer_(job->frame.invoke(), outcome);
  InvocationDone done = std::move(job->done);
  done(std::move(outcome));
}

void Dispatcher::Fail(std::unique_ptr<Job> job, int http_status, std::string code,
                      std::string message) {
  InvocationOutcome outcome;
  outcome.http_status = http_status;
  outcome.error_code = std::move(code);
  outcome.error_message = std::move(message);
  Complete(std::move(job), std::move(outcome));
}

void Dispatcher::FailAllInflight(Slot* slot, int http_status, const std::string& code,
                                 const std::string& message) {
  while (!slot->inflight.empty()) {
    std::unique_ptr<Job> job = std::move(slot->inflight.front());
    slot->inflight.pop_front();
    Fail(std::move(job), http_status, code, message);
  }
}

void Dispatcher::RequeueInflight(Slot* slot) {
  while (!slot->inflight.empty()) {
    queue_.push_front(std::move(slot->inflight.back()));
    slot->inflight.pop_back();
  }
}

Dispatcher::Slot* Dispatcher::FindSlot(WorkerProcess* worker) {
  for (const auto& slot : slots_) {
    if (slot->worker == worker) return slot.get();
  }
  return nullptr;
}

void Dispatcher::OnWorkerFrame(WorkerProcess* worker, proto::Frame& frame) {
  Slot* slot = FindSlot(worker);
  if (slot == nullptr || slot->state == Slot::State::kDead) return;
  switch (frame.kind_case()) {
    case proto::Frame::kLoaded:
      if (slot->state != Slot::State::kLoading) {
        worker->Kill("worker sent Loaded twice");
        return;
      }
      slot->state = Slot::State::kReady;
      slot->loaded = true;
      ++counters_->loads;
      UpdateLoaded();
      BecomeIdleOrContinue(slot);
      Dispatch();
      return;
    case proto::Frame::kLoadFailed:
      slot->state = Slot::State::kDead;
      worker->Kill("worker could not load " + spec_.name);
      FailAllInflight(slot, 502, "load_failed",
                      "cannot load function " + spec_.name + ": " + frame.load_failed().message());
      return;
    case proto::Frame::kResult:
      OnResult(slot, *frame.mutable_result());
      return;
    case proto::Frame::kCall:
      OnCall(slot, *frame.mutable_call());
      return;
    default:
      worker->Kill("worker sent an unexpected frame");
      return;
  }
}

void Dispatcher::OnCall(Slot* slot, proto::Call& call) {
  if (slot->state != Slot::State::kReady || slot->inflight.empty()) {
    slot->worker->Kill("worker sent a call with no invocation running");
    return;
  }
  const proto::Invoke& caller = slot->inflight.front()->frame.invoke();
  slot->head_in_call = true;
  std::weak_ptr<int> alive = alive_;
  auto reply = [this, alive, worker = slot->worker, invocation = caller.id(),
                call_id = call.id()](proto::CallReply answer) {
    if (alive.expired()) return;
    Slot* target = FindSlot(worker);
    // The worker may have died (its slot gone, the pointer reused): only the
    // same invocation, still running, gets the answer.
    if (target == nullptr || target->state != Slot::State::kReady || target->inflight.empty() ||
        target->inflight.front()->frame.invoke().id() != invocation) {
      return;
    }
    answer.set_id(call_id);
    proto::Frame frame;
    *frame.mutable_call_reply() = std::move(answer);
    worker->Send(frame);
  };
  if (!call_handler_) {
    proto::CallReply answer;
    answer.set_status(501);
    answer.set_failed(true);
    answer.set_body(R"({"error":{"code":"not_supported","message":"calls are not offered here"}})");
    return reply(std::move(answer));
  }
  call_handler_(caller, std::move(call), std::move(reply));
}

void Dispatcher::OnResult(Slot* slot, proto::Result& result) {
  if (slot->state != Slot::State::kReady || slot->inflight.empty() ||
      slot->inflight.front()->frame.invoke().id() != result.id()) {
    slot->worker->Kill("worker sent a result for invocation " + std::to_string(result.id()) +
                       " out of order");
    return;
  }
  std::unique_ptr<Job> job = std::move(slot->inflight.front());
  slot->inflight.pop_front();
  NoteRunTime(result.run_ns());
  if (log_observer_) slot->last_invocation = job->frame.invoke().invocation_id();
  const std::string limit = LimitCrossed(result);
  if (!limit.empty()) {
    Fail(std::move(job), 502, limit == "max_events" ? "too_many_events" : "reply_too_large",
         "function " + spec_.name + " crossed its " + limit + " limit (" +
             (limit == "max_events" ? std::to_string(spec_.limits.max_events) + " events"
                                    : FormatByteSize(spec_.limits.max_reply_bytes)) +
             ")");
  } else if (result.function_error() != 0) {
    std::string message = "function " + spec_.name + " failed: wisp_handle returned " +
                          std::to_string(result.function_error());
    if (!result.error_message().empty()) message += " (" + result.error_message() + ")";
    Fail(std::move(job), 500, "function_error", std::move(message));
  } else if (result.status() != 0 && (result.status() < 200 || result.status() > 599)) {
    // The host refuses such a status; only a frame forged by the function
    // can carry one.
    Fail(std::move(job), 502, "invalid_reply",
         "function " + spec_.name + " replied with status " + std::to_string(result.status()) +
             ", outside 200..599");
  } else {
    InvocationOutcome outcome;
    outcome.has_result = true;
    outcome.result = std::move(result);
    Complete(std::move(job), std::move(outcome));
  }
  BecomeIdleOrContinue(slot);
  Dispatch();
}

void Dispatcher::BecomeIdleOrContinue(Slot* slot) {
  if (!slot->inflight.empty()) {
    slot->worker->SetDeadline(spec_.timeout_ms);  // the next one starts now
    slot->head_started_ns = uv_hrtime();
    slot->head_in_call = false;
    return;
  }
  slot->worker->SetDeadline(0);
  slot->head_in_call = false;
  slot->idle_since_ms = uv_now(loop_);
  if (draining_ && queue_.empty()) {
    StopWorker(slot);
    return;
  }
  ArmReaper();
}

void Dispatcher::StopWorker(Slot* slot) {
  proto::Frame shutdown;
  shutdown.mutable_shutdown();
  slot->worker->Send(shutdown);
  slot->state = Slot::State::kStopping;
  slot->worker->SetDeadline(kShutdownGraceMs);
}

void Dispatcher::OnWorkerDeadline(WorkerProcess* worker) {
  Slot* slot = FindSlot(worker);
  if (slot == nullptr) return;
  const Slot::State state = slot->state;
  slot->state = Slot::State::kDead;
  if (state == Slot::State::kStopping) {
    worker->Kill("worker did not exit within " + std::to_string(kShutdownGraceMs) +
                 " ms of shutdown");
    return;
  }
  const std::string limit = std::to_string(spec_.timeout_ms) + " ms";
  worker->Kill("timed out after " + limit);
  if (state == Slot::State::kLoading) {
    FailAllInflight(slot, 504, "timeout",
                    "function " + spec_.name + " did not load within " + limit);
    return;
  }
  if (!slot->inflight.empty()) {
    std::unique_ptr<Job> head = std::move(slot->inflight.front());
    slot->inflight.pop_front();
    Fail(std::move(head), 504, "timeout",
         "function " + spec_.name + " did not answer within " + limit +
             "; its worker was killed");
  }
  RequeueInflight(slot);  // dispatched again once the worker's exit is seen
  UpdateLoaded();
}

void Dispatcher::OnWorkerExit(WorkerProcess* worker, const WorkerExit& exit) {
  Slot* slot = FindSlot(worker);
  if (slot == nullptr) return;
  identities_->Release(slot->identity);
  std::string code = "worker_crashed";
  const std::string cause = ExitCause(exit, &code);
  switch (slot->state) {
    case Slot::State::kLoading:
      FailAllInflight(slot, 502, code == "worker_crashed" ? "load_failed" : code,
                      "cannot load function " + spec_.name + ": " + cause + " while loading");
      break;
    case Slot::State::kReady:
      if (!slot->inflight.empty()) {
        std::unique_ptr<Job> head = std::move(slot->inflight.front());
        slot->inflight.pop_front();
        Fail(std::move(head), 502, code, "function " + spec_.name + " failed: " + cause);
      }
      RequeueInflight(slot);
      break;
    case Slot::State::kStopping:
    case Slot::State::kDead:
      RequeueInflight(slot);
      break;
  }
  worker->set_log_sink(nullptr);  // lines still buffered reach only stderr
  slots_.erase(std::remove_if(slots_.begin(), slots_.end(),
                              [slot](const auto& s) { return s.get() == slot; }),
               slots_.end());
  UpdateLoaded();
  Dispatch();
  if (draining_) MaybeFinishDrain();
}

// One timer for both: the idle reaping, and the second look at invocations
// Dispatch left waiting (recheck_at_ms_).
void Dispatcher::ArmReaper() {
  if (draining_) return;
  uint64_t next = UINT64_MAX;
  const uint64_t now = uv_now(loop_);
  for (const auto& slot : slots_) {
    if (slot->state != Slot::State::kReady || !slot->inflight.empty()) continue;
    const uint64_t due = slot->idle_since_ms + spec_.idle_ms;
    next = std::min(next, due > now ? due - now : 0);
  }
  if (recheck_at_ms_ != 0) next = std::min(next, recheck_at_ms_ > now ? recheck_at_ms_ - now : 0);
  if (next == UINT64_MAX) return;
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(reaper_)) && uv_timer_get_due_in(reaper_) <= next) {
    return;
  }
  uv_timer_start(reaper_, ReaperCb, next, 0);
}

void Dispatcher::ReaperCb(uv_timer_t* timer) { static_cast<Dispatcher*>(timer->data)->Reap(); }

void Dispatcher::Reap() {
  const uint64_t now = uv_now(loop_);
  for (const auto& slot : slots_) {
    if (slot->state == Slot::State::kReady && slot->inflight.empty() &&
        now - slot->idle_since_ms >= spec_.idle_ms) {
      StopWorker(slot.get());
    }
  }
  if (recheck_at_ms_ != 0 && now >= recheck_at_ms_) {
    recheck_at_ms_ = 0;
    Dispatch();  // may set it again
  }
  ArmReaper();
}

std::vector<int> Dispatcher::WorkerPids() const {
  std::vector<int> pids;
  for (const auto& slot : slots_) {
    if (slot->state == Slot::State::kReady || slot->state == Slot::State::kLoading) {
      pids.push_back(slot->worker->pid());
    }
  }
  return pids;
}

void Dispatcher::Drain(std::function<void()> on_drained,
                       std::function<Dispatcher*()> successor) {
  draining_ = true;
  on_drained_ = std::move(on_drained);
  successor_ = std::move(successor);
  HandOverQueue();
  uv_timer_stop(reaper_);
  uv_close(reinterpret_cast<uv_handle_t*>(reaper_), [](uv_handle_t* h) {
    auto* self = static_cast<Dispatcher*>(h->data);
    delete reinterpret_cast<uv_timer_t*>(h);
    self->reaper_closed_ = true;
    self->MaybeFinishDrain();
  });
  for (const auto& slot : slots_) {
    if (slot->state == Slot::State::kReady && slot->inflight.empty()) StopWorker(slot.get());
    if (slot->state == Slot::State::kLoading && slot->inflight.empty()) {
      slot->state = Slot::State::kDead;
      slot->worker->Kill("function " + spec_.name + " removed while loading");
    }
  }
}

void Dispatcher::UpdateLoaded() {
  bool loaded = false;
  for (const auto& slot : slots_) {
    if (slot->loaded && slot->state != Slot::State::kDead) loaded = true;
  }
  if (loaded == announced_loaded_) return;
  announced_loaded_ = loaded;
  if (load_observer_) load_observer_(loaded);
}

void Dispatcher::MaybeFinishDrain() {
  if (!draining_ || !reaper_closed_ || !slots_.empty() || !on_drained_) return;
  auto done = std::move(on_drained_);
  on_drained_ = nullptr;
  done();  // may destroy this
}

// The limit a result crossed, as the worker reported it or as seen here (a
// worker is not trusted to count); empty if none.
std::string Dispatcher::LimitCrossed(const proto::Result& result) const {
  if (!result.limit().empty()) return result.limit() == "max_events" ? "max_events" : "max_reply";
  if (static_cast<uint64_t>(result.events_size()) > spec_.limits.max_events) return "max_events";
  uint64_t bytes = result.body().size();
  for (const proto::Header& h : result.headers()) bytes += h.name().size() + h.value().size();
  for (const proto::Event& e : result.events()) {
    bytes += e.subject().size() + e.data().size();
    for (const proto::Header& h : e.headers()) bytes += h.name().size() + h.value().size();
  }
  return bytes > spec_.limits.max_reply_bytes ? "max_reply" : "";
}

// Why a worker ended, in words, and the error code for it: *code is left as
// it is unless the end names a limit.
std::string Dispatcher::ExitCause(const WorkerExit& exit, std::string* code) const {
  if (exit.kill_reason.empty() && exit.term_signal == 0 && exit.exit_status == kExitMemoryLimit) {
    *code = "memory_limit";
    return "it crossed its memory limit (" + FormatByteSize(spec_.limits.memory_bytes) +
           " of address space, RLIMIT_AS): an allocation was refused and its worker exited";
  }
  if (exit.kill_reason.empty() && exit.term_signal == SIGXCPU && spec_.limits.cpu_ms > 0) {
    *code = "cpu_limit";
    return "it used its CPU time limit (" + FormatDurationMs(spec_.limits.cpu_ms) +
           " per invocation, RLIMIT_CPU); its worker was killed";
  }
  if (exit.kill_reason.empty() && exit.term_signal == 0 &&
      exit.exit_status == kExitUncaughtException) {
    return "worker exited: an exception escaped the function (its log has the message)";
  }
  return "worker " + exit.Describe();
}

}  // namespace wisp::runtime
