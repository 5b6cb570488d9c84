// Immutable versions through the real binaries: every deploy is a version,
// `wisp rollback` and `wisp describe`, the config map (--env, manifest env:)
// in the worker's environment, a restart, and deploys under load.
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/controller_fixture.h"
#include "triggers/query.h"

namespace wisp::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kName[] = "ve";

class VersionsTest : public ControllerTest {
 protected:
  // The body of one call to /fn/ve, or "HTTP <status>: <body>" if it failed.
  std::string Reply() {
    runtime::HttpClientResponse r = controller_->Call("POST", std::string("/fn/") + kName);
    if (r.status != 200) return "HTTP " + std::to_string(r.status) + ": " + r.body;
    return r.body;
  }
  // The real CLI against this controller.
  CliResult Cli(std::vector<std::string> args) {
    args.insert(args.end(), {"--server", controller_->url()});
    return RunCli(args);
  }
  // PUT /v1/functions/ve?<query> with version_echo.so as the body.
  runtime::HttpClientResponse DeployViaApi(const std::string& query) {
    std::ifstream in(TestFunctionPath("version_echo"), std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    return controller_->Call("PUT", std::string("/v1/functions/") + kName + "?" + query,
                             bytes.str());
  }
  // describe --json through the CLI, parsed; fails the test if it is not.
  api::Function DescribeJson() {
    api::Function fn;
    CliResult r = Cli({"describe", kName, "--json"});
    EXPECT_EQ(r.exit_code, 0) << "describe --json: " << r.err;
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = true;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &fn, options).ok())
        << "describe --json printed no api::Function: " << r.out;
    return fn;
  }
};

// "0.0.1 (current), 0.0.2" for the failure messages.
std::string VersionsOf(const api::Function& fn) {
  std::string out;
  for (const api::FunctionVersion& v : fn.versions()) {
    out += (out.empty() ? "" : ", ") + v.version() + (v.current() ? " (current)" : "");
  }
  return out.empty() ? "none" : out;
}

int CurrentCount(const api::Function& fn) {
  int n = 0;
  for (const api::FunctionVersion& v : fn.versions()) n += v.current() ? 1 : 0;
  return n;
}

TEST_F(VersionsTest, RollbackServesTheEarlierVersionAndToGoesBack) {
  DeployOk(TestFunctionPath("version_echo"), kName);
  EXPECT_EQ(Reply(), "0.0.1 -");
  DeployOk(TestFunctionPath("version_echo"), kName, {"--env", "GREETING=hi"});
  EXPECT_EQ(Reply(), "0.0.2 hi") << "new calls go to the new version with its env";

  CliResult back = Cli({"rollback", kName});
  ASSERT_EQ(back.exit_code, 0) << back.err;
  EXPECT_EQ(back.out, "rolled back ve to 0.0.1\n");
  EXPECT_EQ(Reply(), "0.0.1 -") << "after `wisp rollback` calls answer with the first version";

  CliResult forward = Cli({"rollback", kName, "--to", "0.0.2"});
  ASSERT_EQ(forward.exit_code, 0) << forward.err;
  EXPECT_EQ(forward.out, "rolled back ve to 0.0.2\n");
  EXPECT_EQ(Reply(), "0.0.2 hi") << "after `wisp rollback --to 0.0.2`";

  api::Function fn = DescribeJson();
  ASSERT_EQ(fn.versions_size(), 2) << "versions: " << VersionsOf(fn);
  EXPECT_EQ(CurrentCount(fn), 1) << "exactly one current version, got " << VersionsOf(fn);
  EXPECT_EQ(fn.versions(0).version(), "0.0.1") << "oldest first: " << VersionsOf(fn);
  EXPECT_FALSE(fn.versions(0).current());
  EXPECT_TRUE(fn.versions(0).config().env().empty());
  EXPECT_EQ(fn.versions(1).version(), "0.0.2");
  EXPECT_TRUE(fn.versions(1).current()) << VersionsOf(fn);
  EXPECT_EQ(fn.versions(1).config().env().count("GREETING"), 1u);
  EXPECT_EQ(fn.version(), "0.0.2");
  ASSERT_EQ(fn.config().env().count("GREETING"), 1u) << "config.env of the current version";
  EXPECT_EQ(fn.config().env().at("GREETING"), "hi");
  EXPECT_EQ(fn.versions(1).sha256(), fn.sha256());
  EXPECT_GT(fn.versions(1).size_bytes(), 0u);
  EXPECT_FALSE(fn.versions(1).deployed_at().empty());
}

