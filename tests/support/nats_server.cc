#include "tests/support/nats_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace wisp::testing {
namespace {

constexpr auto kReadyTimeout = std::chrono::seconds(10);
constexpr int kStopGraceMs = 5000;
constexpr int kStartAttempts = 5;

bool IsExecutable(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

std::string Tail(const std::string& text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  return "..." + text.substr(text.size() - max_bytes);
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "stopped";
}

// Connects to 127.0.0.1:port and reads the server's INFO line. "" when
// nothing accepts or answers.
std::string ReadInfoLine(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string line;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    timeval timeout{2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    char c;
    while (line.size() < 64 * 1024 && read(fd, &c, 1) == 1 && c != '\n') line.push_back(c);
  }
  close(fd);
  return line;
}

}  // namespace

NatsServerProcess::NatsServerProcess(NatsServerOptions options)
    : options_(options), port_(options.port) {
  static std::atomic<int> counter{0};
  name_ = "wisp-test-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/wisp-nats-XXXXXX";
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (mkdtemp(buffer.data()) != nullptr) dir_ = buffer.data();
}

NatsServerProcess::~NatsServerProcess() {
  Stop();
  if (!dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

std::string NatsServerProcess::FindBinary() {
  const char* configured = std::getenv("WISP_NATS_SERVER");
  if (configured != nullptr && *configured != '\0') {
    return IsExecutable(configured) ? configured : "";
  }
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (!dir.empty() && IsExecutable(dir + "/nats-server")) return dir + "/nats-server";
  }
  for (const char* candidate : {"/usr/sbin/nats-server", "/usr/local/bin/nats-server"}) {
    if (IsExecutable(candidate)) return candidate;
  }
  return "";
}

int NatsServerProcess::PickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

std::string NatsServerProcess::Log() const {
  std::ifstream in(dir_ + "/server.log");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

::testing::AssertionResult NatsServerProcess::Start() {
  if (running()) return ::testing::AssertionSuccess();
  std::string binary = FindBinary();
  if (binary.empty()) {
    return ::testing::AssertionFailure()
           << "nats-server is not installed: looked in $WISP_NATS_SERVER, PATH and "
              "/usr/sbin (install the nats-server package)";
  }
  if (dir_.empty()) {
    return ::testing::AssertionFailure() << "could not create a temporary directory for "
                                            "nats-server: "
                                         << std::strerror(errno);
  }
  bool pick_port = options_.port == 0 && port_ == 0;
  ::testing::AssertionResult result = ::testing::AssertionFailure();
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    if (pick_port) port_ = PickFreePort();
    bool port_taken = false;
    result = StartOnce(binary, &port_taken);
    if (result || !port_taken) return result;
    // Someone else holds the port: a fresh one, or (fixed port) a moment.
    std::this_thread::sleep_for(std::chrono::milliseconds(pick_port ? 0 : 200));
  }
  return result;
}

::testing::AssertionResult NatsServerProcess::StartOnce(const std::string& binary,
                                                        bool* port_taken) {
  std::string log_path = dir_ + "/server.log";
  std::string port = std::to_string(port_);
  std::string store = dir_ + "/jetstream";
  std::vector<std::string> args = {binary, "-a", "127.0.0.1", "-p", port, "-n", name_};
  if (options_.jetstream) args.insert(args.end(), {"-js", "-sd", store});
  if (!options_.cluster_name.empty()) {
    std::string routes;
    for (int route : options_.route_ports) {
      if (!routes.empty()) routes += ',';
      routes += "nats://127.0.0.1:" + std::to_string(route);
    }
    args.insert(args.end(), {"--cluster_name", options_.cluster_name, "--cluster",
                             "nats://127.0.0.1:" + std::to_string(options_.cluster_port),
                             "--routes", routes});
  }
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (log_fd < 0 || null_fd < 0) {
    if (log_fd >= 0) close(log_fd);
    if (null_fd >= 0) close(null_fd);
    return ::testing::AssertionFailure() << "open " << log_path << ": " << std::strerror(errno);
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    // Keep the test's sockets (nats.c's are not close-on-exec) out of the server.
    if (syscall(SYS_close_range, 3, ~0U, 0) != 0) {
      for (int fd = 3; fd < 4096; ++fd) close(fd);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  int fork_errno = errno;
  close(log_fd);
  close(null_fd);
  if (pid < 0) return ::testing::AssertionFailure() << "fork: " << std::strerror(fork_errno);
  pid_ = pid;

  std::string why;
  if (WaitUntilReady(&why)) return ::testing::AssertionSuccess();
  Signal(SIGKILL, 0);
  std::string log = Log();
  *port_taken = log.find("address already in use") != std::string::npos;
  return ::testing::AssertionFailure() << "nats-server (" << binary << ") on 127.0.0.1:" << port_
                                       << " did not start: " << why << "\n--- its log ---\n"
                                       << Tail(log, 2000);
}

bool NatsServerProcess::WaitUntilReady(std::string* why) {
  const std::string identity = "\"server_name\":\"" + name_ + "\"";
  auto deadline = std::chrono::steady_clock::now() + kReadyTimeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      *why = DescribeWaitStatus(status);
      return false;
    }
    std::string info = ReadInfoLine(port_);
    if (info.find(identity) != std::string::npos) return true;
    if (info.rfind("INFO ", 0) == 0) {
      *why = "another server answers on the port";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (why->empty()) *why = "no answer on the port within 10 s";
  return false;
}

void NatsServerProcess::Signal(int signal, int grace_ms) {
  if (pid_ <= 0) return;
  kill(pid_, signal);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
  int status = 0;
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  pid_ = -1;
}

void NatsServerProcess::Stop() { Signal(SIGTERM, kStopGraceMs); }

void NatsServerProcess::Kill() { Signal(SIGKILL, 0); }

::testing::AssertionResult NatsServerProcess::Restart() {
  Stop();
  return Start();
}

}  // namespace wisp::testing
