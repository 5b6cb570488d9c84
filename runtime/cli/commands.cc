// The client subcommands: they talk to the controller's HTTP API.
#include "runtime/cli/commands.h"

#include <google/protobuf/util/json_util.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "api.pb.h"
#include "runtime/duration.h"
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
                                         std::tuple{"--idle", args.idle, "idle"}}) {
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

}  // namespace wisp::cli
