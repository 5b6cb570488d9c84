// Invocations pipelined to one worker around one that crashes it: the ones
// before it are answered with their results (and ran once), the crashing one
// gets the 502, the ones after it run on a fresh worker.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "tests/integration/controller_fixture.h"
#include "tests/triggers/http_test_util.h"

namespace wisp::testing {
namespace {

using ::testing::HasSubstr;

class PipelinedCrashTest : public ControllerTest {};

std::string Post(const std::string& query, const std::string& body, bool close) {
  return "POST /fn/journal?" + query + " HTTP/1.1\r\nHost: t\r\nContent-Length: " +
         std::to_string(body.size()) + (close ? "\r\nConnection: close" : "") + "\r\n\r\n" + body;
}

TEST_F(PipelinedCrashTest, CrashIsChargedToTheInvocationThatCrashed) {
  DeployOk(TestFunctionPath("journal"), "journal", {"--max-workers", "1"});
  const std::string journal = dir_.path() + "/journal.txt";
  ASSERT_EQ(controller_->Call("POST", "/fn/journal?" + journal, "warm").status, 200);

  triggers::testing::RawClient client(controller_->port());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.Send(Post(journal, "a", false) + Post(journal, "b", false) +
                          Post(journal, "crash", false) + Post(journal, "c", true)));
  const std::string a = client.ReadResponse();
  const std::string b = client.ReadResponse();
  const std::string crash = client.ReadResponse();
  const std::string c = client.ReadResponse();
  EXPECT_THAT(a, HasSubstr("200 OK"));
  EXPECT_EQ(triggers::testing::BodyOf(a), "a");
  EXPECT_THAT(b, HasSubstr("200 OK"));
  EXPECT_EQ(triggers::testing::BodyOf(b), "b");
  EXPECT_THAT(crash, HasSubstr("502"));
  EXPECT_THAT(crash, HasSubstr("killed by SIGSEGV"));
  EXPECT_THAT(c, HasSubstr("200 OK"));
  EXPECT_EQ(triggers::testing::BodyOf(c), "c");

  std::ifstream in(journal);
  std::stringstream ran;
  ran << in.rdbuf();
  EXPECT_EQ(ran.str(), "warm\na\nb\ncrash\nc\n") << "each invocation should run exactly once";
}

}  // namespace
}  // namespace wisp::testing
