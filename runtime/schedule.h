// Timer schedules: a fixed period (--every 10s) or a cron expression
// (--cron '*/5 * * * *', UTC). Pure functions; any thread.
//
// Cron: five fields, minute (0-59), hour (0-23), day of month (1-31), month
// (1-12) and day of week (0-7, 0 and 7 are Sunday); each field is '*', a
// number, a range a-b, a step (*/n, a-b/n, a/n) or a comma-separated list of
// those. When both day fields are restricted, a day matching either runs
// (as in Vixie cron). @hourly, @daily (@midnight), @weekly, @monthly and
// @yearly (@annually) stand for their usual expressions. No library in
// Debian parses cron for C or C++; this is the small subset crontab(5)
// documents, without names (jan, mon) or seconds.
#ifndef WISP_RUNTIME_SCHEDULE_H_
#define WISP_RUNTIME_SCHEDULE_H_

#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>

#include "runtime/base/status.h"

namespace wisp::runtime {

struct CronExpr {
  std::bitset<60> minutes;
  std::bitset<24> hours;
  std::bitset<32> days;      // 1..31
  std::bitset<13> months;    // 1..12
  std::bitset<7> weekdays;   // 0..6, Sunday 0
  bool days_restricted = false;
  bool weekdays_restricted = false;
};

// InvalidArgument names the field and what is wrong with it.
[[nodiscard]] StatusOr<CronExpr> ParseCron(std::string_view text);

// The first minute strictly after after_ms (unix ms, UTC) that expr
// matches, in unix ms; -1 if none comes within 5 years (e.g. '0 0 30 2 *').
int64_t NextCronMs(const CronExpr& expr, int64_t after_ms);

// The first multiple of period_ms strictly after after_ms: ticks line up
// with the clock, the same on every controller.
inline int64_t NextPeriodMs(int64_t period_ms, int64_t after_ms) {
  return (after_ms / period_ms + 1) * period_ms;
}

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_SCHEDULE_H_
