// Timer triggers: runs a callback for each tick of each function's schedule
// (runtime/schedule.h). Ticks follow the wall clock (UTC); a tick missed
// while the controller was down is not run later.
//
// Ownership: borrows the loop; owns one uv_timer per schedule (freed in its
// close callback). Threading: the loop thread only.
#ifndef WISP_RUNTIME_TIMER_TRIGGERS_H_
#define WISP_RUNTIME_TIMER_TRIGGERS_H_

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "runtime/base/loop_thread.h"
#include "runtime/base/status.h"
#include "runtime/schedule.h"

namespace wisp::runtime {

class TimerTriggers {
 public:
  // fire(name, tick_ms) runs on the loop at each tick (unix ms it was due).
  using Fire = std::function<void(const std::string& name, int64_t tick_ms)>;

  TimerTriggers(uv_loop_t* loop, Fire fire);
  ~TimerTriggers();  // Close first
  TimerTriggers(const TimerTriggers&) = delete;
  TimerTriggers& operator=(const TimerTriggers&) = delete;

  // Schedules name every every_ms (> 0), or by cron when every_ms is 0,
  // replacing an earlier schedule. InvalidArgument for a bad cron
  // expression (nothing changes then).
  [[nodiscard]] Status Bind(const std::string& name, uint64_t every_ms, const std::string& cron);
  // Stops name's schedule; unknown names are ignored.
  void Unbind(const std::string& name);

  // When name fires next (unix ms), or -1 if it has no schedule.
  int64_t NextTick(const std::string& name) const;

  // Stops every schedule; on_closed runs once their timers are closed.
  void Close(std::function<void()> on_closed);

 private:
  struct Entry {
    TimerTriggers* owner = nullptr;
    std::string name;
    uint64_t every_ms = 0;
    std::optional<CronExpr> cron;
    int64_t next_ms = -1;
    uv_timer_t* timer = nullptr;  // owned; freed in its close callback
  };
  void Arm(Entry* entry, int64_t after_ms);
  void Release(std::unique_ptr<Entry> entry, std::function<void()> then);
  static void TimerCb(uv_timer_t* timer);

  uv_loop_t* loop_;
  Fire fire_;
  LoopThread loop_thread_;
  std::map<std::string, std::unique_ptr<Entry>> entries_;
  bool closed_ = false;
};

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_TIMER_TRIGGERS_H_
