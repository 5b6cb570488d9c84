// wisp apply -f / wisp delete -f against the real controller: functions and
// their wiring deployed in one step, idempotently.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "tests/integration/controller_fixture.h"

namespace wisp::testing {
namespace {

class ManifestTest : public ControllerTest {
 protected:
  std::string Write(const std::string& text) {
    const std::string path = dir_.path() + "/wisp.yaml";
    std::ofstream(path) << text;
    return path;
  }
  CliResult Cli(const std::string& verb, const std::string& file) {
    return RunCli({verb, "-f", file, "--server", controller_->url()});
  }
};

TEST_F(ManifestTest, ApplyDeploysOnceAndAgainChangesNothing) {
  const std::string manifest = Write(
      "functions:\n"
      "  - name: greet\n"
      "    path: " + ExamplePath("hello") + "\n"
      "    subscribe: [greet.*]\n"
      "    timeout: 5s\n"
      "  - path: " + ExamplePath("echo") + "\n");
  CliResult first = Cli("apply", manifest);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(first.out.find("2 deployed, 0 unchanged"), std::string::npos) << first.out;
  api::Function greet;
  ASSERT_TRUE(controller_->Describe("greet", &greet));
  EXPECT_EQ(greet.version(), "0.0.1");
  EXPECT_EQ(greet.config().timeout_ms(), 5000u);
  ASSERT_EQ(greet.config().subjects_size(), 1);
  EXPECT_EQ(greet.config().subjects(0), "greet.*");
  runtime::HttpClientResponse r = controller_->Call("POST", "/v1/requests/greet.x", "yaml");
  EXPECT_EQ(r.body, "hello, yaml") << "the wiring from the manifest works";

  CliResult again = Cli("apply", manifest);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("0 deployed, 2 unchanged"), std::string::npos) << again.out;
  ASSERT_TRUE(controller_->Describe("greet", &greet));
  EXPECT_EQ(greet.version(), "0.0.1") << "applying the same file twice changes nothing";

  Write(
      "functions:\n"
      "  - name: greet\n"
      "    path: " + ExamplePath("hello") + "\n"
      "    subscribe: [greet.*]\n"
      "    timeout: 7s\n"
      "  - path: " + ExamplePath("echo") + "\n");
  CliResult changed = Cli("apply", manifest);
  ASSERT_EQ(changed.exit_code, 0) << changed.err;
  EXPECT_NE(changed.out.find("1 deployed, 1 unchanged"), std::string::npos) << changed.out;
  ASSERT_TRUE(controller_->Describe("greet", &greet));
  EXPECT_EQ(greet.version(), "0.0.2");
  EXPECT_EQ(greet.config().timeout_ms(), 7000u);

  CliResult deleted = Cli("delete", manifest);
  ASSERT_EQ(deleted.exit_code, 0) << deleted.err;
  EXPECT_NE(deleted.out.find("2 removed"), std::string::npos) << deleted.out;
  EXPECT_EQ(controller_->Call("GET", "/v1/functions/greet").status, 404);
  EXPECT_EQ(controller_->Call("GET", "/v1/functions/echo").status, 404);
}

TEST_F(ManifestTest, ABadManifestNamesFileLineAndFieldAndDeploysNothing) {
  const std::string manifest = Write(
      "functions:\n"
      "  - path: " + ExamplePath("hello") + "\n"
      "  - path: " + ExamplePath("echo") + "\n"
      "    idle: forever\n");
  CliResult r = Cli("apply", manifest);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.err.find(manifest + ":4: functions[1].idle: "), std::string::npos) << r.err;
  EXPECT_EQ(controller_->Call("GET", "/v1/functions/hello").status, 404)
      << "nothing is deployed from a manifest with an error";
  CliResult missing = Cli("apply", dir_.path() + "/nope.yaml");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("nope.yaml"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace wisp::testing
