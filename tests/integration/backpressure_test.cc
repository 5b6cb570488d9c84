// A full queue answers 503 with Retry-After; what was accepted still runs.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "tests/integration/controller_fixture.h"

namespace wisp::testing {
namespace {

class BackpressureTest : public ControllerTest {
 protected:
  std::vector<std::string> ControllerArgs() const override {
    return {"--pipeline-depth", "1", "--max-queue", "2"};
  }
};

TEST_F(BackpressureTest, FullQueueIs503WithRetryAfterAndAcceptedCallsFinish) {
  DeployOk(TestFunctionPath("sleep"), "sleep", {"--max-workers", "1"});
  ASSERT_EQ(controller_->Call("POST", "/fn/sleep", "1").status, 200);  // loaded and warm
  constexpr int kCalls = 6;  // 1 running + 2 waiting; the rest are refused
  std::vector<int> statuses(kCalls);
  std::vector<std::string> retry_after(kCalls);
  std::vector<std::string> bodies(kCalls);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCalls; ++i) {
    threads.emplace_back([&, i] {
      runtime::HttpClient client("127.0.0.1", controller_->port(), 30000);
      auto r = client.Request("POST", "/fn/sleep", {}, "400");
      if (!r.ok()) return;
      statuses[i] = r->status;
      bodies[i] = r->body;
      if (const std::string* h = r->Header("retry-after")) retry_after[i] = *h;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(30));  // arrive in order
  }
  for (auto& t : threads) t.join();
  int ok = 0, refused = 0;
  for (int i = 0; i < kCalls; ++i) {
    if (statuses[i] == 200) {
      ++ok;
      EXPECT_EQ(bodies[i], "slept 400");
    } else {
      ++refused;
      EXPECT_EQ(statuses[i], 503) << "call " << i << ": " << bodies[i];
      EXPECT_THAT(bodies[i], ::testing::HasSubstr("queue_full"));
      EXPECT_EQ(retry_after[i], "1") << "call " << i;
    }
  }
  EXPECT_EQ(ok, 3) << "one running and two queued calls should complete";
  EXPECT_EQ(refused, 3);
}

}  // namespace
}  // namespace wisp::testing
