// Test harness for integration tests: runs the real wisp binaries.
//
// A Controller is a `wisp up` child process on 127.0.0.1 with a free port
// (it listens on port 0 and the harness reads the port it prints) and its own
// temporary data dir; its stderr goes to <dir>/controller.log.
// RunCli runs the real `wisp` CLI and captures its output and exit code.
#ifndef WISP_TESTS_INTEGRATION_HARNESS_H_
#define WISP_TESTS_INTEGRATION_HARNESS_H_

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "api.pb.h"
#include "runtime/http_client.h"

namespace wisp::testing {

std::string BinPath(const std::string& name);        // build/bin/<name>
std::string ExamplePath(const std::string& name);    // build/examples/<name>.so
std::string TestFunctionPath(const std::string& name);  // build/functions/testing/<name>.so

// A temporary directory, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs build/bin/wisp with args; stdin from `input`.
CliResult RunCli(const std::vector<std::string>& args, const std::string& input = "");

class Controller {
 public:
  // data_dir: where the controller keeps its state (reuse one to restart).
  explicit Controller(std::string data_dir, std::vector<std::string> extra_args = {});
  ~Controller();  // stops the process if still running

  // Sets an environment variable for the controller (and so its workers);
  // takes effect at the next Start.
  void SetEnv(const std::string& name, const std::string& value) { env_.emplace_back(name, value); }

  // Starts `wisp up` and waits until it prints its address. Returns false
  // (with the log in *error) if it does not come up within 10 s.
  bool Start(std::string* error);
  // SIGTERM, then waits for exit (SIGKILL after 10 s). Returns the wait status.
  int Stop();
  // SIGKILL and reap.
  void Kill();

  int port() const { return port_; }
  // The control API token (<data dir>/token), read at Start. Start also
  // exports it as WISP_TOKEN, so RunCli reaches the last started controller.
  const std::string& token() const { return token_; }
  pid_t pid() const { return pid_; }
  std::string url() const;
  std::string Log() const;
  // What `wisp up` printed on stdout as it came up.
  const std::string& startup_output() const { return startup_output_; }

  // One request on a fresh connection, with the token for /v1/ and /metrics;
  // failures are reported as status 0 with the reason in the body.
  runtime::HttpClientResponse Call(const std::string& method, const std::string& target,
                                   const std::string& body = "",
                                   const triggers::HeaderList& headers = {});
  // Deploys through the real CLI; extra args like {"--timeout", "500ms"}.
  CliResult Deploy(const std::string& so_path, const std::string& name,
                   std::vector<std::string> extra_args = {});
  // GET /v1/functions/<name>, parsed; fails the calling test if unreadable.
  bool Describe(const std::string& name, api::Function* fn);

 private:
  std::string data_dir_;
  std::vector<std::string> extra_args_;
  std::vector<std::pair<std::string, std::string>> env_;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string token_;
  std::string startup_output_;
};

// Whether a process with this pid exists (and is not a zombie).
bool ProcessAlive(pid_t pid);
// The parent of pid, or -1 if there is no such process.
pid_t ParentOf(pid_t pid);
// The real uid of pid (from /proc/<pid>/status), or -1 if there is no such process.
int64_t UidOf(pid_t pid);
// The live (not zombie) processes whose real uid is uid.
std::vector<pid_t> ProcessesOfUser(uint32_t uid);

}  // namespace wisp::testing

#endif  // WISP_TESTS_INTEGRATION_HARNESS_H_
