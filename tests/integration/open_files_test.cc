// `wisp up` raises its soft limit on open files to the hard one: each worker
// holds three descriptors in the controller, each client connection one.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <fstream>
#include <sstream>
#include <string>

#include "tests/integration/harness.h"

namespace wisp::testing {
namespace {

// The "Max open files" line of /proc/<pid>/limits, or "" if there is none.
std::string OpenFilesLimits(pid_t pid) {
  std::ifstream limits("/proc/" + std::to_string(pid) + "/limits");
  std::string line;
  while (std::getline(limits, line)) {
    if (line.rfind("Max open files", 0) == 0) return line;
  }
  return "";
}

TEST(OpenFilesTest, TheControllerRaisesItsSoftLimitToTheHardOne) {
  rlimit ours{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &ours), 0);
  if (ours.rlim_max <= 256) GTEST_SKIP() << "the hard limit here is " << ours.rlim_max;
  // The controller inherits a soft limit of 256.
  rlimit lowered = ours;
  lowered.rlim_cur = 256;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);
  TempDir dir;
  Controller controller(dir.path());
  std::string error;
  const bool started = controller.Start(&error);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &ours), 0);
  ASSERT_TRUE(started) << error;

  const std::string want = std::to_string(ours.rlim_max);
  const std::string line = OpenFilesLimits(controller.pid());
  // "Max open files            <soft>               <hard>               files"
  std::istringstream fields(line.substr(std::string("Max open files").size()));
  std::string soft, hard;
  fields >> soft >> hard;
  EXPECT_EQ(want, hard) << line;
  EXPECT_EQ(want, soft) << "the soft limit should be raised from 256 to the hard limit: " << line;
}

}  // namespace
}  // namespace wisp::testing
