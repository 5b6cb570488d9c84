// The client subcommands on functions: deploy, ls, invoke, rm, describe and
// rollback. They talk to the controller's HTTP API.
#include "runtime/cli/commands.h"

#include <google/protobuf/util/json_util.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <sstream>

#include "api.pb.h"
#include "runtime/duration.h"
#include "runtime/function_limits.h"
#include "runtime/cli/api_call.h"
#include "runtime/http_client.h"
#include "triggers/query.h"
#include "triggers/route.h"

namespace wisp::cli {
namespace {

std::string StemOf(const std::string& path) {
  std::string base = path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
  if (base.size() > 3 && base.compare(base.size() - 3, 3, ".so") == 0) base.resize(base.size() - 3);
  return base;
}

// Whether pair has the KEY=VALUE shape of the config map: KEY like a shell
// variable ([A-Za-z_][A-Za-z0-9_]*). The controller enforces the rest (the
// reserved WISP_* keys, the limits).
bool IsEnvPair(const std::string& pair) {
  const size_t eq = pair.find('=');
  if (eq == std::string::npos || eq == 0) return false;
  for (size_t i = 0; i < eq; ++i) {
    const unsigned char c = static_cast<unsigned char>(pair[i]);
    if (!(std::isalpha(c) || c == '_' || (i > 0 && std::isdigit(c)))) return false;
  }
  return true;
}

}  // namespace

std::string ResolveServer(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("WISP_URL"); env != nullptr && *env != '\0') return env;
  return "http://127.0.0.1:8080";
}

int RunDeploy(const DeployArgs& args) {
  // A folder (from `wisp new`, or any CMake project using wisp_add_function)
  // is built first; its name is the folder's.
  struct stat st {};
  std::string path = args.path;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const bool is_dir = ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  std::string stem = StemOf(path);
  if (is_dir && (stem == "." || stem.empty())) {
    char cwd[4096];
    if (::getcwd(cwd, sizeof(cwd)) != nullptr) stem = StemOf(cwd);
  }
  const std::string name = args.name.empty() ? stem : args.name;
  if (!triggers::IsValidFunctionName(name)) {
    return Fail(kExitUsage, "invalid function name '" + name +
                                "': names match ^[a-z0-9][a-z0-9_-]{0,62}$ (use --name)");
  }
  if (is_dir) {
    std::string so;
    if (int rc = BuildFunctionDir(path, stem, &so); rc != kExitOk) return rc;
    DeployArgs built = args;
    built.path = so;
    built.name = name;
    return RunDeploy(built);
  }
  std::string query;
  auto add = [&query](const std::string& key, const std::string& value) {
    query += query.empty() ? "?" : "&";
    query += key + "=" + value;
  };
  for (const auto& [flag, value, key] : {std::tuple{"--timeout", args.timeout, "timeout"},
                                         std::tuple{"--idle", args.idle, "idle"},
                                         std::tuple{"--backoff", args.backoff, "backoff"},
                                         std::tuple{"--max-backoff", args.max_backoff,
                                                    "max_backoff"},
                                         std::tuple{"--every", args.every, "every"}}) {
    if (value.empty()) continue;
    uint64_t ms = 0;
    Status s = runtime::ParseDurationMs(value, &ms);
    if (!s.ok()) return Fail(kExitUsage, std::string(flag) + ": " + s.message());
    add(key, std::to_string(ms) + "ms");
  }
  if (args.max_workers > 0) add("max_workers", std::to_string(args.max_workers));
  for (const std::string& subject : args.subscribe) add("subscribe", triggers::PercentEncode(subject));
  if (!args.version.empty()) add("version", triggers::PercentEncode(args.version));
  if (args.is_private) add("private", "true");
  if (args.durable) add("durable", "true");
  if (args.max_attempts > 0) add("max_attempts", std::to_string(args.max_attempts));
  if (!args.dead_letter.empty()) add("dead_letter", triggers::PercentEncode(args.dead_letter));
  if (!args.cron.empty()) add("cron", triggers::PercentEncode(args.cron));
  runtime::FunctionLimits checked;
  for (const auto& [key, value] : args.limits) {
    if (value.empty()) continue;
    Status s = runtime::ApplyLimit(key, value, &checked);
    if (!s.ok()) return Fail(kExitUsage, s.message());
    add(key, triggers::PercentEncode(value));
  }
  for (const std::string& pair : args.env) {
    if (!IsEnvPair(pair)) {
      return Fail(kExitUsage, "env wants KEY=VALUE with a KEY of letters, digits and _ "
                              "(not starting with a digit), got '" + pair + "'");
    }
    add("env", triggers::PercentEncode(pair));
  }
  std::string bytes;
  std::string error;
  if (!ReadFile(args.path, &bytes, &error)) return Fail(kExitUsage, error);

  runtime::HttpClientResponse response;
  int code = 0;
  if (!Call(args.server, "PUT", "/v1/functions/" + name + query, bytes, &response, &code)) {
    return code;
  }
  if (response.status >= 300) return Fail(kExitFailed, "deploy failed: " + ErrorMessage(response));
  api::Function fn;
  (void)ParseJson(response.body, &fn);
  std::printf("deployed %s %s (sha256 %.12s, %llu bytes, timeout %s, idle %s, max workers %u)\n",
              name.c_str(), fn.version().c_str(), fn.sha256().c_str(), static_cast<unsigned long long>(fn.size_bytes()),
              runtime::FormatDurationMs(fn.config().timeout_ms()).c_str(),
              runtime::FormatDurationMs(fn.config().idle_ms()).c_str(), fn.config().max_workers());
  std::printf("call it:  curl -d world %s/fn/%s\n", args.server.c_str(), name.c_str());
  for (const std::string& subject : fn.config().subjects()) {
    std::printf("events:   wisp publish '%s' DATA\n", subject.c_str());
  }
  return kExitOk;
}

