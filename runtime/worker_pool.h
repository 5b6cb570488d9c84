// A warm pool of generic workers: forked ahead of time by the zygote, with no
// function loaded but the load path already paged in (Warmup), so a cold
// start costs a Load frame and a dlopen, not even a fork. Refills wait until
// takes have paused for a moment: forking and warming up compete for the CPU
// with the cold starts they are meant to serve.
//
// Ownership: the pool listens to its idle workers; Take hands the worker to
// the caller, who must set_listener before the loop runs again.
// Threading: the loop thread only.
#ifndef WISP_RUNTIME_WORKER_POOL_H_
#define WISP_RUNTIME_WORKER_POOL_H_

#include <uv.h>

#include <deque>
#include <functional>

#include "runtime/worker_process.h"

namespace wisp::runtime {

class WorkerPool : public WorkerListener {
 public:
  // loop and zygote are borrowed. target_size generic workers are kept ready
  // (0 disables the pool: every Take forks one). Each new pooled worker
  // loads, calls and unloads warmup_path once (empty: no warm-up).
  WorkerPool(uv_loop_t* loop, Zygote* zygote, WorkerProcess::Options options, size_t target_size,
             std::string warmup_path);
  ~WorkerPool() override;

  // Starts filling the pool.
  void Start();

  // A generic worker, from the pool if one is ready, else freshly spawned.
  // IOError when no worker can be spawned.
  StatusOr<WorkerProcess*> Take(WorkerListener* listener);

  // Kills the pooled workers; on_closed runs when they and the pool's handles
  // are gone.
  void Close(std::function<void()> on_closed);

  size_t ready() const { return ready_.size(); }

  // Whether pooled workers install the seccomp filter while they wait (set
  // when every loaded function gets it), so a cold start does not.
  void set_seccomp_ahead(bool seccomp) { seccomp_ahead_ = seccomp; }

  // Other work ahead of the next cold start (the next worker user's
  // directory): runs at each refill, once takes have paused.
  void set_prepare_ahead(std::function<void()> prepare) { prepare_ahead_ = std::move(prepare); }

  // WorkerListener, for idle pooled workers.
  void OnWorkerFrame(WorkerProcess* worker, proto::Frame& frame) override;
  void OnWorkerDeadline(WorkerProcess* worker) override;
  void OnWorkerExit(WorkerProcess* worker, const WorkerExit& exit) override;

 private:
  void ScheduleRefill(uint64_t delay_ms);
  void DeferRefill();
  void Refill();
  void MaybeFinishClose();
  static void RefillCb(uv_timer_t* timer);

  uv_loop_t* loop_;
  Zygote* zygote_;
  WorkerProcess::Options options_;
  size_t target_size_;
  std::string warmup_path_;
  bool seccomp_ahead_ = false;
  std::deque<WorkerProcess*> ready_;
  uv_timer_t* refill_timer_;  // owned; freed in its close callback
  bool closing_ = false;
  bool timer_closed_ = false;
  std::function<void()> on_closed_;
  std::function<void()> prepare_ahead_;
  uint64_t consecutive_failures_ = 0;
};

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_WORKER_POOL_H_
