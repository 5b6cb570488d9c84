#include "runtime/function_limits.h"

#include <gtest/gtest.h>

#include <string>

namespace wisp::runtime {
namespace {

TEST(ByteSizeTest, ParsesBinaryAndDecimalUnits) {
  const std::pair<const char*, uint64_t> cases[] = {
      {"0", 0},           {"1048576", 1048576}, {"512B", 512},
      {"64KiB", 65536},   {"64K", 65536},       {"2KB", 2000},
      {"256MiB", 256ull << 20}, {"3M", 3ull << 20}, {"1MB", 1000000},
      {"2GiB", 2ull << 30}, {"1TiB", 1ull << 40},
  };
  for (const auto& [text, want] : cases) {
    uint64_t bytes = 7;
    ASSERT_TRUE(ParseByteSize(text, &bytes).ok()) << text;
    EXPECT_EQ(bytes, want) << text;
  }
}

TEST(ByteSizeTest, RefusesWhatIsNotASize) {
  for (const char* text : {"", "MiB", "-1", "1.5MiB", "12 MiB", "1mib", "1PiB",
                           "99999999999999999999", "20000000TiB"}) {
    uint64_t bytes = 0;
    Status s = ParseByteSize(text, &bytes);
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << "accepted '" << text << "'";
  }
}

TEST(ByteSizeTest, FormatsTheLargestWholeUnit) {
  EXPECT_EQ(FormatByteSize(0), "0B");
  EXPECT_EQ(FormatByteSize(1000), "1000B");
  EXPECT_EQ(FormatByteSize(1024), "1KiB");
  EXPECT_EQ(FormatByteSize(1536), "1536B");
  EXPECT_EQ(FormatByteSize(128ull << 20), "128MiB");
  EXPECT_EQ(FormatByteSize(1ull << 30), "1GiB");
}

TEST(FunctionLimitsTest, AppliesEachLimitWithinItsRange) {
  FunctionLimits limits;
  ASSERT_TRUE(ApplyLimit("memory", "64MiB", &limits).ok());
  ASSERT_TRUE(ApplyLimit("cpu", "1500ms", &limits).ok());
  ASSERT_TRUE(ApplyLimit("open_files", "16", &limits).ok());
  ASSERT_TRUE(ApplyLimit("processes", "4", &limits).ok());
  ASSERT_TRUE(ApplyLimit("max_request", "0", &limits).ok());
  ASSERT_TRUE(ApplyLimit("max_reply", "1KiB", &limits).ok());
  ASSERT_TRUE(ApplyLimit("max_events", "0", &limits).ok());
  EXPECT_EQ(limits.memory_bytes, 64ull << 20);
  EXPECT_EQ(limits.cpu_ms, 2000u) << "RLIMIT_CPU counts whole seconds: rounded up";
  EXPECT_EQ(limits.open_files, 16u);
  EXPECT_EQ(limits.processes, 4u);
  EXPECT_EQ(limits.max_request_bytes, 0u);
  EXPECT_EQ(limits.max_reply_bytes, 1024u);
  EXPECT_EQ(limits.max_events, 0u);
}

TEST(FunctionLimitsTest, RefusalsNameTheLimitAndItsRange) {
  const std::tuple<const char*, const char*, const char*> cases[] = {
      {"memory", "16MiB", "memory must be a size from 32MiB to 1TiB (e.g. 256MiB), got '16MiB'"},
      {"memory", "2TiB", "memory must be a size from 32MiB to 1TiB"},
      {"cpu", "soon", "cpu must be a duration up to 24h"},
      {"cpu", "25h", "cpu must be a duration up to 24h"},
      {"open_files", "8", "open_files must be a number from 16 to 1048576, got '8'"},
      {"processes", "0", "processes must be a number from 4 to 65536"},
      {"max_request", "13MiB", "max_request must be a size from 0B to 12MiB"},
      {"max_reply", "100", "max_reply must be a size from 1KiB to 12MiB"},
      {"max_events", "100001", "max_events must be a number from 0 to 100000"},
      {"colour", "red", "'colour' is not a limit (known: memory, cpu"},
  };
  for (const auto& [key, value, want] : cases) {
    FunctionLimits limits;
    Status s = ApplyLimit(key, value, &limits);
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << key << "=" << value << " accepted";
    EXPECT_NE(s.message().find(want), std::string::npos)
        << key << "=" << value << ": expected '" << want << "' in '" << s.message() << "'";
    EXPECT_TRUE(limits == FunctionLimits{}) << key << "=" << value << " changed a limit";
  }
}

}  // namespace
}  // namespace wisp::runtime
