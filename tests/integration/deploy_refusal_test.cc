// Bad files and bad input are refused at deploy with a clear message, and
// nothing is stored.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/integration/controller_fixture.h"

namespace wisp::testing {
namespace {

using ::testing::HasSubstr;

class DeployRefusalTest : public ControllerTest {
 protected:
  std::string WriteFile(const std::string& name, const std::string& content) {
    const std::string path = dir_.path() + "/" + name;
    std::ofstream(path) << content;
    return path;
  }
  void ExpectNothingDeployed() {
    runtime::HttpClientResponse list = controller_->Call("GET", "/v1/functions");
    EXPECT_EQ(list.status, 200);
    EXPECT_THAT(list.body, ::testing::Not(HasSubstr("\"name\""))) << list.body;
  }
};

TEST_F(DeployRefusalTest, TextFileIsNotElf) {
  CliResult r = controller_->Deploy(WriteFile("notes.so", "just some text\n"), "notes");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("not an ELF file"));
  ExpectNothingDeployed();
}

TEST_F(DeployRefusalTest, SharedObjectWithoutHandleIsRefused) {
  CliResult r = controller_->Deploy(TestFunctionPath("no_handle"), "nohandle");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("does not export wisp_handle"));
  ExpectNothingDeployed();
}

TEST_F(DeployRefusalTest, ExecutableIsNotASharedObject) {
  CliResult r = controller_->Deploy(BinPath("wisp-worker"), "worker");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, ::testing::AnyOf(HasSubstr("not a shared object"),
                                      HasSubstr("does not export")));
  ExpectNothingDeployed();
}

TEST_F(DeployRefusalTest, CliRefusesBadInputBeforeSending) {
  CliResult missing = controller_->Deploy(dir_.path() + "/absent.so", "absent");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("cannot read"));

  CliResult bad_name = controller_->Deploy(ExamplePath("hello"), "Bad/Name");
  EXPECT_EQ(bad_name.exit_code, 2);
  EXPECT_THAT(bad_name.err, HasSubstr("invalid function name"));

  CliResult bad_timeout = controller_->Deploy(ExamplePath("hello"), "hello", {"--timeout", "soon"});
  EXPECT_EQ(bad_timeout.exit_code, 2);
  EXPECT_THAT(bad_timeout.err, HasSubstr("invalid duration 'soon'"));
  ExpectNothingDeployed();
}

TEST_F(DeployRefusalTest, ApiRefusesBadParametersAndNames) {
  runtime::HttpClientResponse unknown =
      controller_->Call("PUT", "/v1/functions/hello?colour=red", "x");
  EXPECT_EQ(unknown.status, 400);
  EXPECT_THAT(unknown.body, HasSubstr("unknown deploy parameter 'colour'"));

  runtime::HttpClientResponse bad_name = controller_->Call("PUT", "/v1/functions/..", "x");
  EXPECT_EQ(bad_name.status, 400);
  EXPECT_THAT(bad_name.body, HasSubstr("invalid_name"));

  runtime::HttpClientResponse empty = controller_->Call("PUT", "/v1/functions/hello", "");
  EXPECT_EQ(empty.status, 400);
  EXPECT_THAT(empty.body, HasSubstr("invalid_function"));

  runtime::HttpClientResponse workers =
      controller_->Call("PUT", "/v1/functions/hello?max_workers=0", "x");
  EXPECT_EQ(workers.status, 400);
  EXPECT_THAT(workers.body, HasSubstr("max_workers"));
  ExpectNothingDeployed();
}

TEST_F(DeployRefusalTest, SameBytesUnderTwoNamesAreStoredOnce) {
  DeployOk(ExamplePath("hello"), "one");
  DeployOk(ExamplePath("hello"), "two");
  api::Function one, two;
  ASSERT_TRUE(controller_->Describe("one", &one));
  ASSERT_TRUE(controller_->Describe("two", &two));
  EXPECT_EQ(one.sha256(), two.sha256());
  int artifacts = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path() + "/data/artifacts")) {
    (void)entry;
    ++artifacts;
  }
  EXPECT_EQ(artifacts, 1);
}

// An upload over --max-upload is refused with 413 before it is read, and the
// version already deployed keeps serving.
class UploadLimitTest : public DeployRefusalTest {
 protected:
  std::vector<std::string> ControllerArgs() const override { return {"--max-upload", "8192"}; }
};

TEST_F(UploadLimitTest, AnOversizedUploadIsRefusedAndNothingChanges) {
  const std::string small = WriteFile("tiny.so", std::string(100, 'x'));
  CliResult refused_small = controller_->Deploy(small, "tiny");
  EXPECT_THAT(refused_small.err, HasSubstr("not an ELF file")) << "under the limit, checked as usual";
  CliResult r = controller_->Deploy(ExamplePath("hello"), "hello");  // about 15 KB
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_THAT(r.err, HasSubstr("payload_too_large"));
  runtime::HttpClientResponse api =
      controller_->Call("PUT", "/v1/functions/hello", std::string(9000, 'x'));
  EXPECT_EQ(api.status, 413) << api.body;
  EXPECT_THAT(api.body, HasSubstr("\"code\":\"payload_too_large\""));
  ExpectNothingDeployed();
  EXPECT_EQ(controller_->Call("GET", "/healthz").status, 200);
}

}  // namespace
}  // namespace wisp::testing
