// wisp: the command line. CLI11 parses here; the subcommands live in
//   up_command.cc        up
//   commands.cc          deploy, ls, invoke, rm, describe, rollback
//   record_commands.cc   invocations, logs
//   event_commands.cc    publish, request, services
//   manifest_commands.cc apply -f, delete -f
//   new_command.cc       new
// Exit codes: see commands.h.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <tuple>

#include "runtime/cli/api_call.h"
#include "runtime/cli/commands.h"
#include "runtime/duration.h"
#include "wisp/function.h"

int main(int argc, char** argv) {
  using namespace wisp::cli;
  CLI::App app{"wisp: a serverless runtime for native functions"};
  app.require_subcommand(1);
  app.fallthrough();  // --wait (and the other global options) after the subcommand too
  std::string server;
  app.add_option("--server", server, "controller URL (default $WISP_URL or http://127.0.0.1:8080)");
  std::string token;
  app.add_option("--token", token,
                 "control API token (default $WISP_TOKEN, else the data dir's token file)");
  std::string wait;
  app.add_option("--wait", wait,
                 "wait this long for the controller to come up before giving up, e.g. 10s");

  UpArgs up;
  CLI::App* up_cmd = app.add_subcommand("up", "run the controller in the foreground");
  up_cmd->add_option("--listen", up.listen, "HOST:PORT to serve HTTP on")->capture_default_str();
  up_cmd->add_option("--data", up.data_dir, "data directory (default $WISP_HOME or ~/.wisp)");
  up_cmd->add_option("--idle", up.idle, "default idle time before a worker is unloaded")
      ->capture_default_str();
  up_cmd->add_option("--timeout", up.timeout, "default invocation timeout")->capture_default_str();
  up_cmd->add_option("--max-workers", up.max_workers, "default workers per function")
      ->capture_default_str()->check(CLI::Range(1, 64));
  up_cmd->add_option("--warm-pool", up.warm_pool, "generic workers kept ready")
      ->capture_default_str()->check(CLI::Range(0, 64));
  up_cmd->add_option("--pipeline-depth", up.pipeline_depth,
                     "invocations in flight per worker")
      ->capture_default_str()->check(CLI::Range(1, 1024));
  up_cmd->add_option("--max-queue", up.max_queue,
                     "invocations waiting per function before 503")
      ->capture_default_str()->check(CLI::Range(1, 1000000));
  up_cmd->add_option("--worker-spin", up.worker_spin,
                     "how long a busy worker polls for the next call before sleeping (0: never)")
      ->capture_default_str();
  up_cmd->add_option("--max-upload", up.max_upload, "largest .so a deploy may upload, bytes")
      ->capture_default_str()->check(CLI::Range(uint64_t{1024}, uint64_t{1} << 32));
  up_cmd->add_option("--worker", up.worker, "path of wisp-worker (default next to wisp)");
  up_cmd->add_option("--max-body", up.max_body, "largest request body for /fn/, bytes")
      ->capture_default_str();
  up_cmd->add_option("--nats", up.nats,
                     "NATS server URLs, comma-separated (default: the embedded broker)");
  up_cmd->add_option("--cluster", up.cluster,
                     "with --nats: share deployments with every controller of this cluster "
                     "(JetStream KV buckets wisp-NAME-functions and wisp-NAME-artifacts)");
  up_cmd->add_option("--cluster-replicas", up.cluster_replicas,
                     "copies JetStream keeps of wisp's streams (the cluster's buckets, durable events)")
      ->capture_default_str()->check(CLI::Range(1, 5));
  up_cmd->add_option("--cluster-gc-after", up.cluster_gc_after,
                     "an artifact no function of the cluster has named this long is removed "
                     "from the cluster's bucket")
      ->capture_default_str();
  up_cmd->add_flag("--no-records", up.no_records, "keep no invocation records or function logs");
  up_cmd->add_option("--keep-invocations", up.keep_invocations, "invocation records kept")
      ->capture_default_str()->check(CLI::Range(uint64_t{1}, uint64_t{100000000}));
  up_cmd->add_option("--keep-log-lines", up.keep_log_lines, "function log lines kept")
      ->capture_default_str()->check(CLI::Range(uint64_t{1}, uint64_t{100000000}));
  up_cmd->add_option("--keep-for", up.keep_for,
                     "records and log lines older than this are deleted (0: no age limit)")
      ->capture_default_str();

  up_cmd->add_option("--worker-uids", up.worker_uids,
                     "as root: the uids workers run as, one per worker (FIRST-LAST), or off")
      ->capture_default_str();
  up_cmd->add_flag("--no-seccomp", up.no_seccomp,
                   "workers do not install the seccomp filter (ptrace, mount, kexec, ... denied)");

  DeployArgs deploy;
  CLI::App* deploy_cmd = app.add_subcommand("deploy", "deploy a function .so");
  deploy_cmd->add_option("path", deploy.path,
                         "the function's .so file, or a folder to build first (wisp new)")
      ->required();
  deploy_cmd->add_option("--name", deploy.name, "function name (default: the file's stem)");
  deploy_cmd->add_option("--timeout", deploy.timeout, "invocation timeout, e.g. 30s");
  deploy_cmd->add_option("--idle", deploy.idle, "idle time before unloading, e.g. 60s");
  deploy_cmd->add_option("--max-workers", deploy.max_workers, "most workers at once")
      ->check(CLI::Range(1, 64));
  deploy_cmd->add_option("--subscribe", deploy.subscribe,
                         "run on events published on this subject (repeatable; * and > wildcards)");
  deploy_cmd->add_option("--version", deploy.version, "semver (default: the next patch)");
  deploy_cmd->add_flag("--private", deploy.is_private,
                       "calls on /fn/<name> need the control API token too");
  deploy_cmd->add_option("--env", deploy.env,
                         "KEY=VALUE in the function's environment (repeatable; the config map)");
  deploy_cmd->add_flag("--durable", deploy.durable,
                       "store its subjects' events and deliver each at least once, with retries");
  deploy_cmd->add_option("--max-attempts", deploy.max_attempts,
                         "attempts before an event is dead-lettered (durable; default 3)")
      ->check(CLI::Range(1, 100));
  deploy_cmd->add_option("--backoff", deploy.backoff,
                         "delay after the first failed attempt, doubling each time (durable; "
                         "default 1s)");
  deploy_cmd->add_option("--max-backoff", deploy.max_backoff,
                         "the longest delay between attempts (durable; default 5m)");
  deploy_cmd->add_option("--every", deploy.every,
                         "run on a timer, e.g. 10s (ticks line up with the clock)");
  deploy_cmd->add_option("--cron", deploy.cron,
                         "run on a cron schedule, e.g. '*/5 * * * *' (UTC)");
  for (const auto& [flag, key, help] :
       {std::tuple{"--memory", "memory", "address space of each worker, e.g. 256MiB (default 1GiB)"},
        std::tuple{"--cpu", "cpu", "CPU time per invocation, e.g. 2s (default: none)"},
        std::tuple{"--open-files", "open_files", "descriptors per worker (default 1024)"},
        std::tuple{"--processes", "processes",
                   "processes and threads per worker (default 256; needs a root controller)"},
        std::tuple{"--max-request", "max_request", "largest request body, e.g. 1MiB (default 6MiB)"},
        std::tuple{"--max-reply", "max_reply",
                   "largest reply, events included, e.g. 1MiB (default 6MiB)"},
        std::tuple{"--max-events", "max_events", "events per invocation (default 1000)"}}) {
    deploy_cmd->add_option(flag, deploy.limits[key], help);
  }
  deploy_cmd->add_option("--dead-letter", deploy.dead_letter,
                         "subject for events that failed every attempt (durable; default "
                         "wisp.dlq.<name>)");
  deploy_cmd->add_option("--server", server, "controller URL");
  deploy_cmd->add_option("--token", token, "control API token");

  bool json = false;
  CLI::App* ls_cmd = app.add_subcommand("ls", "list deployed functions");
  ls_cmd->add_flag("--json", json, "print JSON");
  ls_cmd->add_option("--server", server, "controller URL");
  ls_cmd->add_option("--token", token, "control API token");

  InvokeArgs invoke;
  CLI::App* invoke_cmd = app.add_subcommand("invoke", "call a function and print its reply");
  invoke_cmd->add_option("name", invoke.name, "function name")->required();
  invoke_cmd->add_option("data", invoke.data, "request body, @file, or - for stdin");
  invoke_cmd->add_option("-X,--method", invoke.method, "HTTP method")->capture_default_str();
  invoke_cmd->add_option("--path", invoke.path, "path below /fn/<name>");
  invoke_cmd->add_flag("-i,--include", invoke.include_headers, "print status and headers");
  invoke_cmd->add_option("--server", server, "controller URL");

  std::string rm_name;
  CLI::App* rm_cmd = app.add_subcommand("rm", "remove a function");
  rm_cmd->add_option("name", rm_name, "function name")->required();
  rm_cmd->add_option("--server", server, "controller URL");
  rm_cmd->add_option("--token", token, "control API token");

  std::string describe_name;
  bool describe_json = false;
  CLI::App* describe_cmd =
      app.add_subcommand("describe", "show a function's config, status and versions");
  describe_cmd->add_option("name", describe_name, "function name")->required();
  describe_cmd->add_flag("--json", describe_json, "print the controller's JSON");
  describe_cmd->add_option("--server", server, "controller URL");
  describe_cmd->add_option("--token", token, "control API token");

  std::string rollback_name;
  std::string rollback_to;
  CLI::App* rollback_cmd = app.add_subcommand(
      "rollback", "make another version current (default: the one before)");
  rollback_cmd->add_option("name", rollback_name, "function name")->required();
  rollback_cmd->add_option("--to", rollback_to, "the version to make current, e.g. 0.0.2");
  rollback_cmd->add_option("--server", server, "controller URL");
  rollback_cmd->add_option("--token", token, "control API token");

  std::string invocations_function;
  uint32_t invocations_limit = 20;
  bool invocations_json = false;
  CLI::App* invocations_cmd = app.add_subcommand("invocations", "list recent invocations");
  invocations_cmd->add_option("--function", invocations_function, "only this function's");
  std::string invocations_trace;
  invocations_cmd->add_option("--trace", invocations_trace,
                              "only this W3C trace's (a pipeline run followed end to end)");
  invocations_cmd->add_option("-n,--limit", invocations_limit, "how many, newest first")
      ->capture_default_str()->check(CLI::Range(1, 1000));
  invocations_cmd->add_flag("--json", invocations_json, "print the controller's JSON");
  invocations_cmd->add_option("--server", server, "controller URL");
  invocations_cmd->add_option("--token", token, "control API token");

  std::string logs_name;
  uint32_t logs_limit = 100;
  bool logs_follow = false;
  bool logs_json = false;
  CLI::App* logs_cmd = app.add_subcommand("logs", "print a function's output lines");
  logs_cmd->add_option("name", logs_name, "function name")->required();
  logs_cmd->add_option("-n,--limit", logs_limit, "how many of the newest lines")
      ->capture_default_str()->check(CLI::Range(1, 10000));
  logs_cmd->add_flag("-f,--follow", logs_follow, "keep printing new lines until interrupted");
  logs_cmd->add_flag("--json", logs_json, "print the controller's JSON, one reply per line");
  logs_cmd->add_option("--server", server, "controller URL");
  logs_cmd->add_option("--token", token, "control API token");

  std::string dlq_name;
  uint32_t dlq_limit = 100;
  bool dlq_json = false;
  uint64_t dlq_id = 0;
  CLI::App* dlq_cmd = app.add_subcommand("dlq", "a durable function's dead letters");
  dlq_cmd->require_subcommand(1);
  CLI::App* dlq_ls_cmd = dlq_cmd->add_subcommand("ls", "list the events that failed every attempt");
  CLI::App* dlq_replay_cmd =
      dlq_cmd->add_subcommand("replay", "put the dead letters back in the function's queue");
  for (CLI::App* cmd : {dlq_ls_cmd, dlq_replay_cmd}) {
    cmd->add_option("name", dlq_name, "function name")->required();
    cmd->add_option("--server", server, "controller URL");
    cmd->add_option("--token", token, "control API token");
  }
  dlq_ls_cmd->add_option("-n,--limit", dlq_limit, "how many, oldest first")
      ->capture_default_str()->check(CLI::Range(1, 1000));
  dlq_ls_cmd->add_flag("--json", dlq_json, "print the controller's JSON");
  dlq_replay_cmd->add_option("--id", dlq_id, "only this dead letter (an ID from wisp dlq ls)")
      ->check(CLI::PositiveNumber);

  PublishArgs publish;
  CLI::App* publish_cmd = app.add_subcommand("publish", "publish an event");
  CLI::App* request_cmd =
      app.add_subcommand("request", "send a request on a subject and print the reply");
  for (CLI::App* cmd : {publish_cmd, request_cmd}) {
    cmd->add_option("subject", publish.subject, "subject, e.g. orders.new")->required();
    cmd->add_option("data", publish.data, "payload, @file, or - for stdin");
    cmd->add_option("-H,--header", publish.headers, "NAME=VALUE header (repeatable)");
    cmd->add_option("--server", server, "controller URL");
    cmd->add_option("--token", token, "control API token");
  }
  request_cmd->add_option("--timeout", publish.timeout, "how long to wait for the reply")
      ->capture_default_str();

  bool services_json = false;
  std::string services_wait = "250ms";
  CLI::App* services_cmd =
      app.add_subcommand("services", "list the NATS services ($SRV) that answer");
  services_cmd->add_flag("--json", services_json, "print JSON");
  services_cmd->add_option("--wait", services_wait, "how long to collect answers")
      ->capture_default_str();
  services_cmd->add_option("--server", server, "controller URL");
  services_cmd->add_option("--token", token, "control API token");

  std::string new_name;
  std::string new_lang = "c";
  std::string new_dir;
  CLI::App* new_cmd = app.add_subcommand("new", "create a ready-to-build function folder");
  new_cmd->add_option("name", new_name, "function name")->required();
  new_cmd->add_option("--lang", new_lang, "c or cpp")->capture_default_str();
  new_cmd->add_option("--dir", new_dir, "where to create it (default: here)");

  std::string manifest_file;
  CLI::App* apply_cmd = app.add_subcommand("apply", "deploy the functions a manifest describes");
  CLI::App* delete_cmd = app.add_subcommand("delete", "remove the functions a manifest describes");
  for (CLI::App* cmd : {apply_cmd, delete_cmd}) {
    cmd->add_option("-f,--file", manifest_file, "the manifest, e.g. wisp.yaml")->required();
    cmd->add_option("--server", server, "controller URL");
    cmd->add_option("--token", token, "control API token");
  }

  CLI::App* version_cmd = app.add_subcommand("version", "print the version");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }

  const std::string url = ResolveServer(server);
  UseToken(token);
  if (!wait.empty()) {
    uint64_t wait_ms = 0;
    wisp::Status s = wisp::runtime::ParseDurationMs(wait, &wait_ms);
    if (!s.ok()) return Fail(kExitUsage, "--wait: " + s.message());
    WaitForController(wait_ms);
  }
  if (*up_cmd) return RunUp(up);
  if (*deploy_cmd) {
    deploy.server = url;
    return RunDeploy(deploy);
  }
  if (*ls_cmd) return RunList(url, json);
  if (*invoke_cmd) {
    invoke.server = url;
    return RunInvoke(invoke);
  }
  if (*rm_cmd) return RunRemove(url, rm_name);
  if (*describe_cmd) return RunDescribe(url, describe_name, describe_json);
  if (*rollback_cmd) return RunRollback(url, rollback_name, rollback_to);
  if (*invocations_cmd) {
    return RunInvocations(url, invocations_function, invocations_trace, invocations_limit,
                          invocations_json);
  }
  if (*logs_cmd) return RunLogs(url, logs_name, logs_limit, logs_follow, logs_json);
  if (*dlq_ls_cmd) return RunDeadLetters(url, dlq_name, dlq_limit, dlq_json);
  if (*dlq_replay_cmd) return RunReplay(url, dlq_name, dlq_id);
  if (*publish_cmd || *request_cmd) {
    publish.server = url;
    publish.request = static_cast<bool>(*request_cmd);
    return RunPublish(publish);
  }
  if (*services_cmd) return RunServices(url, services_json, services_wait);
  if (*apply_cmd) return RunApply(url, manifest_file);
  if (*new_cmd) return RunNew(new_name, new_lang, new_dir);
  if (*delete_cmd) return RunDeleteManifest(url, manifest_file);
  if (*version_cmd) {
    std::printf("wisp %s (function ABI %u)\n", WISP_VERSION, WISP_ABI_VERSION);
    return kExitOk;
  }
  return kExitUsage;
}
