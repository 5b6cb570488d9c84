// wisp new, then wisp deploy on the folder: it builds, deploys and answers.
#include <gtest/gtest.h>

#include <string>

#include "tests/integration/controller_fixture.h"

namespace wisp::testing {
namespace {

class NewTest : public ControllerTest {};

TEST_F(NewTest, ANewFunctionInCAndInCppBuildsDeploysAndAnswers) {
  for (const std::string lang : {"c", "cpp"}) {
    const std::string name = "made-in-" + lang;
    CliResult created = RunCli({"new", name, "--lang", lang, "--dir", dir_.path()});
    ASSERT_EQ(created.exit_code, 0) << created.err;
    CliResult deployed =
        RunCli({"deploy", dir_.path() + "/" + name, "--server", controller_->url()});
    ASSERT_EQ(deployed.exit_code, 0) << deployed.err << deployed.out;
    runtime::HttpClientResponse r = controller_->Call("POST", "/fn/" + name, "world");
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body, "hello from " + name + ", world");
  }
  CliResult again = RunCli({"new", "made-in-c", "--dir", dir_.path()});
  EXPECT_EQ(again.exit_code, 2) << "an existing folder must not be overwritten";
  EXPECT_NE(again.err.find("already exists"), std::string::npos) << again.err;
  CliResult bad = RunCli({"new", "Bad Name", "--dir", dir_.path()});
  EXPECT_EQ(bad.exit_code, 2);
  CliResult lang = RunCli({"new", "x", "--lang", "cobol", "--dir", dir_.path()});
  EXPECT_EQ(lang.exit_code, 2);
  EXPECT_NE(lang.err.find("--lang"), std::string::npos) << lang.err;
}

}  // namespace
}  // namespace wisp::testing
