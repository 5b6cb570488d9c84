// A function unloads after its idle time (its worker exits) and reloads on
// the next call.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "tests/integration/controller_fixture.h"

namespace wisp::testing {
namespace {

class IdleUnloadTest : public ControllerTest {};

bool WaitUntilGone(pid_t pid, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!ProcessAlive(pid)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

TEST_F(IdleUnloadTest, WorkerExitsWhenIdleAndFunctionReloads) {
  DeployOk(TestFunctionPath("counter"), "counter", {"--idle", "300ms"});
  api::Function fn;
  ASSERT_TRUE(controller_->Describe("counter", &fn));
  EXPECT_FALSE(fn.status().loaded()) << "deployed but never called: nothing should be loaded";

  auto first = controller_->Call("POST", "/fn/counter");
  ASSERT_EQ(first.status, 200) << first.body;
  auto second = controller_->Call("POST", "/fn/counter");
  const pid_t pid = std::atoi(first.body.substr(first.body.find(' ') + 1).c_str());
  EXPECT_EQ(first.body.substr(0, 2), "1 ");
  EXPECT_EQ(second.body, "2 " + std::to_string(pid)) << "the warm worker should be reused";
  ASSERT_TRUE(controller_->Describe("counter", &fn));
  ASSERT_EQ(fn.status().worker_pids_size(), 1);
  EXPECT_EQ(fn.status().worker_pids(0), pid);

  EXPECT_TRUE(WaitUntilGone(pid, std::chrono::seconds(5)))
      << "worker " << pid << " still running after its idle time: "
      << [pid] {
           std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
           return std::string((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
         }();
  ASSERT_TRUE(controller_->Describe("counter", &fn));
  EXPECT_FALSE(fn.status().loaded());
  EXPECT_EQ(fn.status().worker_pids_size(), 0);

  auto third = controller_->Call("POST", "/fn/counter");
  ASSERT_EQ(third.status, 200) << third.body;
  EXPECT_EQ(third.body.substr(0, 2), "1 ") << "a reloaded function starts with fresh state";
  EXPECT_NE(third.body, "1 " + std::to_string(pid)) << "a new worker process should serve it";
  ASSERT_TRUE(controller_->Describe("counter", &fn));
  EXPECT_EQ(fn.status().loads(), 2u);
}

TEST_F(IdleUnloadTest, BusyFunctionIsNotUnloaded) {
  DeployOk(TestFunctionPath("counter"), "counter", {"--idle", "400ms"});
  std::string last;
  for (int i = 0; i < 12; ++i) {
    auto r = controller_->Call("POST", "/fn/counter");
    ASSERT_EQ(r.status, 200);
    last = r.body;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(last.substr(0, 3), "12 ") << "calls 100 ms apart should keep one worker warm: " << last;
}

}  // namespace
}  // namespace wisp::testing
