// Progress and status on long work: a client command waiting for a
// controller that is still coming up (--wait), and `wisp apply` counting its
// functions.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "tests/integration/controller_fixture.h"

extern char** environ;

namespace wisp::testing {
namespace {

using ::testing::HasSubstr;

// A loopback port nothing listens on right now.
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

TEST(WaitTest, ACommandWaitsForAControllerThatIsStillComingUp) {
  TempDir dir;
  const int port = FreePort();
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  // The token is read from the data dir once the controller has made it.
  ::unsetenv("WISP_TOKEN");
  ::setenv("WISP_HOME", dir.path().c_str(), 1);
  CliResult listed;
  std::thread client([&] { listed = RunCli({"ls", "--wait", "20s", "--server", url}); });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));

  const std::string wisp = BinPath("wisp");
  const std::string listen = "127.0.0.1:" + std::to_string(port);
  const char* argv[] = {wisp.c_str(), "up", "--listen", listen.c_str(), "--data", dir.path().c_str(),
                        nullptr};
  posix_spawn_file_actions_t quiet;
  posix_spawn_file_actions_init(&quiet);
  posix_spawn_file_actions_addopen(&quiet, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&quiet, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t controller = 0;
  const int spawned = ::posix_spawn(&controller, wisp.c_str(), &quiet, nullptr,
                                    const_cast<char* const*>(argv), environ);
  posix_spawn_file_actions_destroy(&quiet);
  ASSERT_EQ(spawned, 0);
  client.join();
  ::kill(controller, SIGTERM);
  int status = 0;
  ::waitpid(controller, &status, 0);
  ::unsetenv("WISP_HOME");

  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_THAT(listed.err, HasSubstr("waiting for the controller at " + url));
  EXPECT_THAT(listed.err, HasSubstr("the controller is up"));
  EXPECT_THAT(listed.out, HasSubstr("NAME")) << "the listing itself";
}

TEST(WaitTest, AWaitThatRunsOutSaysSoAndExits3) {
  const std::string url = "http://127.0.0.1:" + std::to_string(FreePort());
  const auto start = std::chrono::steady_clock::now();
  CliResult r = RunCli({"ls", "--wait", "400ms", "--server", url});
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_THAT(r.err, HasSubstr("did not come up within 400 ms"));
  EXPECT_GE(waited, std::chrono::milliseconds(350)) << "it did not wait";
  CliResult bad = RunCli({"ls", "--wait", "soon", "--server", url});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
}

class ApplyProgressTest : public ControllerTest {};

TEST_F(ApplyProgressTest, ApplyCountsItsFunctions) {
  const std::string manifest = dir_.path() + "/wisp.yaml";
  std::ofstream(manifest) << "functions:\n"
                          << "  - {name: one, path: " << ExamplePath("hello") << "}\n"
                          << "  - {name: two, path: " << ExamplePath("echo") << "}\n";
  CliResult r = RunCli({"apply", "-f", manifest, "--server", controller_->url()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("[1/2] one\n"));
  EXPECT_THAT(r.out, HasSubstr("[2/2] two\n"));
  EXPECT_LT(r.out.find("[1/2] one"), r.out.find("[2/2] two"));
}

}  // namespace
}  // namespace wisp::testing
