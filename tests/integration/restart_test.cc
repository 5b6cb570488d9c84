// Deployments survive a controller restart, graceful or kill -9.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/harness.h"

namespace wisp::testing {
namespace {

void ExpectServes(Controller& controller, const std::string& name, const std::string& expected) {
  runtime::HttpClientResponse r = controller.Call("POST", "/fn/" + name, "again");
  EXPECT_EQ(r.status, 200) << r.body << "\nlog:\n" << controller.Log();
  EXPECT_EQ(r.body, expected);
}

TEST(RestartTest, DeploymentsSurviveStopAndKill) {
  TempDir dir;
  {
    Controller first(dir.path());
    std::string error;
    ASSERT_TRUE(first.Start(&error)) << error;
    ASSERT_EQ(first.Deploy(ExamplePath("hello"), "hello", {"--timeout", "5s"}).exit_code, 0);
    ASSERT_EQ(first.Deploy(ExamplePath("echo"), "echo").exit_code, 0);
    ExpectServes(first, "hello", "hello, again");
    const int status = first.Stop();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "graceful stop should exit 0, wait status " << status << "\n" << first.Log();
  }
  {
    Controller second(dir.path());
    std::string error;
    ASSERT_TRUE(second.Start(&error)) << error;
    ExpectServes(second, "hello", "hello, again");
    ExpectServes(second, "echo", "again");
    api::Function fn;
    ASSERT_TRUE(second.Describe("hello", &fn));
    EXPECT_EQ(fn.config().timeout_ms(), 5000u) << "the deploy configuration is kept";
    second.Kill();
  }
  {
    Controller third(dir.path());
    std::string error;
    ASSERT_TRUE(third.Start(&error)) << error;
    ExpectServes(third, "hello", "hello, again");
  }
}

TEST(RestartTest, WorkersDoNotOutliveAKilledController) {
  TempDir dir;
  Controller controller(dir.path());
  std::string error;
  ASSERT_TRUE(controller.Start(&error)) << error;
  ASSERT_EQ(controller.Deploy(ExamplePath("hello"), "hello").exit_code, 0);
  ExpectServes(controller, "hello", "hello, again");
  api::Function fn;
  ASSERT_TRUE(controller.Describe("hello", &fn));
  ASSERT_EQ(fn.status().worker_pids_size(), 1);
  const pid_t worker = fn.status().worker_pids(0);
  controller.Kill();
  for (int i = 0; i < 100 && ProcessAlive(worker); ++i) usleep(20000);
  EXPECT_FALSE(ProcessAlive(worker)) << "worker " << worker << " outlived its controller";
}

}  // namespace
}  // namespace wisp::testing

namespace wisp::testing {
namespace {

TEST(GracefulStopTest, SigtermLetsInFlightCallsFinishAndAnswer) {
  TempDir dir;
  Controller controller(dir.path());
  std::string error;
  ASSERT_TRUE(controller.Start(&error)) << error;
  ASSERT_EQ(controller.Deploy(TestFunctionPath("sleep"), "sleep").exit_code, 0);
  ASSERT_EQ(controller.Call("POST", "/fn/sleep", "1").status, 200);  // warm
  runtime::HttpClientResponse in_flight;
  std::thread caller([&] { in_flight = controller.Call("POST", "/fn/sleep", "600"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const int status = controller.Stop();  // SIGTERM while the call runs
  caller.join();
  EXPECT_EQ(in_flight.status, 200) << in_flight.body;
  EXPECT_EQ(in_flight.body, "slept 600");
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
}

}  // namespace
}  // namespace wisp::testing
