// Many keep-alive connections at once: every reply right, one load; and
// when a dispatcher starts another worker (runtime/dispatcher.h's policy).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "tests/integration/controller_fixture.h"

namespace wisp::testing {
namespace {

class ConcurrencyTest : public ControllerTest {};

TEST_F(ConcurrencyTest, HundredConnectionsTimesHundredRequestsLoadOnce) {
  DeployOk(ExamplePath("hello"), "hello", {"--max-workers", "1"});
  constexpr int kConnections = 100;
  constexpr int kRequests = 100;
  std::atomic<int> right{0};
  std::atomic<int> wrong{0};
  std::vector<std::string> first_wrong(kConnections);
  std::vector<std::thread> threads;
  for (int c = 0; c < kConnections; ++c) {
    threads.emplace_back([&, c] {
      runtime::HttpClient client("127.0.0.1", controller_->port(), 30000);
      for (int i = 0; i < kRequests; ++i) {
        const std::string body = std::to_string(c) + "-" + std::to_string(i);
        auto r = client.Request("POST", "/fn/hello", {}, body);
        if (r.ok() && r->status == 200 && r->body == "hello, " + body) {
          ++right;
        } else {
          if (wrong++ == 0 || first_wrong[c].empty()) {
            first_wrong[c] = r.ok() ? std::to_string(r->status) + " " + r->body
                                    : r.status().ToString();
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  std::string sample;
  for (const auto& w : first_wrong) {
    if (!w.empty()) {
      sample = w;
      break;
    }
  }
  EXPECT_EQ(right.load(), kConnections * kRequests) << "first wrong reply: " << sample;
  EXPECT_EQ(wrong.load(), 0);
  api::Function fn;
  ASSERT_TRUE(controller_->Describe("hello", &fn));
  EXPECT_EQ(fn.status().loads(), 1u) << "the function should be loaded once for all requests";
  EXPECT_EQ(fn.status().invocations(), static_cast<uint64_t>(kConnections * kRequests));
  EXPECT_EQ(fn.status().errors(), 0u);
}

TEST_F(ConcurrencyTest, SlowFunctionSpreadsOverMaxWorkers) {
  DeployOk(TestFunctionPath("sleep"), "sleep", {"--max-workers", "3"});
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int c = 0; c < 6; ++c) {
    threads.emplace_back([&] {
      runtime::HttpClient client("127.0.0.1", controller_->port(), 30000);
      for (int i = 0; i < 3; ++i) {
        auto r = client.Request("POST", "/fn/sleep", {}, "100");
        if (r.ok() && r->status == 200 && r->body == "slept 100") ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 18);
  api::Function fn;
  ASSERT_TRUE(controller_->Describe("sleep", &fn));
  EXPECT_GE(fn.status().loads(), 2u) << "concurrent slow calls should start more than one worker";
  EXPECT_LE(fn.status().loads(), 3u) << "never more workers than --max-workers";
}

// Calls path from `callers` keep-alive connections, `requests` times each;
// returns how many replies were 200 with the expected body.
int CallConcurrently(int port, const std::string& path, const std::string& body,
                     const std::string& expected, int callers, int requests) {
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < callers; ++c) {
    threads.emplace_back([&] {
      runtime::HttpClient client("127.0.0.1", port, 30000);
      for (int i = 0; i < requests; ++i) {
        auto r = client.Request("POST", path, {}, body);
        if (r.ok() && r->status == 200 && r->body == expected) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  return ok.load();
}

// A function of microseconds is never the bottleneck: a second worker would
// only split its batches, so it stays on one whatever --max-workers allows.
TEST_F(ConcurrencyTest, CheapFunctionStaysOnOneWorkerUnderManyCallers) {
  DeployOk(ExamplePath("hello"), "hello", {"--max-workers", "4"});
  ASSERT_EQ(controller_->Call("POST", "/fn/hello", "warm").status, 200);
  EXPECT_EQ(CallConcurrently(controller_->port(), "/fn/hello", "x", "hello, x", 32, 100), 3200);
  api::Function fn;
  ASSERT_TRUE(controller_->Describe("hello", &fn));
  EXPECT_EQ(fn.status().loads(), 1u)
      << "expected hello on one worker under 32 callers, as its run time is microseconds";
  EXPECT_EQ(fn.status().worker_pids_size(), 1);
}

// Two callers of a 400 us function keep one worker busy nearly all the time,
// though neither waits behind more than a millisecond of work: the busy
// share starts a second worker.
TEST_F(ConcurrencyTest, BusyWorkerGetsAnotherWorker) {
  DeployOk(TestFunctionPath("sleep"), "sleep", {"--max-workers", "3"});
  ASSERT_EQ(controller_->Call("POST", "/fn/sleep", "400us").body, "slept 400us");
  api::Function fn;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  do {
    ASSERT_EQ(CallConcurrently(controller_->port(), "/fn/sleep", "400us", "slept 400us", 2, 100),
              200);
    ASSERT_TRUE(controller_->Describe("sleep", &fn));
  } while (fn.status().loads() < 2 && std::chrono::steady_clock::now() < deadline);
  EXPECT_GE(fn.status().loads(), 2u)
      << "expected a second worker for a function whose worker is busy nearly all the time";
  EXPECT_LE(fn.status().loads(), 3u);
}

}  // namespace
}  // namespace wisp::testing
