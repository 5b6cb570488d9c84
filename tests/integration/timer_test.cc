// Timer triggers: a function run on a schedule, once per tick, its ticks
// lined up with the clock; a durable schedule retries a failed tick; a cron
// schedule shows its next tick; refusals.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "api.pb.h"
#include "tests/integration/controller_fixture.h"

namespace wisp::testing {
namespace {

using ::testing::HasSubstr;

struct Tick {
  unsigned attempt = 0;
  long long at_ms = 0;
  std::string body;
};

// flaky's journal: "<attempt> <unix ms> <body>" per run.
std::vector<Tick> Runs(const std::string& path) {
  std::vector<Tick> runs;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    Tick r;
    fields >> r.attempt >> r.at_ms;
    std::getline(fields >> std::ws, r.body);
    runs.push_back(r);
  }
  return runs;
}

class TimerTest : public ControllerTest {
 protected:
  std::string Journal() const { return dir_.path() + "/ticks.txt"; }
  bool WaitForRuns(size_t n, std::chrono::seconds timeout = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (Runs(Journal()).size() < n) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
  }
};

TEST_F(TimerTest, RunsOncePerTickOnTheClock) {
  DeployOk(TestFunctionPath("flaky"), "ticker",
           {"--every", "300ms", "--env", "JOURNAL=" + Journal(), "--env", "FAIL_FIRST=0"});
  ASSERT_TRUE(WaitForRuns(4)) << "saw " << Runs(Journal()).size() << " ticks";
  const std::vector<Tick> runs = Runs(Journal());
  std::set<std::string> ticks;
  for (const Tick& r : runs) {
    EXPECT_THAT(r.body, HasSubstr("\"scheduled\":\"")) << r.body;
    EXPECT_TRUE(ticks.insert(r.body).second) << "tick run twice: " << r.body;
  }
  for (size_t i = 1; i < runs.size(); ++i) {
    const long long gap = runs[i].at_ms - runs[i - 1].at_ms;
    EXPECT_GT(gap, 150) << "ticks " << i - 1 << " and " << i << " came too close";
    EXPECT_LT(gap, 1000) << "a tick was late or skipped";
  }
  // The scheduled times are multiples of the period.
  const std::string& body = runs[0].body;
  const std::string millis = body.substr(body.find('.') + 1, 3);
  EXPECT_EQ(std::stoi(millis) % 100, 0) << body;

  api::Function fn;
  ASSERT_TRUE(controller_->Describe("ticker", &fn));
  EXPECT_EQ(fn.config().every_ms(), 300u);
  EXPECT_FALSE(fn.config().next_tick().empty());

  // Removed, it stops.
  ASSERT_EQ(controller_->Call("DELETE", "/v1/functions/ticker").status, 200);
  const size_t after_removal = Runs(Journal()).size();
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  EXPECT_LE(Runs(Journal()).size(), after_removal + 1) << "ticks went on after the removal";
}

TEST_F(TimerTest, ADurableScheduleRetriesAFailedTick) {
  DeployOk(TestFunctionPath("flaky"), "retrier",
           {"--every", "500ms", "--durable", "--backoff", "100ms", "--env",
            "JOURNAL=" + Journal(), "--env", "FAIL_FIRST=1"});
  ASSERT_TRUE(WaitForRuns(4)) << "saw " << Runs(Journal()).size() << " runs";
  // Each tick fails once, then its retry succeeds: attempts 1 then 2 of the
  // same tick. A retry may come after the next tick's first attempt.
  std::map<std::string, std::vector<unsigned>> attempts_by_tick;
  for (const Tick& r : Runs(Journal())) attempts_by_tick[r.body].push_back(r.attempt);
  size_t retried = 0;
  for (const auto& [tick, attempts] : attempts_by_tick) {
    ASSERT_FALSE(attempts.empty());
    EXPECT_EQ(attempts[0], 1u) << tick;
    if (attempts.size() < 2) continue;  // its retry is still to come
    EXPECT_EQ(attempts, (std::vector<unsigned>{1, 2})) << tick;
    ++retried;
  }
  EXPECT_GE(retried, 1u) << "no tick was retried";
}

TEST_F(TimerTest, ACronScheduleShowsItsNextTick) {
  DeployOk(TestFunctionPath("flaky"), "nightly", {"--cron", "0 3 * * *"});
  api::Function fn;
  ASSERT_TRUE(controller_->Describe("nightly", &fn));
  EXPECT_EQ(fn.config().cron(), "0 3 * * *");
  EXPECT_THAT(fn.config().next_tick(), HasSubstr("T03:00:00.000000Z"));
  CliResult describe = RunCli({"describe", "nightly", "--server", controller_->url()});
  EXPECT_THAT(describe.out, HasSubstr("cron '0 3 * * *' (UTC), next "));

  for (const auto& [args, expected] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--cron", "61 * * * *"}, "minute"},
           {{"--every", "10ms"}, "every must be from 100ms"},
           {{"--every", "1s", "--cron", "* * * * *"}, "not both"}}) {
    CliResult r = controller_->Deploy(TestFunctionPath("flaky"), "bad-timer", args);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_THAT(r.err, HasSubstr(expected));
  }
}

}  // namespace
}  // namespace wisp::testing
