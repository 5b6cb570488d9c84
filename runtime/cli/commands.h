// The subcommands of the wisp CLI. Each returns the process exit code and
// prints its own errors as one readable line on stderr:
//   0 success, 1 the controller refused or the function failed,
//   2 bad usage or input (file, name, duration), 3 controller unreachable,
//   4 the controller could not start.
// Threading: the main thread.
#ifndef WISP_RUNTIME_CLI_COMMANDS_H_
#define WISP_RUNTIME_CLI_COMMANDS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace wisp::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnreachable = 3;
inline constexpr int kExitStartFailed = 4;

struct UpArgs {
  std::string listen = "127.0.0.1:8080";
  std::string data_dir;   // empty: $WISP_HOME, else ~/.wisp
  std::string idle = "60s";
  std::string timeout = "30s";
  uint32_t max_workers = 2;
  uint32_t warm_pool = 2;
  uint32_t pipeline_depth = 32;
  uint32_t max_queue = 1000;
  std::string worker_spin = "150us";
  std::string worker;     // empty: $WISP_WORKER, else next to this binary
  uint64_t max_body = 6 * 1024 * 1024;
  uint64_t max_upload = 64 * 1024 * 1024;  // largest .so a deploy may upload
  std::string nats;       // NATS URLs; empty: the embedded broker
  std::string cluster;    // with nats: the cluster sharing deployments
  int cluster_replicas = 1;
  std::string cluster_gc_after = "10m";  // unnamed artifacts leave the bucket after this
  bool no_records = false;            // no invocation records or log lines
  uint64_t keep_invocations = 100000; // records kept, newest first
  uint64_t keep_log_lines = 100000;   // log lines kept, newest first
  std::string keep_for = "168h";      // older records and lines are deleted; 0: kept
  std::string worker_uids = "1879048192-1879052287";  // FIRST-LAST, or off
  bool no_seccomp = false;
};

struct DeployArgs {
  std::string server;
  std::string path;
  std::string name;
  std::string timeout;
  std::string idle;
  uint32_t max_workers = 0;  // 0: the controller's default
  std::vector<std::string> subscribe;  // event subjects
  std::string version;                 // semver; empty: the next patch
  bool is_private = false;             // /fn/ calls need the token
  std::vector<std::string> env;        // "KEY=VALUE", the config map
  bool durable = false;                // at-least-once delivery of its subjects' events
  uint32_t max_attempts = 0;           // 0: the default (durable only)
  std::string backoff, max_backoff;    // durations (durable only)
  std::string dead_letter;             // subject (durable only)
  std::string every;                   // timer: a period, e.g. 10s
  std::string cron;                    // timer: a cron expression (UTC)
  // Limits (runtime/function_limits.h) by parameter name, as given: memory,
  // cpu, open_files, processes, max_request, max_reply, max_events.
  std::map<std::string, std::string> limits;
};

struct PublishArgs {
  std::string server;
  std::string subject;
  std::string data;                  // literal, @file, or - for stdin
  std::vector<std::string> headers;  // "name=value"
  bool request = false;              // wait for the reply and print it
  std::string timeout = "5s";        // for a request
};

struct InvokeArgs {
  std::string server;
  std::string name;
  std::string data;          // literal, @file, or - for stdin
  std::string method = "POST";
  std::string path;          // appended below /fn/<name>
  bool include_headers = false;
};

int RunUp(const UpArgs& args);
int RunDeploy(const DeployArgs& args);
int RunList(const std::string& server, bool json);
int RunInvoke(const InvokeArgs& args);
int RunRemove(const std::string& server, const std::string& name);
// wisp describe NAME: the function's config, status and versions; json
// prints the controller's reply as is.
int RunDescribe(const std::string& server, const std::string& name, bool json);
// wisp rollback NAME [--to VERSION]: makes VERSION (default: the one
// deployed before the current one) serve new invocations.
int RunRollback(const std::string& server, const std::string& name, const std::string& to);
// wisp invocations [--function F] [--trace ID] [--limit N]: the newest
// records as a table (--trace: one trace's, e.g. a pipeline run).
// wisp dlq ls NAME: the dead letters of a durable function, oldest first.
int RunDeadLetters(const std::string& server, const std::string& name, uint32_t limit, bool json);
// wisp dlq replay NAME [--id ID]: puts them (or one) back in its queue.
int RunReplay(const std::string& server, const std::string& name, uint64_t id);

int RunInvocations(const std::string& server, const std::string& function,
                   const std::string& trace, uint32_t limit, bool json);
// wisp logs NAME [-f]: the newest limit lines; with follow, then every new
// line as it is recorded (polled) until interrupted.
int RunLogs(const std::string& server, const std::string& name, uint32_t limit, bool follow,
            bool json);
// wisp publish / wisp request.
int RunPublish(const PublishArgs& args);
// wisp new NAME: a function folder under parent (default: here) with
// NAME.c or NAME.cc (lang "c" or "cpp"), CMakeLists.txt, test.sh and the ABI.
int RunNew(const std::string& name, const std::string& lang, const std::string& parent);
// Builds the CMake project in dir (into dir/build) and sets *so_path to
// dir/build/<name>.so; prints why and returns nonzero when it cannot.
int BuildFunctionDir(const std::string& dir, const std::string& name, std::string* so_path);

// wisp apply -f FILE: deploys what the manifest describes, leaving alone
// what already matches. wisp delete -f FILE: removes its functions.
int RunApply(const std::string& server, const std::string& file);
int RunDeleteManifest(const std::string& server, const std::string& file);
// wisp services: what answers $SRV.INFO within wait.
int RunServices(const std::string& server, bool json, const std::string& wait);

// --server, else $WISP_URL, else http://127.0.0.1:8080.
std::string ResolveServer(const std::string& flag);

}  // namespace wisp::cli

#endif  // WISP_RUNTIME_CLI_COMMANDS_H_
