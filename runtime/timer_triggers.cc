#include "runtime/timer_triggers.h"

#include <algorithm>

#include "runtime/base/time_format.h"
#include "runtime/base/uv_timer.h"

namespace wisp::runtime {

TimerTriggers::TimerTriggers(uv_loop_t* loop, Fire fire) : loop_(loop), fire_(std::move(fire)) {}

TimerTriggers::~TimerTriggers() { WISP_CHECK(entries_.empty()); }

Status TimerTriggers::Bind(const std::string& name, uint64_t every_ms, const std::string& cron) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  auto entry = std::make_unique<Entry>();
  entry->owner = this;
  entry->name = name;
  entry->every_ms = every_ms;
  if (every_ms == 0) {
    StatusOr<CronExpr> expr = ParseCron(cron);
    if (!expr.ok()) return expr.status();
    entry->cron = *expr;
  }
  Unbind(name);
  entry->timer = new uv_timer_t;
  uv_timer_init(loop_, entry->timer);
  entry->timer->data = entry.get();
  Entry* raw = entry.get();
  entries_[name] = std::move(entry);
  Arm(raw, NowUnixMicros() / 1000);
  return Status::OK();
}

void TimerTriggers::Unbind(const std::string& name) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  auto it = entries_.find(name);
  if (it == entries_.end()) return;
  std::unique_ptr<Entry> entry = std::move(it->second);
  entries_.erase(it);
  Release(std::move(entry), nullptr);
}

void TimerTriggers::Release(std::unique_ptr<Entry> entry, std::function<void()> then) {
  uv_timer_t* timer = entry->timer;
  entry->timer = nullptr;
  CloseOwnedTimer(timer, std::move(then));
}

int64_t TimerTriggers::NextTick(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? -1 : it->second->next_ms;
}

void TimerTriggers::Arm(Entry* entry, int64_t after_ms) {
  entry->next_ms = entry->every_ms > 0
                       ? NextPeriodMs(static_cast<int64_t>(entry->every_ms), after_ms)
                       : NextCronMs(*entry->cron, after_ms);
  if (entry->next_ms < 0) return;  // a date that never comes
  const int64_t wait = std::max<int64_t>(entry->next_ms - NowUnixMicros() / 1000, 0);
  uv_timer_start(entry->timer, TimerCb, static_cast<uint64_t>(wait), 0);
}

void TimerTriggers::TimerCb(uv_timer_t* timer) {
  auto* entry = static_cast<Entry*>(timer->data);
  TimerTriggers* self = entry->owner;
  const int64_t now = NowUnixMicros() / 1000;
  if (now < entry->next_ms) {
    // The loop's clock ran ahead of the wall clock: wait for the rest.
    uv_timer_start(timer, TimerCb, static_cast<uint64_t>(entry->next_ms - now), 0);
    return;
  }
  const int64_t tick = entry->next_ms;
  const std::string name = entry->name;
  self->Arm(entry, std::max(now, tick));
  self->fire_(name, tick);  // may Unbind name: entry is not used after this
}

void TimerTriggers::Close(std::function<void()> on_closed) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  closed_ = true;
  if (entries_.empty()) {
    if (on_closed) on_closed();
    return;
  }
  auto remaining = std::make_shared<size_t>(entries_.size());
  auto done = std::make_shared<std::function<void()>>(std::move(on_closed));
  for (auto& [name, entry] : entries_) {
    Release(std::move(entry), [remaining, done] {
      if (--*remaining == 0 && *done) (*done)();
    });
  }
  entries_.clear();
}

}  // namespace wisp::runtime
