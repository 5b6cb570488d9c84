// Invocation records and function logs: GET /v1/invocations and
// GET /v1/functions/<name>/logs against the real controller, its sqlite
// file and real workers.
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "api.pb.h"
#include "tests/integration/controller_fixture.h"
#include "tests/triggers/http_test_util.h"

namespace wisp::testing {
namespace {

template <typename Message>
Message ParseOrFail(const runtime::HttpClientResponse& r) {
  Message m;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto s = google::protobuf::util::JsonStringToMessage(r.body, &m, options);
  EXPECT_TRUE(s.ok()) << "unreadable reply (status " << r.status << "): " << r.body;
  return m;
}

// Records are written in batches: polls until at least n are readable.
api::InvocationList WaitForInvocations(Controller& c, const std::string& query, int n) {
  api::InvocationList list;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    runtime::HttpClientResponse r = c.Call("GET", "/v1/invocations" + query);
    EXPECT_EQ(r.status, 200) << r.body;
    list = ParseOrFail<api::InvocationList>(r);
    if (list.invocations_size() >= n) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return list;
}

api::LogLines WaitForLogs(Controller& c, const std::string& name, const std::string& query,
                          int n) {
  api::LogLines lines;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    runtime::HttpClientResponse r = c.Call("GET", "/v1/functions/" + name + "/logs" + query);
    EXPECT_EQ(r.status, 200) << r.body;
    lines = ParseOrFail<api::LogLines>(r);
    if (lines.lines_size() >= n) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return lines;
}

std::string InvocationIdOf(const runtime::HttpClientResponse& r) {
  for (const auto& [name, value] : r.headers) {
    if (name == "x-wisp-invocation-id") return value;
  }
  return "";
}

// A request without the token; status 0 if it could not be made.
runtime::HttpClientResponse WithoutToken(int port, const std::string& method,
                                         const std::string& target) {
  runtime::HttpClient client("127.0.0.1", port, 5000);
  StatusOr<runtime::HttpClientResponse> r = client.Request(method, target, {}, "x");
  if (!r.ok()) return runtime::HttpClientResponse{};
  return std::move(r).value();
}

class RecordsTest : public ControllerTest {
 protected:
  CliResult Cli(std::vector<std::string> args) {
    args.insert(args.end(), {"--server", controller_->url()});
    return RunCli(args);
  }
};

TEST_F(RecordsTest, EveryInvocationIsRecordedWithItsIdVersionTriggerAndOutcome) {
  DeployOk(ExamplePath("hello"), "hello");
  DeployOk(TestFunctionPath("segv"), "segv");
  std::vector<std::string> ids;
  for (const char* body : {"a", "b", "c"}) {
    runtime::HttpClientResponse r = controller_->Call("POST", "/fn/hello", body);
    ASSERT_EQ(r.status, 200) << r.body;
    ids.push_back(InvocationIdOf(r));
  }
  runtime::HttpClientResponse invoked = controller_->Call("POST", "/v1/functions/hello/invoke", "d");
  ASSERT_EQ(invoked.status, 200) << invoked.body;
  EXPECT_EQ(invoked.body, "hello, d");
  ids.push_back(InvocationIdOf(invoked));
  runtime::HttpClientResponse crashed = controller_->Call("POST", "/fn/segv", "x");
  ASSERT_EQ(crashed.status, 502) << crashed.body;

  api::InvocationList hello = WaitForInvocations(*controller_, "?function=hello", 4);
  ASSERT_EQ(hello.invocations_size(), 4) << "expected the 4 calls of hello";
  for (int i = 0; i < 4; ++i) {
    const api::Invocation& rec = hello.invocations(i);  // newest first
    SCOPED_TRACE("record " + std::to_string(i) + ": " + rec.ShortDebugString());
    EXPECT_EQ(rec.id(), ids[3 - i]);
    EXPECT_EQ(rec.function(), "hello");
    EXPECT_EQ(rec.version(), "0.0.1");
    EXPECT_EQ(rec.trigger(), "http");
    EXPECT_EQ(rec.status(), 200);
    EXPECT_EQ(rec.error_code(), "");
    EXPECT_EQ(rec.cold(), i == 3) << "only the first call loads the function";
    EXPECT_GT(rec.duration_ms(), 0.0);
    EXPECT_FALSE(rec.started_at().empty());
  }
  api::InvocationList segv = WaitForInvocations(*controller_, "?function=segv", 1);
  ASSERT_EQ(segv.invocations_size(), 1);
  EXPECT_EQ(segv.invocations(0).status(), 502);
  EXPECT_EQ(segv.invocations(0).error_code(), "worker_crashed");
  EXPECT_NE(segv.invocations(0).error().find("SIGSEGV"), std::string::npos)
      << segv.invocations(0).error();

  api::InvocationList all = WaitForInvocations(*controller_, "?limit=2", 2);
  ASSERT_EQ(all.invocations_size(), 2) << "limit=2 gave " << all.invocations_size();
  EXPECT_EQ(all.invocations(0).function(), "segv") << "the newest record comes first";
}

TEST_F(RecordsTest, AnHttpTraceparentReachesTheFunctionAndTheRecord) {
  DeployOk(TestFunctionPath("dump_headers"), "headers");
  const std::string trace = "0af7651916cd43dd8448eb211c80319c";
  runtime::HttpClientResponse r =
      controller_->Call("POST", "/fn/headers", "", {{"traceparent", "00-" + trace + "-b7ad6b7169203331-01"}});
  ASSERT_EQ(r.status, 200) << r.body;
  const size_t at = r.body.find("traceparent: 00-" + trace + "-");
  ASSERT_NE(at, std::string::npos) << "the function did not see the trace: " << r.body;
  EXPECT_EQ(r.body.find("b7ad6b7169203331"), std::string::npos)
      << "the function should see its own span, not the caller's: " << r.body;
  EXPECT_EQ(r.body.find("traceparent", at + 1), std::string::npos) << "two traceparents: " << r.body;
  api::InvocationList list = WaitForInvocations(*controller_, "?trace=" + trace, 1);
  ASSERT_EQ(list.invocations_size(), 1);
  EXPECT_EQ(list.invocations(0).id(), InvocationIdOf(r));
}

TEST_F(RecordsTest, WorkerOutputIsKeptPerFunctionWithTheInvocationId) {
  DeployOk(TestFunctionPath("chatty"), "chatty");
  runtime::HttpClientResponse first = controller_->Call("POST", "/fn/chatty", "alpha");
  ASSERT_EQ(first.status, 200) << first.body;
  api::LogLines lines = WaitForLogs(*controller_, "chatty", "", 2);
  ASSERT_EQ(lines.lines_size(), 2) << lines.ShortDebugString();
  std::vector<std::string> texts;
  for (const api::LogLine& l : lines.lines()) {
    texts.push_back(l.line());
    EXPECT_EQ(l.invocation(), InvocationIdOf(first)) << "line '" << l.line() << "'";
  }
  std::sort(texts.begin(), texts.end());
  EXPECT_EQ(texts, (std::vector<std::string>{"err: alpha", "out: alpha"}));

  // Following: after the last seq seen, only newer lines.
  const int64_t last = lines.lines(1).seq();
  ASSERT_EQ(controller_->Call("POST", "/fn/chatty", "beta").status, 200);
  api::LogLines newer = WaitForLogs(*controller_, "chatty", "?after=" + std::to_string(last), 2);
  ASSERT_EQ(newer.lines_size(), 2) << newer.ShortDebugString();
  for (const api::LogLine& l : newer.lines()) {
    EXPECT_GT(l.seq(), last);
    EXPECT_NE(l.line().find("beta"), std::string::npos) << l.line();
  }
  api::LogLines tail = WaitForLogs(*controller_, "chatty", "?limit=1", 1);
  ASSERT_EQ(tail.lines_size(), 1);
  EXPECT_EQ(tail.lines(0).seq(), newer.lines(1).seq()) << "limit alone gives the newest lines";
}

TEST_F(RecordsTest, FollowStreamsNewLinesUntilTheControllerStops) {
  DeployOk(TestFunctionPath("chatty"), "chatty");
  ASSERT_EQ(controller_->Call("POST", "/fn/chatty", "before").status, 200);
  ASSERT_EQ(WaitForLogs(*controller_, "chatty", "", 2).lines_size(), 2);

  triggers::testing::RawClient stream(controller_->port());
  ASSERT_TRUE(stream.connected());
  ASSERT_TRUE(stream.Send("GET /v1/functions/chatty/logs?follow=true&limit=1 HTTP/1.1\r\n"
                          "Host: t\r\nAuthorization: Bearer " + controller_->token() + "\r\n\r\n"));
  const std::string head = stream.ReadHead();
  ASSERT_NE(head.find("200 OK"), std::string::npos) << head;
  ASSERT_NE(head.find("Transfer-Encoding: chunked"), std::string::npos) << head;
  std::string received;
  std::string chunk;
  ASSERT_TRUE(stream.ReadChunk(&chunk)) << "no tail line came";
  received += chunk;
  EXPECT_NE(chunk.find("err: before"), std::string::npos) << "limit=1: the newest line first, got " << chunk;

  runtime::HttpClientResponse r = controller_->Call("POST", "/fn/chatty", "streamed");
  ASSERT_EQ(r.status, 200) << r.body;
  while (received.find("err: streamed") == std::string::npos) {
    ASSERT_TRUE(stream.ReadChunk(&chunk)) << "the stream ended before the new lines; got " << received;
    received += chunk;
  }
  EXPECT_NE(received.find("out: streamed"), std::string::npos) << received;
  EXPECT_NE(received.find(InvocationIdOf(r)), std::string::npos) << received;
  EXPECT_EQ(received.find("out: before"), std::string::npos) << "a line older than the tail came: " << received;

  controller_->Stop();
  bool ended = false;
  while (stream.ReadChunk(&chunk)) {
    if (chunk.empty()) {
      ended = true;
      break;
    }
  }
  EXPECT_TRUE(ended) << "the stream did not end with its last chunk at shutdown";
}

TEST_F(RecordsTest, RefusesBadQueriesUnknownFunctionsAndMissingTokens) {
  DeployOk(ExamplePath("hello"), "hello");
  struct Case {
    std::string method, target;
    int status;
    std::string code;
  } cases[] = {
      {"GET", "/v1/invocations?limit=0", 400, "invalid_argument"},
      {"GET", "/v1/invocations?limit=1001", 400, "invalid_argument"},
      {"GET", "/v1/invocations?limit=x", 400, "invalid_argument"},
      {"GET", "/v1/invocations?colour=red", 400, "invalid_argument"},
      {"GET", "/v1/invocations?function=Bad%20Name", 400, "invalid_name"},
      {"POST", "/v1/invocations", 405, "method_not_allowed"},
      {"GET", "/v1/functions/nothing/logs", 404, "function_not_found"},
      {"GET", "/v1/functions/hello/logs?after=-3", 400, "invalid_argument"},
      {"GET", "/v1/functions/hello/logs?follow=maybe", 400, "invalid_argument"},
      {"GET", "/v1/functions/nothing/logs?follow=true", 404, "function_not_found"},
      {"POST", "/v1/functions/hello/logs", 405, "method_not_allowed"},
      {"GET", "/v1/functions/hello/invoke", 405, "method_not_allowed"},
      {"POST", "/v1/functions/nothing/invoke", 404, "function_not_found"},
      {"POST", "/v1/functions/hello/frobnicate", 404, "not_found"},
  };
  for (const Case& c : cases) {
    runtime::HttpClientResponse r = controller_->Call(c.method, c.target);
    EXPECT_EQ(r.status, c.status) << c.method << " " << c.target << ": " << r.body;
    EXPECT_NE(r.body.find("\"" + c.code + "\""), std::string::npos)
        << c.method << " " << c.target << ": expected code " << c.code << ", got " << r.body;
  }
  for (const char* target : {"/v1/invocations", "/v1/functions/hello/logs"}) {
    runtime::HttpClientResponse r = WithoutToken(controller_->port(), "GET", target);
    EXPECT_EQ(r.status, 401) << target << " without a token: " << r.body;
  }
  runtime::HttpClientResponse r =
      WithoutToken(controller_->port(), "POST", "/v1/functions/hello/invoke");
  EXPECT_EQ(r.status, 401) << "invoke without a token: " << r.body;
}

TEST(RecordsRestartTest, RecordsAndLogsSurviveARestart) {
  TempDir dir;
  std::string id;
  {
    Controller first(dir.path());
    std::string error;
    ASSERT_TRUE(first.Start(&error)) << error;
    ASSERT_EQ(first.Deploy(TestFunctionPath("chatty"), "chatty").exit_code, 0);
    runtime::HttpClientResponse r = first.Call("POST", "/fn/chatty", "kept");
    ASSERT_EQ(r.status, 200) << r.body;
    id = InvocationIdOf(r);
    ASSERT_EQ(WaitForLogs(first, "chatty", "", 2).lines_size(), 2);
    ASSERT_EQ(WaitForInvocations(first, "", 1).invocations_size(), 1);
    first.Stop();
  }
  Controller second(dir.path());
  std::string error;
  ASSERT_TRUE(second.Start(&error)) << error;
  api::InvocationList list = WaitForInvocations(second, "?function=chatty", 1);
  ASSERT_EQ(list.invocations_size(), 1) << "the record did not survive the restart";
  EXPECT_EQ(list.invocations(0).id(), id);
  api::LogLines lines = WaitForLogs(second, "chatty", "", 2);
  ASSERT_EQ(lines.lines_size(), 2) << "the log did not survive the restart";
  EXPECT_EQ(lines.lines(0).invocation(), id);
}

TEST(RecordsRestartTest, RetentionTrimsTheOldestRecordsAndLinesAndNothingElse) {
  TempDir dir;
  std::vector<std::string> ids;
  {
    Controller first(dir.path());
    std::string error;
    ASSERT_TRUE(first.Start(&error)) << error;
    ASSERT_EQ(first.Deploy(TestFunctionPath("chatty"), "chatty").exit_code, 0);
    for (int i = 1; i <= 5; ++i) {
      runtime::HttpClientResponse r = first.Call("POST", "/fn/chatty", "m" + std::to_string(i));
      ASSERT_EQ(r.status, 200) << r.body;
      ids.push_back(InvocationIdOf(r));
    }
    ASSERT_EQ(WaitForLogs(first, "chatty", "", 10).lines_size(), 10);
    ASSERT_EQ(WaitForInvocations(first, "", 5).invocations_size(), 5);
    first.Stop();
  }
  Controller second(dir.path(), {"--keep-invocations", "3", "--keep-log-lines", "4"});
  std::string error;
  ASSERT_TRUE(second.Start(&error)) << error;
  api::InvocationList list = WaitForInvocations(second, "", 3);
  std::vector<std::string> kept;
  for (const api::Invocation& inv : list.invocations()) kept.push_back(inv.id());
  EXPECT_EQ(kept, (std::vector<std::string>{ids[4], ids[3], ids[2]}))
      << "expected the 3 newest records, newest first";
  api::LogLines lines = WaitForLogs(second, "chatty", "", 4);
  std::vector<std::string> texts;
  for (const api::LogLine& l : lines.lines()) texts.push_back(l.line());
  std::sort(texts.begin(), texts.end());
  EXPECT_EQ(texts, (std::vector<std::string>{"err: m4", "err: m5", "out: m4", "out: m5"}))
      << "expected the 4 newest lines";
  EXPECT_EQ(second.Call("POST", "/fn/chatty", "after").status, 200)
      << "the function itself must survive retention";
}

TEST_F(RecordsTest, TheCliPrintsInvocationsAndLogs) {
  DeployOk(TestFunctionPath("chatty"), "chatty");
  runtime::HttpClientResponse r = controller_->Call("POST", "/fn/chatty", "from-cli");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(WaitForLogs(*controller_, "chatty", "", 2).lines_size(), 2);
  ASSERT_EQ(WaitForInvocations(*controller_, "", 1).invocations_size(), 1);

  CliResult inv = Cli({"invocations", "--function", "chatty", "-n", "5"});
  ASSERT_EQ(inv.exit_code, 0) << inv.err;
  EXPECT_NE(inv.out.find(InvocationIdOf(r)), std::string::npos) << inv.out;
  EXPECT_NE(inv.out.find("STATUS"), std::string::npos) << "no table header: " << inv.out;
  CliResult logs = Cli({"logs", "chatty"});
  ASSERT_EQ(logs.exit_code, 0) << logs.err;
  EXPECT_NE(logs.out.find("out: from-cli"), std::string::npos) << logs.out;
  EXPECT_NE(logs.out.find("err: from-cli"), std::string::npos) << logs.out;
  CliResult json = Cli({"invocations", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_NE(json.out.find("\"invocations\""), std::string::npos) << json.out;

  CliResult missing = Cli({"logs", "nothing"});
  EXPECT_EQ(missing.exit_code, 1) << missing.out;
  EXPECT_NE(missing.err.find("no function named"), std::string::npos) << missing.err;
  CliResult bad = Cli({"logs", "Bad Name"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  CliResult limit = Cli({"invocations", "-n", "0"});
  EXPECT_EQ(limit.exit_code, 2) << limit.err;
}

}  // namespace
}  // namespace wisp::testing
