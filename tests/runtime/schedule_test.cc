#include "runtime/schedule.h"

#include <gtest/gtest.h>

#include <ctime>
#include <string>

namespace wisp::runtime {
namespace {

// Unix ms of a UTC date.
int64_t Utc(int year, int month, int day, int hour, int minute) {
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  return static_cast<int64_t>(timegm(&tm)) * 1000;
}

int64_t Next(const std::string& expr, int64_t after_ms) {
  StatusOr<CronExpr> parsed = ParseCron(expr);
  EXPECT_TRUE(parsed.ok()) << expr << ": " << parsed.status().ToString();
  return parsed.ok() ? NextCronMs(*parsed, after_ms) : -2;
}

TEST(ScheduleTest, PeriodsLineUpWithTheClock) {
  EXPECT_EQ(NextPeriodMs(1000, 0), 1000);
  EXPECT_EQ(NextPeriodMs(1000, 999), 1000);
  EXPECT_EQ(NextPeriodMs(1000, 1000), 2000) << "strictly after";
  EXPECT_EQ(NextPeriodMs(250, 1001), 1250);
}

TEST(ScheduleTest, CronFindsTheNextMatchingMinute) {
  const int64_t t = Utc(2026, 11, 28, 4, 37) + 12345;  // Saturday 04:37:12
  EXPECT_EQ(Next("* * * * *", t), Utc(2026, 11, 28, 4, 38));
  EXPECT_EQ(Next("*/5 * * * *", t), Utc(2026, 11, 28, 4, 40));
  EXPECT_EQ(Next("0 * * * *", t), Utc(2026, 11, 28, 5, 0));
  EXPECT_EQ(Next("@hourly", t), Utc(2026, 11, 28, 5, 0));
  EXPECT_EQ(Next("30 2 * * *", t), Utc(2026, 11, 29, 2, 30));
  EXPECT_EQ(Next("@daily", t), Utc(2026, 11, 29, 0, 0));
  EXPECT_EQ(Next("0 9 * * 1-5", t), Utc(2026, 11, 30, 9, 0)) << "the next weekday is Monday";
  EXPECT_EQ(Next("0 0 1 * *", t), Utc(2026, 12, 1, 0, 0));
  EXPECT_EQ(Next("0 0 1 1 *", t), Utc(2027, 1, 1, 0, 0));
  EXPECT_EQ(Next("15,45 10-11 * * *", t), Utc(2026, 11, 28, 10, 15));
  EXPECT_EQ(Next("0 0 * * 7", t), Utc(2026, 11, 29, 0, 0)) << "7 is Sunday too";
  // Both day fields restricted: either day runs (Vixie cron).
  EXPECT_EQ(Next("0 0 13 * 5", t), Utc(2026, 12, 4, 0, 0)) << "a Friday before the 13th";
  EXPECT_EQ(Next("0 0 29 2 *", t), Utc(2028, 2, 29, 0, 0)) << "the next leap day";
  EXPECT_EQ(Next("0 0 30 2 *", t), -1) << "a date that never comes";
}

TEST(ScheduleTest, CronRefusesMalformedExpressions) {
  for (const char* bad : {"", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *",
                          "* * * 13 *", "* * * * 8", "*/0 * * * *", "5-1 * * * *", "a * * * *",
                          "1,,2 * * * *", "@often"}) {
    StatusOr<CronExpr> parsed = ParseCron(bad);
    EXPECT_FALSE(parsed.ok()) << "'" << bad << "' should be refused";
  }
  StatusOr<CronExpr> parsed = ParseCron("61 * * * *");
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find("minute"), std::string::npos)
      << parsed.status().message();
}

}  // namespace
}  // namespace wisp::runtime