TEST_F(VersionsTest, DescribeShowsConfigStatusAndAVersionTable) {
  DeployOk(TestFunctionPath("version_echo"), kName, {"--timeout", "5s"});
  DeployOk(TestFunctionPath("version_echo"), kName,
           {"--env", "GREETING=hi", "--env", "OTHER=a=b", "--subscribe", "ve.x"});
  EXPECT_EQ(Reply(), "0.0.2 hi");
  CliResult r = Cli({"describe", kName});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  api::Function fn;
  ASSERT_TRUE(controller_->Describe(kName, &fn));
  for (const std::string& expected : std::vector<std::string>{
           "name         ve\n", "version      0.0.2\n", "sha256       " + fn.sha256() + "\n",
           "timeout      30s\n", "subjects     ve.x\n", "private      no\n",
           "env          GREETING=hi\n             OTHER=a=b\n", "loaded       yes (workers ",
           "invocations  1\n", "errors       0\n", "queue depth  0\n"}) {
    EXPECT_THAT(r.out, HasSubstr(expected)) << "describe should print '" << expected << "'";
  }
  // The table: a header, then one row per version, oldest first, the
  // current one marked.
  std::istringstream lines(r.out.substr(r.out.find("VERSION")));
  std::string header, first, second, extra;
  std::getline(lines, header);
  std::getline(lines, first);
  std::getline(lines, second);
  EXPECT_THAT(header, HasSubstr("DEPLOYED"));
  EXPECT_THAT(header, HasSubstr("SHA256"));
  EXPECT_THAT(header, HasSubstr("SIZE"));
  EXPECT_THAT(header, HasSubstr("CURRENT"));
  EXPECT_EQ(first.rfind("0.0.1 ", 0), 0u) << "first row: " << first;
  EXPECT_NE(first.back(), '*') << "0.0.1 is not current: '" << first << "'";
  EXPECT_THAT(first, HasSubstr(" " + std::to_string(fn.size_bytes())));
  EXPECT_EQ(second.rfind("0.0.2 ", 0), 0u) << "second row: " << second;
  EXPECT_EQ(second.back(), '*') << "0.0.2 is current: '" << second << "'";
  EXPECT_THAT(second, HasSubstr(" " + fn.sha256().substr(0, 12) + " "));
  EXPECT_THAT(second, Not(HasSubstr(fn.sha256().substr(0, 13))));
  EXPECT_THAT(second, HasSubstr(" " + std::to_string(fn.size_bytes()) + "  *"));
  EXPECT_FALSE(std::getline(lines, extra) && !extra.empty()) << "a third row: " << extra;
}

TEST_F(VersionsTest, RollbackErrorsAreOneReadableLine) {
  DeployOk(TestFunctionPath("version_echo"), kName);
  struct Case {
    std::vector<std::string> args;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {{"rollback", kName}, "no earlier version to roll back to (nothing_to_roll_back, HTTP 409)"},
      {{"rollback", kName, "--to", "9.9.9"},
       "ve has no version 9.9.9 (version_not_found, HTTP 404)"},
      {{"rollback", kName, "--to", "0.0.1"}, "(already_current, HTTP 409)"},
      {{"rollback", kName, "--to", "latest"}, "(invalid_version, HTTP 400)"},
      {{"rollback", "nope"}, "no function named 'nope' is deployed (function_not_found, HTTP 404)"},
      {{"describe", "nope"}, "(function_not_found, HTTP 404)"},
      {{"rollback", "NOPE!"}, "invalid function name 'NOPE!'"},
  };
  for (const Case& c : cases) {
    CliResult r = Cli(c.args);
    const std::string what = ::testing::PrintToString(c.args);
    EXPECT_NE(r.exit_code, 0) << what << " should fail; printed " << r.out;
    EXPECT_EQ(r.exit_code, c.args[1] == "NOPE!" ? 2 : 1) << what << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.expected)) << what;
    EXPECT_EQ(r.err.rfind("wisp: ", 0), 0u) << what << ": " << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << what << " should print one line: " << r.err;
    EXPECT_EQ(r.out, "") << what;
  }
  EXPECT_EQ(Reply(), "0.0.1 -") << "failed rollbacks change nothing";

  runtime::HttpClient client("127.0.0.1", controller_->port(), 10000);
  StatusOr<runtime::HttpClientResponse> none =
      client.Request("POST", std::string("/v1/functions/") + kName + "/rollback");
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_EQ(none->status, 401) << "rollback without the token: " << none->body;
  CliResult wrong = Cli({"rollback", kName, "--token", "nope"});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_THAT(wrong.err, HasSubstr("unauthorized"));
}

