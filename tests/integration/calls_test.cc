// Synchronous composition: a function calling another through host->call,
// with the reply, the trace carried on, cycles refused, unknown functions,
// timeouts, a crashing callee, and callers whose worker has more
// invocations pipelined behind the one waiting.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "api.pb.h"
#include "google/protobuf/util/json_util.h"
#include "tests/integration/controller_fixture.h"

namespace wisp::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class CallsTest : public ControllerTest {
 protected:
  void DeployCaller(const std::string& name, std::vector<std::string> env,
                    std::vector<std::string> extra = {}) {
    std::vector<std::string> args = extra;
    for (const std::string& e : env) {
      args.push_back("--env");
      args.push_back(e);
    }
    DeployOk(TestFunctionPath("caller"), name, args);
  }
  std::string Call(const std::string& name, const std::string& body) {
    runtime::HttpClientResponse r = controller_->Call("POST", "/fn/" + name, body);
    EXPECT_EQ(r.status, 200) << r.body;
    return r.body;
  }
};

TEST_F(CallsTest, AFunctionCallsAnotherAndGetsItsReplyInTheSameTrace) {
  DeployCaller("front", {"CALL_NEXT=back"});
  DeployCaller("back", {});
  const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  runtime::HttpClientResponse r = controller_->Call(
      "POST", "/fn/front", "hi", {{"traceparent", "00-" + trace + "-00f067aa0ba902b7-01"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "front(200:back:hi)");

  api::InvocationList list;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    runtime::HttpClientResponse got = controller_->Call("GET", "/v1/invocations?trace=" + trace);
    list.Clear();
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(got.body, &list).ok()) << got.body;
    if (list.invocations_size() >= 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(list.invocations_size(), 2) << "both sides of the call belong to the trace";
  bool saw_call = false;
  for (const api::Invocation& inv : list.invocations()) {
    if (inv.function() == "back") {
      EXPECT_EQ(inv.trigger(), "call");
      saw_call = true;
    } else {
      EXPECT_EQ(inv.function(), "front");
      EXPECT_EQ(inv.trigger(), "http");
    }
  }
  EXPECT_TRUE(saw_call);
}

TEST_F(CallsTest, ACycleIsRefusedInsteadOfWaitingForever) {
  DeployCaller("ping", {"CALL_NEXT=pong"});
  DeployCaller("pong", {"CALL_NEXT=ping"});
  const std::string body = Call("ping", "x");
  EXPECT_THAT(body, StartsWith("ping(200:pong(508!:"));
  EXPECT_THAT(body, HasSubstr("call_cycle"));
  EXPECT_THAT(body, HasSubstr("ping -\\u003e pong -\\u003e ping")) << body;

  DeployCaller("narcissus", {"CALL_NEXT=narcissus"});
  EXPECT_THAT(Call("narcissus", "x"), StartsWith("narcissus(508!:"));
}

TEST_F(CallsTest, UnknownTimedOutAndCrashedCalleesAreErrorsTheCallerSees) {
  DeployCaller("lost", {"CALL_NEXT=nowhere"});
  EXPECT_THAT(Call("lost", "x"), StartsWith("lost(404!:"));

  DeployOk(TestFunctionPath("sleep"), "slow");
  DeployCaller("impatient", {"CALL_NEXT=slow", "CALL_TIMEOUT_MS=200"});
  const auto start = std::chrono::steady_clock::now();
  const std::string timed_out = Call("impatient", "1500");
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_THAT(timed_out, StartsWith("impatient(504!:"));
  EXPECT_THAT(timed_out, HasSubstr("timeout"));
  EXPECT_LT(waited, std::chrono::milliseconds(1200)) << "the caller should not wait the full sleep";
  EXPECT_EQ(Call("impatient", "20"), "impatient(200:slept 20)");

  DeployOk(TestFunctionPath("segv"), "crasher");
  DeployCaller("survivor", {"CALL_NEXT=crasher"});
  const std::string crashed = Call("survivor", "x");
  EXPECT_THAT(crashed, StartsWith("survivor(502!:"));
  EXPECT_THAT(crashed, HasSubstr("SIGSEGV"));
  EXPECT_THAT(Call("survivor", "y"), StartsWith("survivor(502!:"))
      << "the caller's worker lives on and calls again";
}

TEST_F(CallsTest, InvocationsPipelinedBehindAWaitingCallerAllGetTheirReplies) {
  DeployCaller("outer", {"CALL_NEXT=inner"}, {"--max-workers", "1"});
  DeployCaller("inner", {}, {"--max-workers", "1"});
  constexpr int kThreads = 8;
  constexpr int kCalls = 25;
  std::atomic<int> right{0};
  std::vector<std::string> wrong(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      runtime::HttpClient client("127.0.0.1", controller_->port(), 30000);
      for (int i = 0; i < kCalls; ++i) {
        std::string body = std::to_string(t);
        body += '.';
        body += std::to_string(i);
        std::string expected = "outer(200:inner:";
        expected += body;
        expected += ')';
        auto r = client.Request("POST", "/fn/outer", {}, body);
        if (r.ok() && r->status == 200 && r->body == expected) {
          ++right;
        } else if (wrong[t].empty()) {
          wrong[t] = r.ok() ? std::to_string(r->status) + " " + r->body : r.status().ToString();
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::string first_wrong;
  for (const std::string& w : wrong) {
    if (!w.empty() && first_wrong.empty()) first_wrong = w;
  }
  EXPECT_EQ(right.load(), kThreads * kCalls) << "first wrong reply: " << first_wrong;
}

// ping's worker runs a call to pong while pong's runs a call to ping: were
// either call pipelined behind the other's caller, both would wait until the
// timeout. A worker waiting on a call takes nothing more while another
// worker can start, though both functions are cheap (runtime/dispatcher.h).
TEST_F(CallsTest, TwoFunctionsCallingEachOtherAtOnceNeverWaitOnEachOther) {
  DeployCaller("ping", {"CALL_BODY_NAMES=1"}, {"--timeout", "3s"});
  DeployCaller("pong", {"CALL_BODY_NAMES=1"}, {"--timeout", "3s"});
  // Warm: their run times are known to be short, so only the waiting call
  // can start a second worker.
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(Call("ping", ""), "ping:");
    ASSERT_EQ(Call("pong", ""), "pong:");
  }
  // One caller of each: two workers each are enough for them (more callers
  // could hold every worker of both in a call, which no policy undoes).
  constexpr int kThreads = 2;
  constexpr int kCalls = 50;
  std::atomic<int> right{0};
  std::vector<std::string> wrong(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string self = t % 2 == 0 ? "ping" : "pong";
      const std::string other = t % 2 == 0 ? "pong" : "ping";
      const std::string expected = self + "(200:" + other + ":)";
      runtime::HttpClient client("127.0.0.1", controller_->port(), 30000);
      for (int i = 0; i < kCalls; ++i) {
        auto r = client.Request("POST", "/fn/" + self, {}, other);
        if (r.ok() && r->status == 200 && r->body == expected) {
          ++right;
        } else if (wrong[t].empty()) {
          wrong[t] = "expected 200 " + expected + ", got " +
                     (r.ok() ? std::to_string(r->status) + " " + r->body : r.status().ToString());
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::string first_wrong;
  for (const std::string& w : wrong) {
    if (!w.empty() && first_wrong.empty()) first_wrong = w;
  }
  EXPECT_EQ(right.load(), kThreads * kCalls) << "first wrong reply: " << first_wrong;
}

}  // namespace
}  // namespace wisp::testing
