// Functions that crash, abort, exit, hang or die while loading: each caller
// gets the right status and a JSON error naming the cause, the controller
// stays up, and a healthy function beside them answers correctly throughout.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <signal.h>
#include <unistd.h>


#include <thread>

#include "tests/integration/controller_fixture.h"

namespace wisp::testing {
namespace {

using ::testing::HasSubstr;

struct CrashCase {
  const char* function;
  std::vector<std::string> deploy_args;
  int status;
  const char* code;
  const char* cause;
};

class CrashTest : public ControllerTest {};

TEST_F(CrashTest, EachFailureIsReportedAndOthersKeepAnswering) {
  const CrashCase cases[] = {
      {"segv", {}, 502, "worker_crashed", "worker killed by SIGSEGV"},
      {"abort", {}, 502, "worker_crashed", "worker killed by SIGABRT"},
      {"exit3", {}, 502, "worker_crashed", "worker exited with status 3"},
      {"loop", {"--timeout", "500ms"}, 504, "timeout", "did not answer within 500 ms"},
      {"ctor_crash", {}, 502, "load_failed", "killed by SIGSEGV while loading"},
      {"bad_abi", {}, 502, "load_failed", "ABI version 7, this runtime speaks 1"},
      {"init_fail", {}, 502, "load_failed", "wisp_init returned 3"},
      {"badframe", {}, 502, "worker_crashed", "worker sent a bad frame"},
      {"hugeframe", {}, 502, "worker_crashed", "exceeds the limit"},
  };
  DeployOk(ExamplePath("hello"), "hello");
  for (const CrashCase& c : cases) DeployOk(TestFunctionPath(c.function), c.function, c.deploy_args);

  std::atomic<bool> stop{false};
  std::atomic<int> healthy_ok{0};
  std::atomic<int> healthy_bad{0};
  std::string first_bad;
  std::thread healthy([&] {
    runtime::HttpClient client("127.0.0.1", controller_->port(), 30000);
    int i = 0;
    while (!stop) {
      const std::string body = "beside-" + std::to_string(i++);
      auto r = client.Request("POST", "/fn/hello", {}, body);
      if (r.ok() && r->status == 200 && r->body == "hello, " + body) {
        ++healthy_ok;
      } else if (healthy_bad++ == 0) {
        first_bad = r.ok() ? std::to_string(r->status) + " " + r->body : r.status().ToString();
      }
    }
  });

  for (const CrashCase& c : cases) {
    for (int attempt = 1; attempt <= 2; ++attempt) {  // the next call gets a fresh worker
      runtime::HttpClientResponse r = controller_->Call("POST", std::string("/fn/") + c.function, "x");
      EXPECT_EQ(r.status, c.status) << c.function << " attempt " << attempt << ": " << r.body;
      EXPECT_THAT(r.body, HasSubstr(std::string("\"code\":\"") + c.code + "\""))
          << c.function << " attempt " << attempt;
      EXPECT_THAT(r.body, HasSubstr(c.cause)) << c.function << " attempt " << attempt;
    }
  }
  stop = true;
  healthy.join();
  EXPECT_EQ(healthy_bad.load(), 0) << "the healthy function failed beside the crashing ones: "
                                   << first_bad;
  EXPECT_GT(healthy_ok.load(), 10);

  // The controller is still up and serving.
  EXPECT_EQ(controller_->Call("GET", "/healthz").status, 200);
  EXPECT_EQ(controller_->Call("POST", "/fn/hello", "after").body, "hello, after");
  api::Function fn;
  ASSERT_TRUE(controller_->Describe("segv", &fn));
  EXPECT_EQ(fn.status().errors(), 2u);
}

TEST_F(CrashTest, QueuedCallsBehindACrashStillRun) {
  // segv crashes on every call; status answers. With one worker and calls
  // pipelined behind a crash, the ones that never started are re-sent.
  DeployOk(TestFunctionPath("counter"), "counter", {"--max-workers", "1"});
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      runtime::HttpClient client("127.0.0.1", controller_->port(), 30000);
      for (int i = 0; i < 50; ++i) {
        auto r = client.Request("POST", "/fn/counter");
        if (r.ok() && r->status == 200) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 400);
}

TEST_F(CrashTest, ControllerSurvivesKilledWorker) {
  DeployOk(TestFunctionPath("counter"), "counter");
  ASSERT_EQ(controller_->Call("POST", "/fn/counter").status, 200);
  api::Function fn;
  ASSERT_TRUE(controller_->Describe("counter", &fn));
  ASSERT_EQ(fn.status().worker_pids_size(), 1);
  ::kill(fn.status().worker_pids(0), SIGKILL);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  runtime::HttpClientResponse r = controller_->Call("POST", "/fn/counter");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body.substr(0, 2), "1 ") << "a fresh worker should serve after the kill";
}

TEST_F(CrashTest, KilledZygoteIsReplacedAndCallsGoOn) {
  DeployOk(TestFunctionPath("counter"), "counter");
  ASSERT_EQ(controller_->Call("POST", "/fn/counter").status, 200);
  api::Function fn;
  ASSERT_TRUE(controller_->Describe("counter", &fn));
  ASSERT_EQ(fn.status().worker_pids_size(), 1);
  const pid_t worker = fn.status().worker_pids(0);
  const pid_t zygote = ParentOf(worker);
  ASSERT_GT(zygote, 1);
  ASSERT_NE(zygote, controller_->pid());
  ::kill(zygote, SIGKILL);
  for (int i = 0; i < 100 && ProcessAlive(worker); ++i) usleep(10000);
  EXPECT_FALSE(ProcessAlive(worker)) << "workers die with their zygote";
  runtime::HttpClientResponse r;
  for (int attempt = 0; attempt < 50; ++attempt) {
    r = controller_->Call("POST", "/fn/counter");
    if (r.status == 200) break;
    usleep(20000);
  }
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body.substr(0, 2), "1 ") << "a fresh worker from a fresh zygote";
  EXPECT_EQ(controller_->Call("GET", "/healthz").status, 200);
}

}  // namespace
}  // namespace wisp::testing
