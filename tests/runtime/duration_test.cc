#include "runtime/duration.h"

#include <gtest/gtest.h>

namespace wisp::runtime {
namespace {

struct DurationCase {
  const char* text;
  bool ok;
  uint64_t ms;
};

TEST(DurationTest, ParsesTable) {
  const DurationCase cases[] = {
      {"250ms", true, 250}, {"30s", true, 30000}, {"2m", true, 120000},
      {"1h", true, 3600000}, {"45", true, 45000}, {"1.5s", true, 1500},
      {"0s", true, 0},       {"", false, 0},      {"s", false, 0},
      {"-1s", false, 0},     {"10x", false, 0},   {"1e9h", false, 0},
      {"999999h", false, 0}, {"1..2s", false, 0}, {"10 s", false, 0},
  };
  for (const DurationCase& c : cases) {
    uint64_t ms = 12345;
    Status s = ParseDurationMs(c.text, &ms);
    EXPECT_EQ(s.ok(), c.ok) << "'" << c.text << "': " << s.ToString();
    if (c.ok && s.ok()) {
      EXPECT_EQ(ms, c.ms) << "'" << c.text << "'";
    }
    if (!c.ok) {
      EXPECT_NE(s.message().find(c.text), std::string::npos) << s.message();
    }
  }
}

TEST(DurationTest, ParsesMicroseconds) {
  uint64_t us = 0;
  ASSERT_TRUE(ParseDurationUs("150us", &us, 1000000).ok());
  EXPECT_EQ(us, 150u);
  ASSERT_TRUE(ParseDurationUs("2ms", &us, 1000000).ok());
  EXPECT_EQ(us, 2000u);
  EXPECT_FALSE(ParseDurationUs("2s", &us, 1000000).ok()) << "over the limit";
  uint64_t ms = 0;
  ASSERT_TRUE(ParseDurationMs("1500us", &ms).ok());
  EXPECT_EQ(ms, 2u) << "rounded to the nearest millisecond";
}

TEST(DurationTest, FormatsReadably) {
  EXPECT_EQ(FormatDurationMs(250), "250ms");
  EXPECT_EQ(FormatDurationMs(30000), "30s");
  EXPECT_EQ(FormatDurationMs(5400000), "1h30m");
  EXPECT_EQ(FormatDurationMs(0), "0s");
}

}  // namespace
}  // namespace wisp::runtime
