// wisp up: runs the controller on the default libuv loop until SIGINT/SIGTERM.
#include <limits.h>
#include <signal.h>
#include <sys/resource.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "runtime/cli/commands.h"
#include "runtime/base/ascii.h"
#include "runtime/controller.h"
#include "runtime/duration.h"

namespace wisp::cli {
namespace {

std::string ResolveDataDir(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* home = std::getenv("WISP_HOME"); home != nullptr && *home != '\0') return home;
  const char* user_home = std::getenv("HOME");
  return std::string(user_home != nullptr ? user_home : ".") + "/.wisp";
}

std::string ResolveWorker(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("WISP_WORKER"); env != nullptr && *env != '\0') return env;
  char self[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return "wisp-worker";
  std::string path(self, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/') + 1) + "wisp-worker";
}

struct Signals {
  uv_signal_t sigint;
  uv_signal_t sigterm;
  runtime::Controller* controller;
  bool stopping = false;
};

// "FIRST-LAST" (uids workers may run as, one per worker) or "off".
Status ParseWorkerUids(const std::string& text, runtime::WorkerIdentities::Options* options) {
  if (text == "off") {
    options->separate_users = false;
    return Status::OK();
  }
  const size_t dash = text.find('-');
  uint64_t first = 0;
  uint64_t last = 0;
  if (dash == std::string::npos || !ParseUint(std::string_view(text).substr(0, dash), &first) ||
      !ParseUint(std::string_view(text).substr(dash + 1), &last) || first == 0 || last < first ||
      last > 0xfffffffeull) {
    return Status::InvalidArgument("--worker-uids wants FIRST-LAST (uids from 1 to 4294967294) "
                                   "or off, got '" + text + "'");
  }
  options->first_uid = static_cast<uint32_t>(first);
  options->count = static_cast<uint32_t>(last - first + 1);
  return Status::OK();
}

void OnSignal(uv_signal_t* handle, int signum) {
  auto* signals = static_cast<Signals*>(handle->data);
  if (signals->stopping) return;
  signals->stopping = true;
  std::fprintf(stderr, "wisp: received signal %d, shutting down\n", signum);
  signals->controller->Shutdown([signals] {
    uv_close(reinterpret_cast<uv_handle_t*>(&signals->sigint), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&signals->sigterm), nullptr);
  });
}

}  // namespace

int RunUp(const UpArgs& args) {
  ::signal(SIGPIPE, SIG_IGN);
  // A worker holds three descriptors here and a client connection one: the
  // soft limit on open files (often 1024) is raised to the hard one, as
  // servers do. Workers get their own limit (sandbox.h).
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &files);
  }
  // sqlite's memory statistics take a global mutex on every allocation; the
  // controller does not read them. Must precede any other sqlite call.
  (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  runtime::ControllerOptions options;
  Status s = runtime::ParseListenAddress(args.listen, &options.listen_host, &options.listen_port);
  if (s.ok()) s = runtime::ParseDurationMs(args.idle, &options.default_idle_ms).WithContext("--idle");
  if (s.ok()) {
    s = runtime::ParseDurationMs(args.timeout, &options.default_timeout_ms).WithContext("--timeout");
  }
  if (s.ok()) {
    s = runtime::ParseDurationUs(args.worker_spin, &options.worker_spin_us, 1000 * 1000)
            .WithContext("--worker-spin");
  }
  uint64_t keep_ms = 0;  // 0: no age limit
  if (s.ok()) s = runtime::ParseDurationMs(args.keep_for, &keep_ms).WithContext("--keep-for");
  if (s.ok()) {
    s = runtime::ParseDurationMs(args.cluster_gc_after, &options.cluster_gc_after_ms)
            .WithContext("--cluster-gc-after");
  }
  if (s.ok() && options.cluster_gc_after_ms < 1000) {
    s = Status::InvalidArgument("--cluster-gc-after must be at least 1s");
  }
  if (s.ok()) s = ParseWorkerUids(args.worker_uids, &options.worker_identities);
  options.worker_identities.seccomp = !args.no_seccomp;
  if (!s.ok()) {
    std::fprintf(stderr, "wisp: %s\n", s.message().c_str());
    return kExitUsage;
  }
  options.data_dir = ResolveDataDir(args.data_dir);
  options.worker_path = ResolveWorker(args.worker);
  // The warm-up function is installed next to the worker binary.
  const std::string warmup =
      options.worker_path.substr(0, options.worker_path.rfind('/') + 1) + "wisp-warmup.so";
  if (::access(warmup.c_str(), R_OK) == 0) options.warmup_path = warmup;
  // So is the NATS module, loaded only with --nats.
  options.nats_module_path =
      options.worker_path.substr(0, options.worker_path.rfind('/') + 1) + "wisp-nats.so";
  options.default_max_workers = args.max_workers;
  options.warm_pool_size = args.warm_pool;
  options.pipeline_depth = args.pipeline_depth;
  options.max_queue = args.max_queue;
  options.max_request_bytes = args.max_body;
  options.max_upload_bytes = args.max_upload;
  options.nats_urls = args.nats;
  options.cluster = args.cluster;
  options.cluster_replicas = args.cluster_replicas;
  options.record_invocations = !args.no_records;
  options.retention.max_invocations = args.keep_invocations;
  options.retention.max_log_lines = args.keep_log_lines;
  options.retention.max_age_s = static_cast<int64_t>(keep_ms / 1000);
  if (::access(options.worker_path.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "wisp: worker binary %s is not executable (set --worker or WISP_WORKER)\n",
                 options.worker_path.c_str());
    return kExitStartFailed;
  }

  uv_loop_t* loop = uv_default_loop();
  auto controller = std::make_unique<runtime::Controller>(loop, options);
  s = controller->Start();
  if (!s.ok()) {
    std::fprintf(stderr, "wisp: cannot start: %s\n", s.message().c_str());
    controller->Shutdown([] {});
    uv_run(loop, UV_RUN_DEFAULT);
    return kExitStartFailed;
  }
  std::printf("wisp listening on http://%s:%d (data %s, events %s%s%s)\n",
              options.listen_host.c_str(), controller->port(), options.data_dir.c_str(),
              options.nats_urls.empty() ? "embedded" : options.nats_urls.c_str(),
              options.cluster.empty() ? "" : ", cluster ", options.cluster.c_str());
  std::printf("workers: %s\n", controller->WorkerIsolation().c_str());
  std::fflush(stdout);

  Signals signals;
  signals.controller = controller.get();
  uv_signal_init(loop, &signals.sigint);
  uv_signal_init(loop, &signals.sigterm);
  signals.sigint.data = &signals;
  signals.sigterm.data = &signals;
  uv_signal_start(&signals.sigint, OnSignal, SIGINT);
  uv_signal_start(&signals.sigterm, OnSignal, SIGTERM);
  uv_run(loop, UV_RUN_DEFAULT);
  controller.reset();
  uv_loop_close(loop);
  return kExitOk;
}

}  // namespace wisp::cli
