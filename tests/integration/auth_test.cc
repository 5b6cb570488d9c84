// The control API's bearer token: created at the first start, required on
// /v1/, found by the CLI; /fn/ and /healthz stay public.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "tests/integration/controller_fixture.h"

namespace wisp::testing {
namespace {

class AuthTest : public ControllerTest {
 protected:
  runtime::HttpClientResponse Raw(const std::string& method, const std::string& target,
                                  triggers::HeaderList headers = {}) {
    runtime::HttpClient client("127.0.0.1", controller_->port(), 10000);
    StatusOr<runtime::HttpClientResponse> got = client.Request(method, target, headers, "");
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    return got.ok() ? std::move(got).value() : runtime::HttpClientResponse{};
  }
};

TEST_F(AuthTest, TheTokenFileIsPrivateAndSurvivesARestart) {
  const std::string path = dir_.path() + "/data/token";
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0) << path;
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "token file mode";
  const std::string first = controller_->token();
  EXPECT_EQ(first.size(), 64u) << first;
  controller_->Stop();
  std::string error;
  ASSERT_TRUE(controller_->Start(&error)) << error;
  EXPECT_EQ(controller_->token(), first) << "a restart must keep the token";
}

TEST_F(AuthTest, ControlApiNeedsTheTokenAndFunctionsDoNot) {
  DeployOk(ExamplePath("hello"), "hello");
  for (const char* target : {"/v1/functions", "/v1/functions/hello", "/v1/services",
                             "/v1/events/a.b", "/nowhere"}) {
    runtime::HttpClientResponse none = Raw(target[4] == 'e' ? "POST" : "GET", target);
    EXPECT_EQ(none.status, 401) << target << ": " << none.body;
    EXPECT_NE(none.body.find("\"unauthorized\""), std::string::npos) << none.body;
    runtime::HttpClientResponse wrong =
        Raw("GET", target, {{"Authorization", "Bearer " + std::string(64, '0')}});
    EXPECT_EQ(wrong.status, 401) << target << " with a wrong token: " << wrong.body;
    EXPECT_NE(wrong.body.find("wrong token"), std::string::npos) << wrong.body;
  }
  runtime::HttpClientResponse other_scheme =
      Raw("GET", "/v1/functions", {{"Authorization", "Basic " + controller_->token()}});
  EXPECT_EQ(other_scheme.status, 401) << other_scheme.body;
  runtime::HttpClientResponse right =
      Raw("GET", "/v1/functions", {{"Authorization", "bearer " + controller_->token()}});
  EXPECT_EQ(right.status, 200) << right.body;
  EXPECT_EQ(Raw("GET", "/healthz").status, 200);
  runtime::HttpClientResponse fn = controller_->Call("POST", "/fn/hello", "world");
  EXPECT_EQ(fn.status, 200) << fn.body;
  EXPECT_EQ(fn.body, "hello, world");
}

TEST_F(AuthTest, APrivateFunctionNeedsTheTokenAndNeverSeesIt) {
  DeployOk(TestFunctionPath("dump_headers"), "secret", {"--private"});
  runtime::HttpClientResponse none = controller_->Call("GET", "/fn/secret");
  EXPECT_EQ(none.status, 401) << none.body;
  runtime::HttpClientResponse with = Raw(
      "GET", "/fn/secret", {{"Authorization", "Bearer " + controller_->token()}, {"X-Other", "1"}});
  EXPECT_EQ(with.status, 200) << with.body;
  EXPECT_NE(with.body.find("x-other: 1"), std::string::npos) << with.body;
  EXPECT_EQ(with.body.find(controller_->token()), std::string::npos)
      << "the function saw wisp's token: " << with.body;
  // Someone else's Authorization header is the function's business.
  runtime::HttpClientResponse theirs =
      Raw("GET", "/fn/secret",
          {{"Authorization", "Bearer " + controller_->token()}, {"Authorization", "Basic abc"}});
  EXPECT_NE(theirs.body.find("authorization: Basic abc"), std::string::npos) << theirs.body;
  CliResult invoked = RunCli({"invoke", "secret", "--server", controller_->url()});
  EXPECT_EQ(invoked.exit_code, 0) << invoked.err;
  api::Function fn;
  ASSERT_TRUE(controller_->Describe("secret", &fn));
  EXPECT_TRUE(fn.config().private_());
}

TEST_F(AuthTest, TheCliFindsTheTokenOrSaysWhyNot) {
  CliResult wrong = RunCli({"ls", "--server", controller_->url(), "--token", "nope"});
  EXPECT_EQ(wrong.exit_code, 1) << wrong.out;
  EXPECT_NE(wrong.err.find("unauthorized"), std::string::npos) << wrong.err;

  // No flag, no WISP_TOKEN: the data dir's token file, as on the same machine.
  const std::string saved = controller_->token();
  ::unsetenv("WISP_TOKEN");
  ::setenv("WISP_HOME", (dir_.path() + "/data").c_str(), 1);
  CliResult found = RunCli({"ls", "--server", controller_->url()});
  ::unsetenv("WISP_HOME");
  ::setenv("WISP_TOKEN", saved.c_str(), 1);
  EXPECT_EQ(found.exit_code, 0) << found.err;
}

TEST(AuthStartTest, ATokenFileOthersCanReadStopsTheStart) {
  TempDir dir;
  {
    Controller first(dir.path());
    std::string error;
    ASSERT_TRUE(first.Start(&error)) << error;
    first.Stop();
  }
  ASSERT_EQ(::chmod((dir.path() + "/data/token").c_str(), 0644), 0);
  CliResult r = RunCli({"up", "--listen", "127.0.0.1:0", "--data", dir.path() + "/data"});
  EXPECT_EQ(r.exit_code, 4) << r.out;
  EXPECT_NE(r.err.find("chmod 600"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace wisp::testing