int RunList(const std::string& server, bool json) {
  runtime::HttpClientResponse response;
  int code = 0;
  if (!Call(server, "GET", "/v1/functions", {}, &response, &code)) return code;
  if (response.status != 200) return Fail(kExitFailed, "list failed: " + ErrorMessage(response));
  if (json) {
    std::fwrite(response.body.data(), 1, response.body.size(), stdout);
    return kExitOk;
  }
  api::FunctionList list;
  if (!ParseJson(response.body, &list)) return Fail(kExitFailed, "unreadable reply: " + response.body);
  std::printf("%-24s %-8s %-8s %-12s %-8s %-8s %-12s %s\n", "NAME", "LOADED", "WORKERS",
              "INVOCATIONS", "TIMEOUT", "IDLE", "MAX WORKERS", "SHA256");
  for (const api::Function& fn : list.functions()) {
    std::printf("%-24s %-8s %-8d %-12llu %-8s %-8s %-12u %.12s\n", fn.name().c_str(),
                fn.status().loaded() ? "yes" : "no", fn.status().worker_pids_size(),
                static_cast<unsigned long long>(fn.status().invocations()),
                runtime::FormatDurationMs(fn.config().timeout_ms()).c_str(),
                runtime::FormatDurationMs(fn.config().idle_ms()).c_str(), fn.config().max_workers(),
                fn.sha256().c_str());
  }
  return kExitOk;
}

