// The client subcommands: they talk to the controller's HTTP API.
#include "runtime/cli/commands.h"

#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "api.pb.h"
#include "runtime/duration.h"
#include "runtime/http_client.h"
#include "triggers/route.h"

namespace wisp::cli {
namespace {

struct Target {
  std::string host;
  int port = 0;
};

int Fail(int code, const std::string& message) {
  std::fprintf(stderr, "wisp: %s\n", message.c_str());
  return code;
}

bool ReadFile(const std::string& path, std::string* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read " + path + ": " + std::strerror(errno);
    return false;
  }
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (in.bad()) {
    *error = "cannot read " + path;
    return false;
  }
  return true;
}

// The message of a JSON error body, or the raw body.
std::string ErrorMessage(const runtime::HttpClientResponse& response) {
  api::ErrorBody body;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  if (google::protobuf::util::JsonStringToMessage(response.body, &body, options).ok() &&
      body.has_error()) {
    return body.error().message() + " (" + body.error().code() + ", HTTP " +
           std::to_string(response.status) + ")";
  }
  return "HTTP " + std::to_string(response.status) + ": " + response.body;
}

// Sends one request; on transport failure prints why and sets *exit_code.
bool Call(const std::string& server, std::string_view method, const std::string& target,
          std::string_view body, runtime::HttpClientResponse* response, int* exit_code) {
  std::string host;
  int port = 0;
  Status s = runtime::ParseServerUrl(server, &host, &port);
  if (!s.ok()) {
    *exit_code = Fail(kExitUsage, "bad server URL: " + s.message());
    return false;
  }
  runtime::HttpClient client(host, port);
  StatusOr<runtime::HttpClientResponse> got = client.Request(method, target, {}, body);
  if (!got.ok()) {
    *exit_code = Fail(kExitUnreachable, "cannot reach the controller at " + server + ": " +
                                            got.status().message() + " (is `wisp up` running?)");
    return false;
  }
  *response = std::move(got).value();
  return true;
}

template <typename Message>
bool ParseJson(const std::string& json, Message* message) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  return google::protobuf::util::JsonStringToMessage(json, message, options).ok();
}

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
  const std::string name = args.name.empty() ? StemOf(args.path) : args.name;
  if (!triggers::IsValidFunctionName(name)) {
    return Fail(kExitUsage, "invalid function name '" + name +
                                "': names match ^[a-z0-9][a-z0-9_-]{0,62}$ (use --name)");
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
  std::printf("deployed %s (sha256 %.12s, %llu bytes, timeout %s, idle %s, max workers %u)\n",
              name.c_str(), fn.sha256().c_str(), static_cast<unsigned long long>(fn.size_bytes()),
              runtime::FormatDurationMs(fn.config().timeout_ms()).c_str(),
              runtime::FormatDurationMs(fn.config().idle_ms()).c_str(), fn.config().max_workers());
  std::printf("call it:  curl -d world %s/fn/%s\n", args.server.c_str(), name.c_str());
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
  if (args.data == "-") {
    body.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else if (!args.data.empty() && args.data[0] == '@') {
    std::string error;
    if (!ReadFile(args.data.substr(1), &body, &error)) return Fail(kExitUsage, error);
  } else {
    body = args.data;
  }
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
