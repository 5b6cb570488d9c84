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
// returns "" when every reply was 200 with the expected body, else what
// came instead (the first wrong reply, and how many were wrong).
std::string CallConcurrently(int port, const std::string& path, const std::string& body,
                             const std::string& expected, int callers, int requests) {
  std::atomic<int> wrong{0};
  std::vector<std::string> first_wrong(callers);
  std::vector<std::thread> threads;
  for (int c = 0; c < callers; ++c) {
    threads.emplace_back([&, c] {
      runtime::HttpClient client("127.0.0.1", port, 30000);
      for (int i = 0; i < requests; ++i) {
        auto r = client.Request("POST", path, {}, body);
        if (r.ok() && r->status == 200 && r->body == expected) continue;
        ++wrong;
        if (first_wrong[c].empty()) {
          first_wrong[c] = r.ok() ? std::to_string(r->status) + " " + r->body : r.status().ToString();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const std::string& w : first_wrong) {
    if (!w.empty()) {
      return std::to_string(wrong.load()) + " wrong replies, expected 200 " + expected +
             ", first: " + w;
    }
  }
  return "";
}

// A function of microseconds is not the bottleneck: a second worker would
// only split its batches, so it stays on one whatever --max-workers allows.
TEST_F(ConcurrencyTest, CheapFunctionStaysOnOneWorkerUnderManyCallers) {
  DeployOk(ExamplePath("hello"), "hello", {"--max-workers", "4"});
  ASSERT_EQ(controller_->Call("POST", "/fn/hello", "warm").status, 200);
  EXPECT_EQ(CallConcurrently(controller_->port(), "/fn/hello", "x", "hello, x", 16, 200), "");
  api::Function fn;
  ASSERT_TRUE(controller_->Describe("hello", &fn));
  EXPECT_EQ(fn.status().loads(), 1u)
      << "expected hello on one worker under 16 callers, as its run time is microseconds";
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
              "");
    ASSERT_TRUE(controller_->Describe("sleep", &fn));
  } while (fn.status().loads() < 2 && std::chrono::steady_clock::now() < deadline);
  EXPECT_GE(fn.status().loads(), 2u)
      << "expected a second worker for a function whose worker is busy nearly all the time";
  EXPECT_LE(fn.status().loads(), 3u);
}

// With one invocation a worker, a call that finds the only worker running a
// slow one waits in the queue; the dispatcher looks at it again once that
// one has run kStuckHeadNs (20 ms), though nothing else happens, and starts
// a second worker for it instead of leaving it behind the slow one.
class OnePerWorkerTest : public ControllerTest {
 protected:
  std::vector<std::string> ControllerArgs() const override { return {"--pipeline-depth", "1"}; }
};

TEST_F(OnePerWorkerTest, ACallBehindAStuckOneGetsAnotherWorker) {
  DeployOk(TestFunctionPath("sleep"), "sleep", {"--max-workers", "2"});
  for (int i = 0; i < 5; ++i) ASSERT_EQ(controller_->Call("POST", "/fn/sleep", "0").status, 200);
  std::thread slow([&] {
    runtime::HttpClient client("127.0.0.1", controller_->port(), 30000);
    auto r = client.Request("POST", "/fn/sleep", {}, "600");
    EXPECT_TRUE(r.ok() && r->status == 200) << (r.ok() ? r->body : r.status().ToString());
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const auto start = std::chrono::steady_clock::now();
  runtime::HttpClientResponse quick = controller_->Call("POST", "/fn/sleep", "0");
  const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  slow.join();
  EXPECT_EQ(quick.status, 200) << quick.body;
  EXPECT_LT(waited.count(), 400)
      << "expected the quick call on a second worker within about 20 ms, not behind the 600 ms one";
  api::Function fn;
  ASSERT_TRUE(controller_->Describe("sleep", &fn));
  EXPECT_EQ(fn.status().loads(), 2u);
}

}  // namespace
}  // namespace wisp::testing