TEST_F(VersionsTest, AnExistingVersionIsRefusedAndTheOldOneStillServes) {
  DeployOk(TestFunctionPath("version_echo"), kName, {"--version", "1.0.0", "--env", "GREETING=a"});
  EXPECT_EQ(Reply(), "1.0.0 a");
  CliResult again = controller_->Deploy(TestFunctionPath("version_echo"), kName,
                                        {"--version", "1.0.0", "--env", "GREETING=b"});
  EXPECT_EQ(again.exit_code, 1) << again.out;
  EXPECT_THAT(again.err, HasSubstr("(version_exists, HTTP 409)"));
  runtime::HttpClientResponse api = DeployViaApi("version=1.0.0&env=GREETING%3Db");
  EXPECT_EQ(api.status, 409) << api.body;
  EXPECT_THAT(api.body, HasSubstr("\"version_exists\""));
  EXPECT_EQ(Reply(), "1.0.0 a") << "the existing version keeps serving, unchanged";
  api::Function fn = DescribeJson();
  EXPECT_EQ(fn.versions_size(), 1) << VersionsOf(fn);
  EXPECT_EQ(fn.config().env().at("GREETING"), "a");
}

TEST_F(VersionsTest, ABadEnvIsRefusedAndDeploysNothing) {
  struct Case {
    std::string pair;
    int exit_code;  // 2: the CLI's own check; 1: the controller's
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"1X=2", 2, "env wants KEY=VALUE"}, {"NOVALUE", 2, "env wants KEY=VALUE"},
      {"=x", 2, "env wants KEY=VALUE"},   {"A-B=1", 2, "env wants KEY=VALUE"},
      {"WISP_X=1", 1, "reserved"},        {"WISP_FUNCTION_VERSION=9.9.9", 1, "reserved"},
  };
  for (const Case& c : cases) {
    CliResult r = controller_->Deploy(TestFunctionPath("version_echo"), kName, {"--env", c.pair});
    EXPECT_EQ(r.exit_code, c.exit_code) << "--env " << c.pair << ": " << r.err << r.out;
    EXPECT_THAT(r.err, HasSubstr(c.expected)) << "--env " << c.pair;
    runtime::HttpClientResponse api = DeployViaApi("env=" + triggers::PercentEncode(c.pair));
    EXPECT_EQ(api.status, 400) << "env=" << c.pair << " through the API: " << api.body;
    EXPECT_EQ(controller_->Call("GET", std::string("/v1/functions/") + kName).status, 404)
        << "nothing may be deployed after --env " << c.pair;
  }
  DeployOk(TestFunctionPath("version_echo"), kName);
  for (const Case& c : cases) {
    EXPECT_NE(
        controller_->Deploy(TestFunctionPath("version_echo"), kName, {"--env", c.pair}).exit_code,
        0);
  }
  api::Function fn = DescribeJson();
  EXPECT_EQ(fn.versions_size(), 1) << "refused deploys add no version: " << VersionsOf(fn);
  EXPECT_EQ(Reply(), "0.0.1 -");
}

TEST_F(VersionsTest, EachVersionGetsOnlyItsOwnEnv) {
  DeployOk(TestFunctionPath("version_echo"), kName, {"--env", "GREETING=hi there, =&%"});
  EXPECT_EQ(Reply(), "0.0.1 hi there, =&%") << "the value arrives byte for byte";
  DeployOk(TestFunctionPath("version_echo"), kName);
  EXPECT_EQ(Reply(), "0.0.2 -") << "a version without GREETING must not see the previous one's";
  DeployOk(TestFunctionPath("version_echo"), kName, {"--env", "GREETING="});
  EXPECT_EQ(Reply(), "0.0.3 ") << "an empty value is set, and empty";
}

