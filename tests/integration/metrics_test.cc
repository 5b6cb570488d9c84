// GET /metrics after known traffic: the counts match what was sent, and the
// text is valid Prometheus exposition format.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "tests/integration/controller_fixture.h"

namespace wisp::testing {
namespace {

using ::testing::HasSubstr;

// sample line "name{labels} value" -> value, by "name{labels}".
std::map<std::string, double> ParseSamples(const std::string& text, std::string* problems) {
  static const std::regex kSample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$)");
  static const std::regex kComment(R"(^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$)");
  std::map<std::string, double> samples;
  std::set<std::string> typed;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, kComment)) {
      if (m[1] == "TYPE") typed.insert(m[2]);
      continue;
    }
    if (!std::regex_match(line, m, kSample)) {
      *problems += "not a sample: '" + line + "'\n";
      continue;
    }
    std::string family = m[1];
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string s(suffix);
      if (family.size() > s.size() && family.ends_with(s) &&
          typed.count(family.substr(0, family.size() - s.size())) > 0) {
        family.resize(family.size() - s.size());
      }
    }
    if (typed.count(family) == 0) *problems += "no # TYPE before '" + line + "'\n";
    samples[std::string(m[1]) + std::string(m[2])] = std::stod(m[3]);
  }
  return samples;
}

class MetricsTest : public ControllerTest {};

TEST_F(MetricsTest, CountsMatchTheTrafficSent) {
  DeployOk(ExamplePath("hello"), "hello");
  DeployOk(TestFunctionPath("segv"), "segv");
  for (int i = 0; i < 3; ++i) ASSERT_EQ(controller_->Call("POST", "/fn/hello", "m").status, 200);
  ASSERT_EQ(controller_->Call("POST", "/fn/segv", "x").status, 502);
  ASSERT_EQ(controller_->Call("POST", "/v1/events/nobody.listens", "e").status, 202);

  runtime::HttpClientResponse r = controller_->Call("GET", "/metrics");
  ASSERT_EQ(r.status, 200) << r.body;
  std::string problems;
  std::map<std::string, double> s = ParseSamples(r.body, &problems);
  EXPECT_EQ(problems, "") << r.body;
  auto expect = [&s, &r](const std::string& key, double want) {
    auto it = s.find(key);
    if (it == s.end()) {
      ADD_FAILURE() << "no sample " << key << " in:\n" << r.body;
      return;
    }
    EXPECT_EQ(it->second, want) << key;
  };
  expect(R"(wisp_invocations_total{function="hello",status="200"})", 3);
  expect(R"(wisp_invocations_total{function="segv",status="502"})", 1);
  expect(R"(wisp_invocation_errors_total{function="segv",code="worker_crashed"})", 1);
  expect(R"(wisp_invocation_duration_seconds_count{function="hello"})", 3);
  expect(R"(wisp_invocation_duration_seconds_bucket{function="hello",le="+Inf"})", 3);
  expect(R"(wisp_cold_starts_total{function="hello"})", 1);
  expect(R"(wisp_cold_start_duration_seconds_count{function="hello"})", 1);
  expect(R"(wisp_loaded_workers{function="hello"})", 1);
  expect(R"(wisp_loaded_workers{function="segv"})", 0);
  expect(R"(wisp_queue_depth{function="hello"})", 0);
  expect(R"(wisp_trigger_invocations_total{trigger="http"})", 4);
  expect("wisp_events_received_total", 0);
  EXPECT_GT(s["process_resident_memory_bytes"], 1e6) << r.body;
  EXPECT_GT(s["process_open_fds"], 3) << r.body;
  EXPECT_THAT(r.body, HasSubstr("# TYPE wisp_invocation_duration_seconds histogram"));

  // Buckets are cumulative: never decreasing towards +Inf.
  double previous = 0;
  for (const char* le : {"0.0001", "0.001", "0.01", "0.1", "1", "10", "+Inf"}) {
    const double v = s[std::string(R"(wisp_invocation_duration_seconds_bucket{function="hello",le=")") +
                       le + "\"}"];
    EXPECT_GE(v, previous) << "bucket le=" << le;
    previous = v;
  }
}

TEST_F(MetricsTest, NeedsTheTokenAndForgetsRemovedFunctions) {
  DeployOk(ExamplePath("hello"), "hello");
  ASSERT_EQ(controller_->Call("POST", "/fn/hello", "m").status, 200);
  runtime::HttpClient client("127.0.0.1", controller_->port(), 5000);
  StatusOr<runtime::HttpClientResponse> anonymous = client.Request("GET", "/metrics");
  ASSERT_TRUE(anonymous.ok()) << anonymous.status().ToString();
  EXPECT_EQ(anonymous->status, 401) << anonymous->body;
  EXPECT_EQ(controller_->Call("POST", "/metrics").status, 405);

  ASSERT_EQ(RunCli({"rm", "hello", "--server", controller_->url()}).exit_code, 0);
  runtime::HttpClientResponse r = controller_->Call("GET", "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_THAT(r.body, ::testing::Not(HasSubstr("function=\"hello\"")))
      << "a removed function is still reported";
}

}  // namespace
}  // namespace wisp::testing
