// Deploy, call and reply through the real binaries.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sched.h>

#include <set>
#include <string>

#include "tests/integration/controller_fixture.h"
#include "tests/triggers/http_test_util.h"

namespace wisp::testing {
namespace {

using ::testing::HasSubstr;

class DeployInvokeTest : public ControllerTest {};

TEST_F(DeployInvokeTest, HelloRepliesWithGreeting) {
  DeployOk(ExamplePath("hello"), "hello");
  runtime::HttpClientResponse r = controller_->Call("POST", "/fn/hello", "world");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "hello, world");
}

// A worker's wake-ups must not preempt the controller's loop
// (runtime/worker_loop.cc, RunAsBatch).
TEST_F(DeployInvokeTest, WorkersRunUnderSchedBatch) {
  DeployOk(ExamplePath("hello"), "hello");
  ASSERT_EQ(controller_->Call("POST", "/fn/hello", "world").status, 200);
  api::Function fn;
  ASSERT_TRUE(controller_->Describe("hello", &fn));
  ASSERT_GT(fn.status().worker_pids_size(), 0);
  for (pid_t pid : fn.status().worker_pids()) {
    EXPECT_EQ(::sched_getscheduler(pid), SCHED_BATCH)
        << "worker " << pid << ": expected policy SCHED_BATCH (" << SCHED_BATCH << ")";
  }
}

TEST_F(DeployInvokeTest, DeployNamesFunctionAfterFileStem) {
  CliResult r = RunCli({"deploy", ExamplePath("echo"), "--server", controller_->url()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("deployed echo"));
  runtime::HttpClientResponse reply = controller_->Call("POST", "/fn/echo", "same bytes\n");
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "same bytes\n");
}

TEST_F(DeployInvokeTest, EchoKeepsBinaryBodyAndContentType) {
  DeployOk(ExamplePath("echo"), "echo");
  std::string body("\0\x01\xff binary", 10);
  runtime::HttpClient client("127.0.0.1", controller_->port());
  auto r = client.Request("POST", "/fn/echo", {{"Content-Type", "application/octet-stream"}}, body);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, body);
  const std::string* type = r->Header("content-type");
  ASSERT_NE(type, nullptr);
  EXPECT_EQ(*type, "application/octet-stream");
}

TEST_F(DeployInvokeTest, EveryReplyCarriesItsOwnInvocationId) {
  DeployOk(ExamplePath("hello"), "hello");
  DeployOk(TestFunctionPath("status"), "status");
  runtime::HttpClient client("127.0.0.1", controller_->port());
  std::set<std::string> ids;
  for (const char* target : {"/fn/hello", "/fn/hello", "/fn/status"}) {
    auto r = client.Request("POST", target, {}, "fail");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    const std::string* id = r->Header("x-wisp-invocation-id");
    ASSERT_NE(id, nullptr) << target << " replied without X-Wisp-Invocation-Id (status "
                           << r->status << ")";
    EXPECT_GT(id->size(), 9u) << *id;
    ids.insert(*id);
  }
  EXPECT_EQ(ids.size(), 3u) << "ids must differ between invocations, errors included";
}

TEST_F(DeployInvokeTest, HeadersExampleSeesMethodPathQueryAndHeaders) {
  DeployOk(ExamplePath("headers"), "headers");
  runtime::HttpClient client("127.0.0.1", controller_->port());
  auto ok = client.Request("GET", "/fn/headers/a/b?x=1", {{"User-Agent", "wisp-test"}});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->body, "user-agent: wisp-test\n");
  ASSERT_NE(ok->Header("x-wisp-method"), nullptr);
  EXPECT_EQ(*ok->Header("x-wisp-method"), "GET");
  ASSERT_NE(ok->Header("x-wisp-path"), nullptr);
  EXPECT_EQ(*ok->Header("x-wisp-path"), "/a/b");

  auto missing = client.Request("DELETE", "/fn/headers");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 400);
  EXPECT_EQ(missing->body, "missing header: user-agent\n");
  EXPECT_EQ(*missing->Header("x-wisp-path"), "/");
}

TEST_F(DeployInvokeTest, UnknownFunctionIsJson404) {
  runtime::HttpClientResponse r = controller_->Call("POST", "/fn/nope", "x");
  EXPECT_EQ(r.status, 404);
  EXPECT_THAT(r.body, HasSubstr("\"code\":\"function_not_found\""));
  EXPECT_THAT(r.body, HasSubstr("nope"));
}