TEST_F(VersionsTest, ApplyPassesEnvAndRedeploysOnlyWhenItChanges) {
  const std::string manifest = dir_.path() + "/wisp.yaml";
  auto write = [&](const std::string& env) {
    std::ofstream out(manifest);
    out << "functions:\n  - name: ve\n    path: " << TestFunctionPath("version_echo") << "\n"
        << env;
  };
  write("    env:\n      GREETING: hello\n");
  CliResult first = Cli({"apply", "-f", manifest});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_THAT(first.out, HasSubstr("1 deployed, 0 unchanged"));
  EXPECT_EQ(Reply(), "0.0.1 hello");

  CliResult same = Cli({"apply", "-f", manifest});
  ASSERT_EQ(same.exit_code, 0) << same.err;
  EXPECT_THAT(same.out, HasSubstr("0 deployed, 1 unchanged")) << "the same file twice";
  EXPECT_EQ(DescribeJson().versions_size(), 1);

  write("    env:\n      GREETING: bye\n");
  CliResult changed = Cli({"apply", "-f", manifest});
  ASSERT_EQ(changed.exit_code, 0) << changed.err;
  EXPECT_THAT(changed.out, HasSubstr("1 deployed, 0 unchanged")) << "an env change redeploys";
  EXPECT_EQ(Reply(), "0.0.2 bye");

  write("");
  CliResult dropped = Cli({"apply", "-f", manifest});
  ASSERT_EQ(dropped.exit_code, 0) << dropped.err;
  EXPECT_THAT(dropped.out, HasSubstr("1 deployed, 0 unchanged")) << "dropping env redeploys";
  EXPECT_EQ(Reply(), "0.0.3 -");
  CliResult again = Cli({"apply", "-f", manifest});
  EXPECT_THAT(again.out, HasSubstr("0 deployed, 1 unchanged"));

  write("    env:\n      WISP_X: 1\n");
  CliResult reserved = Cli({"apply", "-f", manifest});
  EXPECT_EQ(reserved.exit_code, 1) << reserved.out;
  EXPECT_THAT(reserved.err, HasSubstr("reserved"));
  EXPECT_EQ(Reply(), "0.0.3 -");
}

TEST_F(VersionsTest, ARestartKeepsTheVersionsAndTheCurrentOne) {
  DeployOk(TestFunctionPath("version_echo"), kName);
  DeployOk(TestFunctionPath("version_echo"), kName, {"--env", "GREETING=hi"});
  ASSERT_EQ(Cli({"rollback", kName}).exit_code, 0);
  EXPECT_EQ(Reply(), "0.0.1 -");

  controller_->Stop();
  std::string error;
  ASSERT_TRUE(controller_->Start(&error)) << error;
  EXPECT_EQ(Reply(), "0.0.1 -") << "a graceful restart keeps the rolled-back version current";
  api::Function fn = DescribeJson();
  EXPECT_EQ(VersionsOf(fn), "0.0.1 (current), 0.0.2");
  EXPECT_EQ(fn.versions(1).config().env().count("GREETING"), 1u) << "each version keeps its env";

  ASSERT_EQ(Cli({"rollback", kName, "--to", "0.0.2"}).exit_code, 0);
  controller_->Kill();
  ASSERT_TRUE(controller_->Start(&error)) << error;
  EXPECT_EQ(Reply(), "0.0.2 hi") << "kill -9 keeps the current version and its env";
  EXPECT_EQ(VersionsOf(DescribeJson()), "0.0.1, 0.0.2 (current)");
}

// The controller's own environment (its token, credentials it was started
// with) never reaches a function: only the config map does.
TEST_F(VersionsTest, TheControllersEnvironmentDoesNotReachFunctions) {
  controller_->Stop();
  controller_->SetEnv("GREETING", "from-the-controller");
  std::string error;
  ASSERT_TRUE(controller_->Start(&error)) << error;
  DeployOk(TestFunctionPath("version_echo"), kName);
  EXPECT_EQ(Reply(), "0.0.1 -") << "the function saw the controller's GREETING";
  DeployOk(TestFunctionPath("version_echo"), kName, {"--env", "GREETING=own"});
  EXPECT_EQ(Reply(), "0.0.2 own");
}