int RunInvoke(const InvokeArgs& args) {
  if (!triggers::IsValidFunctionName(args.name)) {
    return Fail(kExitUsage, "invalid function name '" + args.name + "'");
  }
  std::string body;
  std::string error;
  if (!ReadData(args.data, &body, &error)) return Fail(kExitUsage, error);
  std::string target = "/fn/" + args.name;
  if (!args.path.empty()) target += (args.path[0] == '/' ? "" : "/") + args.path;
  runtime::HttpClientResponse response;
  int code = 0;
  if (!Call(args.server, args.method, target, body, &response, &code)) return code;
  if (args.include_headers) {
    std::printf("HTTP %d\n", response.status);
    for (const auto& [name, value] : response.headers) {
      std::printf("%s: %s\n", name.c_str(), value.c_str());
    }
    std::printf("\n");
  }
  if (response.status >= 400) {
    return Fail(kExitFailed, args.name + " failed: " + ErrorMessage(response));
  }
  std::fwrite(response.body.data(), 1, response.body.size(), stdout);
  if (isatty(STDOUT_FILENO) && !response.body.empty() && response.body.back() != '\n') {
    std::printf("\n");
  }
  return kExitOk;
}

int RunRemove(const std::string& server, const std::string& name) {
  if (!triggers::IsValidFunctionName(name)) {
    return Fail(kExitUsage, "invalid function name '" + name + "'");
  }
  runtime::HttpClientResponse response;
  int code = 0;
  if (!Call(server, "DELETE", "/v1/functions/" + name, {}, &response, &code)) return code;
  if (response.status != 200) return Fail(kExitFailed, "rm failed: " + ErrorMessage(response));
  std::printf("removed %s\n", name.c_str());
  return kExitOk;
}

namespace {

void PrintConfig(const api::FunctionConfig& c) {
  std::printf("%-13s%s\n", "timeout", runtime::FormatDurationMs(c.timeout_ms()).c_str());
  std::printf("%-13s%s\n", "idle", runtime::FormatDurationMs(c.idle_ms()).c_str());
  std::printf("%-13s%u\n", "max workers", c.max_workers());
  std::string subjects;
  for (const std::string& subject : c.subjects()) {
    subjects += (subjects.empty() ? "" : ", ") + subject;
  }
  std::printf("%-13s%s\n", "subjects", subjects.empty() ? "-" : subjects.c_str());
  std::printf("%-13s%s\n", "private", c.private_() ? "yes" : "no");
  std::printf("%-13smemory %s, cpu %s, open files %u, processes %u\n", "limits",
              runtime::FormatByteSize(c.memory_bytes()).c_str(),
              c.cpu_ms() == 0 ? "unlimited" : runtime::FormatDurationMs(c.cpu_ms()).c_str(),
              c.open_files(), c.processes());
  std::printf("%-13srequest %s, reply %s, events %u\n", "",
              runtime::FormatByteSize(c.max_request_bytes()).c_str(),
              runtime::FormatByteSize(c.max_reply_bytes()).c_str(), c.max_events());
  if (c.every_ms() > 0 || !c.cron().empty()) {
    const std::string schedule = c.every_ms() > 0
                                     ? "every " + runtime::FormatDurationMs(c.every_ms())
                                     : "cron '" + c.cron() + "' (UTC)";
    std::printf("%-13s%s%s%s\n", "schedule", schedule.c_str(),
                c.next_tick().empty() ? "" : ", next ", c.next_tick().c_str());
  }
  if (c.durable()) {
    std::printf("%-13syes: %u attempts, backoff %s up to %s, dead letters on %s\n", "durable",
                c.max_attempts(), runtime::FormatDurationMs(c.backoff_ms()).c_str(),
                runtime::FormatDurationMs(c.max_backoff_ms()).c_str(), c.dead_letter().c_str());
  }
  // Sorted, one per line: the proto map has no order.
  std::map<std::string, std::string> env(c.env().begin(), c.env().end());
  if (env.empty()) std::printf("%-13s-\n", "env");
  const char* label = "env";
  for (const auto& [key, value] : env) {
    std::printf("%-13s%s=%s\n", label, key.c_str(), value.c_str());
    label = "";
  }
}

void PrintStatus(const api::FunctionStatus& st) {
  std::string pids;
  for (int pid : st.worker_pids()) pids += (pids.empty() ? "" : ", ") + std::to_string(pid);
  std::printf("%-13s%s\n", "loaded", st.loaded() ? ("yes (workers " + pids + ")").c_str() : "no");
  std::printf("%-13s%llu\n", "loads", static_cast<unsigned long long>(st.loads()));
  std::printf("%-13s%llu\n", "invocations", static_cast<unsigned long long>(st.invocations()));
  std::printf("%-13s%llu\n", "errors", static_cast<unsigned long long>(st.errors()));
  std::printf("%-13s%u\n", "queue depth", st.queue_depth());
  if (st.waiting_events() > 0 || st.dead_letters() > 0) {
    std::printf("%-13s%llu\n", "waiting", static_cast<unsigned long long>(st.waiting_events()));
    std::printf("%-13s%llu\n", "dead letters", static_cast<unsigned long long>(st.dead_letters()));
  }
}

void PrintVersions(const api::Function& fn) {
  int width = 7;  // VERSION
  for (const api::FunctionVersion& v : fn.versions()) {
    width = std::max(width, static_cast<int>(v.version().size()));
  }
  std::printf("%-*s  %-20s  %-12s  %10s  %s\n", width, "VERSION", "DEPLOYED", "SHA256", "SIZE",
              "CURRENT");
  for (const api::FunctionVersion& v : fn.versions()) {
    std::printf("%-*s  %-20s  %-12.12s  %10llu%s\n", width, v.version().c_str(),
                v.deployed_at().c_str(), v.sha256().c_str(),
                static_cast<unsigned long long>(v.size_bytes()), v.current() ? "  *" : "");
  }
}

}  // namespace

