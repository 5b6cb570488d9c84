// Any language with a C ABI can be a wisp function: examples/rust-hello,
// built by cargo against the same ABI, deployed and called like the others.
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "tests/integration/controller_fixture.h"

namespace wisp::testing {
namespace {

class RustExampleTest : public ControllerTest {};

TEST_F(RustExampleTest, DeploysAndAnswers) {
  const std::string so = WISP_EXAMPLES_DIR "/rust-hello.so";
  if (::access(so.c_str(), R_OK) != 0) {
    GTEST_SKIP() << so << " was not built: cargo was not found when the project was configured "
                 << "(install Rust, e.g. rustup, and re-run cmake)";
  }
  DeployOk(so, "rust-hello");
  runtime::HttpClient client("127.0.0.1", controller_->port());
  auto r = client.Request("POST", "/fn/rust-hello", {}, "world");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->body, "hello from rust, world");
  const std::string* language = r->Header("x-wisp-language");
  ASSERT_NE(language, nullptr) << "the header the Rust function set is missing";
  EXPECT_EQ(*language, "rust");
}

}  // namespace
}  // namespace wisp::testing