TEST_F(DeployInvokeTest, HealthzAnswers) {
  runtime::HttpClientResponse r = controller_->Call("GET", "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr("\"status\":\"ok\""));
}

TEST_F(DeployInvokeTest, CliInvokeListAndRemove) {
  DeployOk(ExamplePath("hello"), "hello");
  CliResult invoked = RunCli({"invoke", "hello", "cli", "--server", controller_->url()});
  EXPECT_EQ(invoked.exit_code, 0) << invoked.err;
  EXPECT_EQ(invoked.out, "hello, cli");

  CliResult from_stdin = RunCli({"invoke", "hello", "-", "--server", controller_->url()}, "pipe");
  EXPECT_EQ(from_stdin.out, "hello, pipe");

  CliResult listed = RunCli({"ls", "--server", controller_->url()});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_THAT(listed.out, HasSubstr("hello"));

  CliResult removed = RunCli({"rm", "hello", "--server", controller_->url()});
  EXPECT_EQ(removed.exit_code, 0) << removed.err;
  EXPECT_EQ(controller_->Call("POST", "/fn/hello", "x").status, 404);

  CliResult again = RunCli({"rm", "hello", "--server", controller_->url()});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("no function named 'hello'"));
}

TEST_F(DeployInvokeTest, CliInvokeOfFailingFunctionExitsNonzero) {
  DeployOk(TestFunctionPath("status"), "status");
  CliResult r = RunCli({"invoke", "status", "fail", "--server", controller_->url()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("wisp_handle returned 1"));
}

TEST_F(DeployInvokeTest, FunctionSetsStatusAndHeader) {
  DeployOk(TestFunctionPath("status"), "status");
  runtime::HttpClientResponse r = controller_->Call("POST", "/fn/status", "418");
  EXPECT_EQ(r.status, 418);
  ASSERT_NE(r.Header("x-test"), nullptr);
  EXPECT_EQ(*r.Header("x-test"), "yes");
}

TEST_F(DeployInvokeTest, RedeployServesNewCode) {
  DeployOk(ExamplePath("hello"), "fn");
  EXPECT_EQ(controller_->Call("POST", "/fn/fn", "a").body, "hello, a");
  DeployOk(ExamplePath("echo"), "fn");
  EXPECT_EQ(controller_->Call("POST", "/fn/fn", "a").body, "a");
}

TEST_F(DeployInvokeTest, CliReportsUnreachableController) {
  CliResult r = RunCli({"ls", "--server", "http://127.0.0.1:1"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("cannot reach the controller"));
}

class BodyLimitTest : public ControllerTest {
 protected:
  std::vector<std::string> ControllerArgs() const override { return {"--max-body", "1024"}; }
};

TEST_F(BodyLimitTest, DeployUploadsAreNotHeldToTheCallLimit) {
  // hello.so is far larger than the 1024-byte call limit.
  DeployOk(ExamplePath("hello"), "hello");
  EXPECT_EQ(controller_->Call("POST", "/fn/hello", "x").body, "hello, x");
}

TEST_F(BodyLimitTest, ChunkedBodyOverLimitIs413) {
  DeployOk(ExamplePath("echo"), "echo");
  triggers::testing::RawClient client(controller_->port());
  ASSERT_TRUE(client.connected());
  std::string chunk(800, 'z');
  char size[16];
  std::snprintf(size, sizeof(size), "%zx", chunk.size());
  ASSERT_TRUE(client.Send(std::string("POST /fn/echo HTTP/1.1\r\nHost: t\r\n"
                                      "Transfer-Encoding: chunked\r\n\r\n") +
                          size + "\r\n" + chunk + "\r\n" + size + "\r\n" + chunk + "\r\n0\r\n\r\n"));
  const std::string reply = client.ReadResponse();
  EXPECT_THAT(reply, HasSubstr("413"));
  EXPECT_THAT(reply, HasSubstr("payload_too_large"));
}

TEST_F(BodyLimitTest, BodyOverLimitIs413AndSmallerStillWorks) {
  DeployOk(ExamplePath("echo"), "echo");
  runtime::HttpClientResponse big = controller_->Call("POST", "/fn/echo", std::string(2048, 'x'));
  EXPECT_EQ(big.status, 413);
  EXPECT_THAT(big.body, HasSubstr("payload_too_large"));
  runtime::HttpClientResponse small = controller_->Call("POST", "/fn/echo", std::string(1000, 'y'));
  EXPECT_EQ(small.status, 200);
  EXPECT_EQ(small.body, std::string(1000, 'y'));
}

}  // namespace
}  // namespace wisp::testing
