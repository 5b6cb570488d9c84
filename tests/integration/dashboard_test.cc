// The dashboard at /ui in a real browser: Debian's chromium, headless, loads
// the page with the token, runs its JavaScript against the real controller,
// and the DOM it prints must show the controller's state; a screenshot is
// saved next to the test binary (dashboard.png). Skipped, with the reason,
// where no chromium is installed (the README's test command installs it).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <regex>
#include <string>
#include <thread>

#include "tests/integration/controller_fixture.h"

namespace wisp::testing {
namespace {

using ::testing::HasSubstr;

std::string FindChromium() {
  for (const char* path : {"/usr/bin/chromium", "/usr/bin/chromium-browser",
                           "/usr/bin/google-chrome"}) {
    if (::access(path, X_OK) == 0) return path;
  }
  return "";
}

// Runs command, returns its stdout; *status gets the wait status.
std::string RunShell(const std::string& command, int* status) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    *status = -1;
    return out;
  }
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  *status = ::pclose(pipe);
  return out;
}

// The text of the row <tr data-function="name">...</tr> in dom, tags removed
// and cells separated by '|'.
std::string RowOf(const std::string& dom, const std::string& attribute, const std::string& name) {
  const std::string open = "<tr data-" + attribute + "=\"" + name + "\">";
  const size_t start = dom.find(open);
  if (start == std::string::npos) return "";
  const size_t end = dom.find("</tr>", start);
  std::string row = dom.substr(start + open.size(), end - start - open.size());
  row = std::regex_replace(row, std::regex("</td>"), "|");
  row = std::regex_replace(row, std::regex("</span>"), " ");
  return std::regex_replace(row, std::regex("<[^>]*>"), "");
}

class DashboardTest : public ControllerTest {};

TEST_F(DashboardTest, ShowsTheControllersStateInARealBrowser) {
  const std::string chromium = FindChromium();
  if (chromium.empty()) {
    GTEST_SKIP() << "no chromium at /usr/bin/chromium: the dashboard's browser test needs it "
                    "(bash scripts/test.sh installs it)";
  }
  DeployOk(ExamplePath("hello"), "hello");
  DeployOk(ExamplePath("hello"), "hello", {"--env", "GREETING=x"});  // version 0.0.2
  DeployOk(TestFunctionPath("segv"), "segv");
  for (int i = 0; i < 3; ++i) ASSERT_EQ(controller_->Call("POST", "/fn/hello", "m").status, 200);
  ASSERT_EQ(controller_->Call("POST", "/fn/segv", "x").status, 502);
  // A durable function whose one event fails its only attempt: a dead letter.
  DeployOk(TestFunctionPath("flaky"), "flaky",
           {"--subscribe", "jobs.new", "--durable", "--max-attempts", "1", "--env",
            "FAIL_FIRST=9"});
  ASSERT_EQ(controller_->Call("POST", "/v1/events/jobs.new", "job-7").status, 202);
  for (int i = 0; i < 100; ++i) {
    api::Function fn;
    if (controller_->Describe("flaky", &fn) && fn.status().dead_letters() == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }

  runtime::HttpClient anonymous("127.0.0.1", controller_->port(), 5000);
  StatusOr<runtime::HttpClientResponse> page = anonymous.Request("GET", "/ui");
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(page->status, 200);
  EXPECT_THAT(page->body, HasSubstr("<title>wisp</title>"));

  const std::string url = controller_->url() + "/ui#token=" + controller_->token();
  const std::string flags =
      " --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run"
      " --user-data-dir=" + dir_.path() + "/chromium --virtual-time-budget=8000"
      " --window-size=1280,900 ";
  int status = 0;
  const std::string dom = RunShell(chromium + flags + "--dump-dom '" + url + "' 2>/dev/null", &status);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "chromium failed (wait status " << status << ")";
  const std::string hello = RowOf(dom, "function", "hello");
  ASSERT_FALSE(hello.empty()) << "no row for hello in the page:\n" << dom;
  // Name | versions | loaded workers | invocations | errors | cold starts | queue | subjects
  EXPECT_THAT(hello, HasSubstr("hello|0.0.1 0.0.2 |1|3|0|1|0|")) << hello;
  EXPECT_NE(dom.find("<span class=\"current\">0.0.2</span>"), std::string::npos)
      << "0.0.2 should be marked current:\n" << dom;
  const std::string segv = RowOf(dom, "function", "segv");
  EXPECT_THAT(segv, HasSubstr("segv|0.0.1 |0|1|1|")) << segv;
  EXPECT_THAT(dom, HasSubstr("worker_crashed")) << "the crash should be among the recent errors";
  EXPECT_THAT(RowOf(dom, "service", "hello"), HasSubstr("hello|0.0.2|"))
      << "the loaded hello is a NATS service";
  EXPECT_THAT(dom, HasSubstr("id=\"fig-functions\">3<")) << "three functions";
  // Function | at | subject | attempts | error | data
  const std::string letter = RowOf(dom, "dead-letter", "flaky");
  EXPECT_THAT(letter, HasSubstr("flaky|")) << "no dead-letter row:\n" << dom;
  EXPECT_THAT(letter, HasSubstr("|jobs.new|1|function_error: ")) << letter;
  EXPECT_THAT(letter, HasSubstr("|job-7|")) << letter;
  EXPECT_THAT(dom, HasSubstr("<form id=\"login\" hidden")) << "the token form should be hidden";
  EXPECT_TRUE(std::regex_search(dom, std::regex("id=\"fig-p50\">[0-9]+\\.[0-9]{2}<")))
      << "no latency figure from the records";

  const std::string shot = std::string(WISP_BIN_DIR) + "/../tests/dashboard.png";
  RunShell(chromium + flags + "--screenshot=" + shot + " '" + url + "' 2>/dev/null", &status);
  struct stat st {};
  ASSERT_EQ(::stat(shot.c_str(), &st), 0) << "no screenshot at " << shot;
  EXPECT_GT(st.st_size, 10000) << "the screenshot is suspiciously small";

  // Without the token the page asks for it and shows nothing.
  const std::string locked =
      RunShell(chromium + flags + "--dump-dom '" + controller_->url() + "/ui' 2>/dev/null", &status);
  EXPECT_THAT(locked, HasSubstr("needs the API token"));
  EXPECT_EQ(RowOf(locked, "function", "hello"), "") << "data shown without the token";
}

}  // namespace
}  // namespace wisp::testing
