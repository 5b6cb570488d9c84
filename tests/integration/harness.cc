#include "tests/integration/harness.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <google/protobuf/util/json_util.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace wisp::testing {
namespace {

std::string ReadAll(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

std::vector<char*> Argv(std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return argv;
}

}  // namespace

std::string BinPath(const std::string& name) { return std::string(WISP_BIN_DIR) + "/" + name; }
std::string ExamplePath(const std::string& name) {
  return std::string(WISP_EXAMPLES_DIR) + "/" + name + ".so";
}
std::string TestFunctionPath(const std::string& name) {
  return std::string(WISP_TEST_FUNCTIONS_DIR) + "/" + name + ".so";
}

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "wisp-test-XXXXXX").string();
  char* made = ::mkdtemp(tmpl.data());
  path_ = made != nullptr ? made : "";
  // Functions run as users of their own, one per worker (a root
  // controller's workers): they may write their journals here, and append to
  // those of earlier workers (not sticky). The data dir below it is the
  // controller's alone.
  if (made != nullptr) ::chmod(made, 0777);
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
}

CliResult RunCli(const std::vector<std::string>& args, const std::string& input) {
  std::vector<std::string> full = {BinPath("wisp")};
  full.insert(full.end(), args.begin(), args.end());
  int in_pipe[2], out_pipe[2], err_pipe[2];
  CliResult result;
  if (::pipe(in_pipe) != 0 || ::pipe(out_pipe) != 0 || ::pipe(err_pipe) != 0) return result;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in_pipe[0], 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) {
      ::close(fd);
    }
    std::vector<char*> argv = Argv(full);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  std::thread writer([&] {
    size_t done = 0;
    while (done < input.size()) {
      const ssize_t n = ::write(in_pipe[1], input.data() + done, input.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    ::close(in_pipe[1]);
  });
  std::thread err_reader([&] { result.err = ReadAll(err_pipe[0]); });
  result.out = ReadAll(out_pipe[0]);
  err_reader.join();
  writer.join();
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

Controller::Controller(std::string data_dir, std::vector<std::string> extra_args)
    : data_dir_(std::move(data_dir)), extra_args_(std::move(extra_args)) {}

Controller::~Controller() {
  if (pid_ > 0) Stop();
}

bool Controller::Start(std::string* error) {
  std::vector<std::string> args = {BinPath("wisp"), "up", "--listen", "127.0.0.1:0",
                                   "--data", data_dir_ + "/data"};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  int out_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return false;
  const std::string log_path = data_dir_ + "/controller.log";
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(out_pipe[1], 1);
    const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log_fd >= 0) ::dup2(log_fd, 2);
    for (const auto& [name, value] : env_) ::setenv(name.c_str(), value.c_str(), 1);
    std::vector<char*> argv = Argv(args);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  std::string line;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  // Two lines: where it listens, then who its workers run as.
  auto started = [&line] {
    const size_t workers = line.find("\nworkers: ");
    return workers != std::string::npos && line.find('\n', workers + 1) != std::string::npos;
  };
  while (!started() && std::chrono::steady_clock::now() < deadline) {
    pollfd pfd{out_pipe[0], POLLIN, 0};
    if (::poll(&pfd, 1, 100) <= 0) continue;
    char buf[256];
    const ssize_t n = ::read(out_pipe[0], buf, sizeof(buf));
    if (n <= 0) break;
    line.append(buf, static_cast<size_t>(n));
  }
  ::close(out_pipe[0]);
  const std::string marker = "http://127.0.0.1:";
  const size_t at = line.find(marker);
  if (at == std::string::npos) {
    *error = "controller did not come up; stdout: '" + line + "'; log:\n" + Log();
    Kill();
    return false;
  }
  port_ = std::atoi(line.c_str() + at + marker.size());
  startup_output_ = line;
  std::ifstream token_file(data_dir_ + "/data/token");
  std::getline(token_file, token_);
  if (token_.empty()) {
    *error = "controller came up without a token file; log:\n" + Log();
    return false;
  }
  ::setenv("WISP_TOKEN", token_.c_str(), 1);
  return port_ > 0;
}

int Controller::Stop() {
  if (pid_ <= 0) return 0;
  ::kill(pid_, SIGTERM);
  int status = 0;
  for (int i = 0; i < 1000; ++i) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return status;
}

void Controller::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::string Controller::url() const { return "http://127.0.0.1:" + std::to_string(port_); }

std::string Controller::Log() const {
  std::ifstream in(data_dir_ + "/controller.log");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

runtime::HttpClientResponse Controller::Call(const std::string& method, const std::string& target,
                                             const std::string& body,
                                             const triggers::HeaderList& headers) {
  runtime::HttpClient client("127.0.0.1", port_, 30000);
  triggers::HeaderList all = headers;
  if (target.rfind("/v1/", 0) == 0 || target.rfind("/metrics", 0) == 0) {
    all.emplace_back("Authorization", "Bearer " + token_);
  }
  StatusOr<runtime::HttpClientResponse> got = client.Request(method, target, all, body);
  if (!got.ok()) {
    runtime::HttpClientResponse failed;
    failed.body = got.status().ToString();
    return failed;
  }
  return std::move(got).value();
}

CliResult Controller::Deploy(const std::string& so_path, const std::string& name,
                             std::vector<std::string> extra_args) {
  std::vector<std::string> args = {"deploy", so_path, "--name", name, "--server", url(),
                                   "--token", token_};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  return RunCli(args);
}

bool Controller::Describe(const std::string& name, api::Function* fn) {
  runtime::HttpClientResponse response = Call("GET", "/v1/functions/" + name);
  if (response.status != 200) return false;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  return google::protobuf::util::JsonStringToMessage(response.body, fn, options).ok();
}

namespace {

// The fields of /proc/<pid>/stat after the command name ("S 1234 ..."), or
// empty if there is no such process.
// The whole of a /proc file, read with read(2): a process that exits while
// it is read gives ESRCH, which std::ifstream would throw as an exception.
std::string ReadProcFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::string content;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) content.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return content;
}

std::string StatFieldsOf(pid_t pid) {
  const std::string content = ReadProcFile("/proc/" + std::to_string(pid) + "/stat");
  const size_t close_paren = content.rfind(')');
  if (close_paren == std::string::npos || close_paren + 2 >= content.size()) return "";
  return content.substr(close_paren + 2);
}

}  // namespace

bool ProcessAlive(pid_t pid) {
  const std::string fields = StatFieldsOf(pid);
  return !fields.empty() && fields[0] != 'Z';
}

pid_t ParentOf(pid_t pid) {
  std::istringstream fields(StatFieldsOf(pid));
  std::string state;
  pid_t ppid = -1;
  fields >> state >> ppid;
  return ppid;
}

int64_t UidOf(pid_t pid) {
  const std::string status = ReadProcFile("/proc/" + std::to_string(pid) + "/status");
  const size_t at = status.find("\nUid:");
  if (at == std::string::npos) return -1;
  return std::strtoll(status.c_str() + at + 5, nullptr, 10);
}

std::vector<pid_t> ProcessesOfUser(uint32_t uid) {
  std::vector<pid_t> found;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(name));
    if (UidOf(pid) == uid && ProcessAlive(pid)) found.push_back(pid);
  }
  return found;
}

}  // namespace wisp::testing
