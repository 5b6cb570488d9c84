// Functions that attack their own worker or its parent: flooding the log,
// closing the runtime's descriptors, crashing on unload (killing the zygote:
// isolation_test.cc).
// Each gets a clear answer, the controller stays up, and a healthy function
// beside them answers correctly throughout.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "tests/integration/controller_fixture.h"

namespace wisp::testing {
namespace {

using ::testing::HasSubstr;

class HostileTest : public ControllerTest {
 protected:
  // Calls hello from another thread until Stop; counts wrong answers.
  void StartHealthyCaller() {
    healthy_ = std::thread([this] {
      runtime::HttpClient client("127.0.0.1", controller_->port(), 30000);
      int i = 0;
      while (!stop_) {
        const std::string body = "beside-" + std::to_string(i++);
        auto r = client.Request("POST", "/fn/hello", {}, body);
        if (r.ok() && r->status == 200 && r->body == "hello, " + body) {
          ++healthy_ok_;
        } else if (healthy_bad_++ == 0) {
          first_bad_ = r.ok() ? std::to_string(r->status) + " " + r->body : r.status().ToString();
        }
      }
    });
  }
  void StopHealthyCaller() {
    // Enough healthy calls to mean something, however fast the hostile part went.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (healthy_ok_.load() <= 5 && healthy_bad_.load() == 0 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    stop_ = true;
    healthy_.join();
    EXPECT_EQ(healthy_bad_.load(), 0) << "hello failed beside the hostile function: " << first_bad_;
    EXPECT_GT(healthy_ok_.load(), 5);
    EXPECT_EQ(controller_->Call("GET", "/healthz").status, 200);
  }

  std::thread healthy_;
  std::atomic<bool> stop_{false};
  std::atomic<int> healthy_ok_{0};
  std::atomic<int> healthy_bad_{0};
  std::string first_bad_;
};

TEST_F(HostileTest, MegabytesOnStdoutAndStderrDoNotStopTheReply) {
  DeployOk(ExamplePath("hello"), "hello");
  DeployOk(TestFunctionPath("stdout_flood"), "flood");
  StartHealthyCaller();
  for (int i = 0; i < 2; ++i) {
    runtime::HttpClientResponse r = controller_->Call("POST", "/fn/flood", "");
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body, "flooded");
  }
  StopHealthyCaller();
}

TEST_F(HostileTest, ClosingTheRuntimesDescriptorsEndsOnlyThatWorker) {
  DeployOk(ExamplePath("hello"), "hello");
  DeployOk(TestFunctionPath("close_fds"), "closer");
  StartHealthyCaller();
  for (int i = 0; i < 2; ++i) {
    runtime::HttpClientResponse r = controller_->Call("POST", "/fn/closer", "");
    EXPECT_EQ(r.status, 502) << r.body;
    EXPECT_THAT(r.body, HasSubstr("\"code\":\"worker_crashed\"")) << r.body;
  }
  StopHealthyCaller();
}

TEST_F(HostileTest, ACrashInFiniOnUnloadIsContained) {
  DeployOk(ExamplePath("hello"), "hello");
  DeployOk(TestFunctionPath("fini_crash"), "fini", {"--idle", "200ms"});
  StartHealthyCaller();
  for (int round = 0; round < 2; ++round) {
    runtime::HttpClientResponse r = controller_->Call("POST", "/fn/fini", "");
    EXPECT_EQ(r.status, 200) << "round " << round << ": " << r.body;
    EXPECT_EQ(r.body, "ok");
    api::Function fn;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    do {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      ASSERT_TRUE(controller_->Describe("fini", &fn));
    } while (fn.status().loaded() && std::chrono::steady_clock::now() < deadline);
    EXPECT_FALSE(fn.status().loaded()) << "round " << round << ": never unloaded";
  }
  StopHealthyCaller();
}

}  // namespace
}  // namespace wisp::testing
