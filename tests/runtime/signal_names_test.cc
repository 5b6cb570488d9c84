#include "runtime/signal_names.h"

#include <gtest/gtest.h>

#include <csignal>

namespace wisp::runtime {
namespace {

TEST(SignalNamesTest, NamesCommonSignals) {
  EXPECT_EQ(SignalName(SIGSEGV), "SIGSEGV");
  EXPECT_EQ(SignalName(SIGABRT), "SIGABRT");
  EXPECT_EQ(SignalName(SIGKILL), "SIGKILL");
}

TEST(SignalNamesTest, DescribesExit) {
  EXPECT_EQ(DescribeExit(0, SIGSEGV), "killed by SIGSEGV");
  EXPECT_EQ(DescribeExit(3, 0), "exited with status 3");
}

}  // namespace
}  // namespace wisp::runtime
