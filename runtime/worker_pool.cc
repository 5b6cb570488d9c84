#include "runtime/worker_pool.h"

#include <algorithm>
#include <cstdio>

namespace wisp::runtime {
namespace {
// A worker that dies this soon after spawning, while idle, means something is
// wrong with the binary or the machine: back off instead of fork-looping.
constexpr uint64_t kEarlyDeathMs = 1000;
constexpr uint64_t kMaxBackoffMs = 10000;
// Refill once takes have paused this long.
constexpr uint64_t kRefillQuietMs = 5;
}  // namespace

WorkerPool::WorkerPool(uv_loop_t* loop, Zygote* zygote, WorkerProcess::Options options,
                       size_t target_size, std::string warmup_path)
    : loop_(loop),
      zygote_(zygote),
      options_(std::move(options)),
      target_size_(target_size),
      warmup_path_(std::move(warmup_path)),
      refill_timer_(new uv_timer_t) {
  uv_timer_init(loop_, refill_timer_);
  refill_timer_->data = this;
}

WorkerPool::~WorkerPool() {
  // Close() must have completed; the timer is freed in its close callback.
}

void WorkerPool::Start() { ScheduleRefill(0); }

void WorkerPool::ScheduleRefill(uint64_t delay_ms) {
  if (closing_ || target_size_ == 0) return;
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(refill_timer_))) return;
  uv_timer_start(refill_timer_, RefillCb, delay_ms, 0);
}

void WorkerPool::DeferRefill() {
  if (closing_ || target_size_ == 0) return;
  uv_timer_start(refill_timer_, RefillCb, kRefillQuietMs, 0);  // restarts a pending one
}

void WorkerPool::RefillCb(uv_timer_t* timer) { static_cast<WorkerPool*>(timer->data)->Refill(); }

void WorkerPool::Refill() {
  if (!closing_ && prepare_ahead_) prepare_ahead_();
  while (!closing_ && ready_.size() < target_size_) {
    StatusOr<WorkerProcess*> worker = WorkerProcess::Spawn(loop_, zygote_, options_, this);
    if (!worker.ok()) {
      std::fprintf(stderr, "wisp: warm pool cannot start a worker: %s\n",
                   worker.status().ToString().c_str());
      ScheduleRefill(1000);
      return;
    }
    (*worker)->set_label("pool");
    if (!warmup_path_.empty() || seccomp_ahead_) {
      proto::Frame warmup;
      warmup.mutable_warmup()->set_path(warmup_path_);
      warmup.mutable_warmup()->set_seccomp(seccomp_ahead_);
      (*worker)->Send(warmup);
    }
    ready_.push_back(*worker);
  }
}

StatusOr<WorkerProcess*> WorkerPool::Take(WorkerListener* listener) {
  while (!ready_.empty()) {
    // Newest first: it idled least, so less of it has gone cold.
    WorkerProcess* worker = ready_.back();
    ready_.pop_back();
    if (worker->state() != WorkerProcess::State::kRunning) continue;
    worker->set_listener(listener);
    DeferRefill();
    return worker;
  }
  StatusOr<WorkerProcess*> worker = WorkerProcess::Spawn(loop_, zygote_, options_, listener);
  DeferRefill();
  return worker;
}

void WorkerPool::OnWorkerFrame(WorkerProcess* worker, proto::Frame&) {
  worker->Kill("generic worker sent a frame before being given a function");
}

void WorkerPool::OnWorkerDeadline(WorkerProcess*) {}

void WorkerPool::OnWorkerExit(WorkerProcess* worker, const WorkerExit& exit) {
  ready_.erase(std::remove(ready_.begin(), ready_.end(), worker), ready_.end());
  if (closing_) {
    MaybeFinishClose();
    return;
  }
  const uint64_t lived_ms = uv_now(loop_) - worker->started_ms();
  std::fprintf(stderr, "wisp: idle pooled worker %d %s\n", worker->pid(),
               exit.Describe().c_str());
  if (lived_ms < kEarlyDeathMs) {
    consecutive_failures_ = std::min<uint64_t>(consecutive_failures_ + 1, 14);
    ScheduleRefill(std::min<uint64_t>(kMaxBackoffMs, 10ull << consecutive_failures_));
  } else {
    consecutive_failures_ = 0;
    ScheduleRefill(0);
  }
}

void WorkerPool::Close(std::function<void()> on_closed) {
  closing_ = true;
  on_closed_ = std::move(on_closed);
  uv_timer_stop(refill_timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(refill_timer_), [](uv_handle_t* h) {
    auto* pool = static_cast<WorkerPool*>(h->data);
    delete reinterpret_cast<uv_timer_t*>(h);
    pool->timer_closed_ = true;
    pool->MaybeFinishClose();
  });
  for (WorkerProcess* worker : ready_) worker->Kill("controller shutting down");
}

void WorkerPool::MaybeFinishClose() {
  if (!closing_ || !timer_closed_ || !ready_.empty() || !on_closed_) return;
  auto done = std::move(on_closed_);
  on_closed_ = nullptr;
  done();
}

}  // namespace wisp::runtime