int RunDescribe(const std::string& server, const std::string& name, bool json) {
  if (!triggers::IsValidFunctionName(name)) {
    return Fail(kExitUsage, "invalid function name '" + name + "'");
  }
  runtime::HttpClientResponse response;
  int code = 0;
  if (!Call(server, "GET", "/v1/functions/" + name, {}, &response, &code)) return code;
  if (response.status != 200) {
    return Fail(kExitFailed, "describe failed: " + ErrorMessage(response));
  }
  if (json) {
    std::fwrite(response.body.data(), 1, response.body.size(), stdout);
    return kExitOk;
  }
  api::Function fn;
  if (!ParseJson(response.body, &fn)) {
    return Fail(kExitFailed, "unreadable reply: " + response.body);
  }
  std::printf("%-13s%s\n", "name", fn.name().c_str());
  std::printf("%-13s%s\n", "version", fn.version().c_str());
  std::printf("%-13s%s\n", "sha256", fn.sha256().c_str());
  std::printf("%-13s%llu bytes\n", "size", static_cast<unsigned long long>(fn.size_bytes()));
  std::printf("%-13s%s\n", "deployed", fn.deployed_at().c_str());
  PrintConfig(fn.config());
  PrintStatus(fn.status());
  std::printf("\n");
  PrintVersions(fn);
  return kExitOk;
}

int RunRollback(const std::string& server, const std::string& name, const std::string& to) {
  if (!triggers::IsValidFunctionName(name)) {
    return Fail(kExitUsage, "invalid function name '" + name + "'");
  }
  std::string target = "/v1/functions/" + name + "/rollback";
  if (!to.empty()) target += "?to=" + triggers::PercentEncode(to);
  runtime::HttpClientResponse response;
  int code = 0;
  if (!Call(server, "POST", target, {}, &response, &code)) return code;
  if (response.status != 200) {
    return Fail(kExitFailed, "rollback failed: " + ErrorMessage(response));
  }
  api::Function fn;
  if (!ParseJson(response.body, &fn)) {
    return Fail(kExitFailed, "unreadable reply: " + response.body);
  }
  std::printf("rolled back %s to %s\n", name.c_str(), fn.version().c_str());
  return kExitOk;
}

}  // namespace wisp::cli