// A deploy without --version numbers from the newest deploy, not from the
// current version: after a rollback to 0.0.1, 0.0.2 is taken already.
TEST_F(VersionsTest, ADeployAfterARollbackGetsAFreshVersion) {
  DeployOk(TestFunctionPath("version_echo"), kName);
  DeployOk(TestFunctionPath("version_echo"), kName);
  ASSERT_EQ(Cli({"rollback", kName}).exit_code, 0);
  DeployOk(TestFunctionPath("version_echo"), kName, {"--env", "GREETING=fix"});
  EXPECT_EQ(Reply(), "0.0.3 fix");
}

// One call made by LoadWhile's client.
struct LoadCall {
  int status = 0;
  std::string body;
  int sent_epoch = 0;  // LoadWhile's epoch when it was sent ...
  int done_epoch = 0;  // ... and when its reply came
};

// Calls /fn/<name> as fast as it can on one keep-alive connection while it
// runs the actions one after the other, each once the client has finished
// some calls since the previous one; then some more calls. The epoch is 2i+1
// while action i runs and 2i+2 once it has answered. *action_errors gets
// whatever action did not answer 200.
std::vector<LoadCall> LoadWhile(
    int port, const std::string& name,
    const std::vector<std::function<runtime::HttpClientResponse()>>& actions,
    std::vector<std::string>* action_errors) {
  constexpr int kCallsBetween = 50;
  std::vector<LoadCall> calls;
  std::atomic<int> epoch{0};
  std::atomic<int> done_calls{0};
  std::atomic<bool> stop{false};
  std::thread client_thread([&] {
    runtime::HttpClient client("127.0.0.1", port, 10000);
    while (!stop.load()) {
      LoadCall call;
      call.sent_epoch = epoch.load();
      StatusOr<runtime::HttpClientResponse> r = client.Request("POST", "/fn/" + name);
      call.done_epoch = epoch.load();
      call.status = r.ok() ? r->status : 0;
      call.body = r.ok() ? r->body : r.status().ToString();
      calls.push_back(std::move(call));
      done_calls.fetch_add(1);
    }
  });
  auto wait_calls = [&] {  // at most 10 s
    const int target = done_calls.load() + kCallsBetween;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (done_calls.load() < target && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  };
  wait_calls();
  for (size_t i = 0; i < actions.size(); ++i) {
    epoch.store(static_cast<int>(2 * i + 1));
    runtime::HttpClientResponse r = actions[i]();
    epoch.store(static_cast<int>(2 * i + 2));
    if (r.status != 200) {
      action_errors->push_back("action " + std::to_string(i) + ": HTTP " +
                               std::to_string(r.status) + " " + r.body);
    }
    wait_calls();
  }
  stop.store(true);
  client_thread.join();
  return calls;
}

// Checks calls against the version serving after each action (serving[0]:
// before the first): each call answers 200 with "<version> -", from a
// version that served at some point between its sending and its reply.
// Returns a summary with the counts, and the first problem, if any.
std::string CheckServedInOrder(const std::vector<LoadCall>& calls,
                               const std::vector<std::string>& serving, int* problems) {
  std::map<std::string, int> per_version;
  int failed = 0, unnamed = 0, out_of_window = 0;
  std::string first_problem;
  for (size_t i = 0; i < calls.size(); ++i) {
    const LoadCall& c = calls[i];
    const std::string version = c.body.substr(0, c.body.find(' '));
    std::string problem;
    if (c.status != 200) {
      ++failed;
      problem = "status " + std::to_string(c.status) + " '" + c.body + "'";
    } else if (c.body != version + " -" ||
               std::find(serving.begin(), serving.end(), version) == serving.end()) {
      ++unnamed;
      problem = "reply '" + c.body + "' names no deployed version";
    } else {
      ++per_version[version];
      // States sent_epoch / 2 .. (done_epoch + 1) / 2 were serving meanwhile.
      std::string allowed;
      bool ok = false;
      for (int state = c.sent_epoch / 2; state <= (c.done_epoch + 1) / 2; ++state) {
        ok = ok || serving[state] == version;
        allowed += (allowed.empty() ? "" : " or ") + serving[state];
      }
      if (!ok) {
        ++out_of_window;
        problem = "expected " + allowed + ", got '" + c.body + "'";
      }
    }
    if (!problem.empty() && first_problem.empty()) {
      first_problem = "call " + std::to_string(i) + " (epochs " + std::to_string(c.sent_epoch) +
                      ".." + std::to_string(c.done_epoch) + "): " + problem;
    }
  }
  *problems = failed + unnamed + out_of_window;
  return std::to_string(calls.size()) + " calls, " + std::to_string(failed) + " failed, " +
         std::to_string(unnamed) + " unnamed, " + std::to_string(out_of_window) +
         " served by a version not current at the time; per version: " +
         ::testing::PrintToString(per_version) +
         "; first problem: " + (first_problem.empty() ? "none" : first_problem);
}

// A client calls as fast as it can while the test deploys 0.0.2..0.0.6
// through the API: no call fails, each reply names one deployed version,
// versions never go backwards, and a call sent after a deploy answered is
// served by that version.
TEST_F(VersionsTest, DeploysUnderLoadLoseNoCallAndNeverGoBack) {
  DeployOk(TestFunctionPath("version_echo"), kName);
  const std::vector<std::string> serving = {"0.0.1", "0.0.2", "0.0.3", "0.0.4", "0.0.5", "0.0.6"};
  std::vector<std::function<runtime::HttpClientResponse()>> deploys;
  for (size_t i = 1; i < serving.size(); ++i) {
    deploys.push_back([this, v = serving[i]] { return DeployViaApi("version=" + v); });
  }
  std::vector<std::string> deploy_errors;
  std::vector<LoadCall> calls = LoadWhile(controller_->port(), kName, deploys, &deploy_errors);
  EXPECT_TRUE(deploy_errors.empty()) << ::testing::PrintToString(deploy_errors);

  int problems = 0;
  const std::string summary = CheckServedInOrder(calls, serving, &problems);
  RecordProperty("load", summary);
  EXPECT_EQ(problems, 0) << "every call should answer 200 with the version current when it "
                            "was sent or one deployed while it ran; "
                         << summary;
  int backwards = 0;
  ptrdiff_t last = 0;  // index in serving, which is in deploy order
  for (const LoadCall& c : calls) {
    const auto at = std::find(serving.begin(), serving.end(), c.body.substr(0, c.body.find(' ')));
    if (c.status != 200 || at == serving.end()) continue;
    if (at - serving.begin() < last) ++backwards;
    last = std::max(last, at - serving.begin());
  }
  EXPECT_EQ(backwards, 0) << "versions should never go backwards; " << summary;
  ASSERT_FALSE(calls.empty());
  EXPECT_EQ(calls.back().body, "0.0.6 -") << "after the last deploy; " << summary;
  EXPECT_EQ(Reply(), "0.0.6 -");
}

// The same with rollbacks: once a rollback answered, every new call goes to
// its target, and none fails on the way.
TEST_F(VersionsTest, RollbacksUnderLoadLoseNoCall) {
  DeployOk(TestFunctionPath("version_echo"), kName);
  DeployOk(TestFunctionPath("version_echo"), kName);
  DeployOk(TestFunctionPath("version_echo"), kName);
  auto rollback = [this](const std::string& to) {
    return [this, to] {
      return controller_->Call("POST", std::string("/v1/functions/") + kName + "/rollback" +
                                           (to.empty() ? "" : "?to=" + to));
    };
  };
  const std::vector<std::string> serving = {"0.0.3", "0.0.2", "0.0.1", "0.0.3", "0.0.1"};
  std::vector<std::string> errors;
  std::vector<LoadCall> calls =
      LoadWhile(controller_->port(), kName,
                {rollback(""), rollback(""), rollback("0.0.3"), rollback("0.0.1")}, &errors);
  EXPECT_TRUE(errors.empty()) << ::testing::PrintToString(errors);
  int problems = 0;
  const std::string summary = CheckServedInOrder(calls, serving, &problems);
  RecordProperty("load", summary);
  EXPECT_EQ(problems, 0) << summary;
  EXPECT_EQ(Reply(), "0.0.1 -");
}

}  // namespace
}  // namespace wisp::testing
