// wisp apply -f / wisp delete -f: a manifest's functions deployed or removed
// in one step. apply is idempotent: a function whose artifact, settings and
// env already match is left alone and keeps its version; any difference
// deploys a new version.
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "api.pb.h"
#include "loader/artifact_store.h"
#include "runtime/cli/api_call.h"
#include "runtime/cli/commands.h"
#include "runtime/function_limits.h"
#include "runtime/manifest.h"

namespace wisp::cli {
namespace {

int LoadManifest(const std::string& file, runtime::Manifest* manifest) {
  std::string text;
  std::string error;
  if (!ReadFile(file, &text, &error)) return Fail(kExitUsage, error);
  Status s = runtime::ParseManifest(text, file, manifest);
  if (!s.ok()) return Fail(kExitUsage, s.message());
  return kExitOk;
}

// Whether the deployed function fn already is what f describes, with the
// artifact whose SHA-256 is sha256.
bool Matches(const runtime::ManifestFunction& f, const std::string& sha256, const api::Function& fn) {
  const api::FunctionConfig& c = fn.config();
  if (fn.sha256() != sha256) return false;
  if (f.timeout_ms && *f.timeout_ms != c.timeout_ms()) return false;
  if (f.idle_ms && *f.idle_ms != c.idle_ms()) return false;
  if (f.max_workers != 0 && f.max_workers != c.max_workers()) return false;
  if (!f.version.empty() && f.version != fn.version()) return false;
  if (f.is_private.value_or(false) != c.private_()) return false;
  if (std::map<std::string, std::string>(c.env().begin(), c.env().end()) != f.env) return false;
  if (f.durable != c.durable()) return false;
  if (f.every_ms.value_or(0) != c.every_ms() || f.cron != c.cron()) return false;
  if (f.durable) {
    if (f.max_attempts != 0 && f.max_attempts != c.max_attempts()) return false;
    if (f.backoff_ms && *f.backoff_ms != c.backoff_ms()) return false;
    if (f.max_backoff_ms && *f.max_backoff_ms != c.max_backoff_ms()) return false;
    if (!f.dead_letter.empty() && f.dead_letter != c.dead_letter()) return false;
  }
  runtime::FunctionLimits current;
  current.memory_bytes = c.memory_bytes();
  current.cpu_ms = c.cpu_ms();
  current.open_files = c.open_files();
  current.processes = c.processes();
  current.max_request_bytes = c.max_request_bytes();
  current.max_reply_bytes = c.max_reply_bytes();
  current.max_events = c.max_events();
  runtime::FunctionLimits wanted = current;
  for (const auto& [key, value] : f.limits) {
    if (!runtime::ApplyLimit(key, value, &wanted).ok()) return false;
  }
  if (!(wanted == current)) return false;
  return std::vector<std::string>(c.subjects().begin(), c.subjects().end()) == f.subscribe;
}

}  // namespace

int RunApply(const std::string& server, const std::string& file) {
  runtime::Manifest manifest;
  if (int rc = LoadManifest(file, &manifest); rc != kExitOk) return rc;
  int deployed = 0;
  int unchanged = 0;
  const size_t total = manifest.functions.size();
  size_t done = 0;
  for (const runtime::ManifestFunction& f : manifest.functions) {
    std::printf("[%zu/%zu] %s\n", ++done, total, f.name.c_str());
    std::fflush(stdout);
    std::string bytes;
    std::string error;
    if (!ReadFile(f.path, &bytes, &error)) {
      return Fail(kExitUsage, file + ":" + std::to_string(f.line) + ": " + f.name + ": " + error);
    }
    runtime::HttpClientResponse response;
    int code = 0;
    if (!Call(server, "GET", "/v1/functions/" + f.name, {}, &response, &code)) return code;
    api::Function existing;
    if (response.status == 200 && ParseJson(response.body, &existing) &&
        Matches(f, loader::Sha256Hex(bytes), existing)) {
      std::printf("unchanged %s %s\n", f.name.c_str(), existing.version().c_str());
      ++unchanged;
      continue;
    }
    if (response.status != 200 && response.status != 404) {
      return Fail(kExitFailed, "cannot read " + f.name + ": " + ErrorMessage(response));
    }
    DeployArgs args;
    args.server = server;
    args.path = f.path;
    args.name = f.name;
    if (f.timeout_ms) args.timeout = std::to_string(*f.timeout_ms) + "ms";
    if (f.idle_ms) args.idle = std::to_string(*f.idle_ms) + "ms";
    args.max_workers = f.max_workers;
    args.subscribe = f.subscribe;
    args.version = f.version;
    args.is_private = f.is_private.value_or(false);
    for (const auto& [key, value] : f.env) args.env.push_back(key + "=" + value);
    args.durable = f.durable;
    args.max_attempts = f.max_attempts;
    if (f.backoff_ms) args.backoff = std::to_string(*f.backoff_ms) + "ms";
    if (f.max_backoff_ms) args.max_backoff = std::to_string(*f.max_backoff_ms) + "ms";
    args.dead_letter = f.dead_letter;
    if (f.every_ms) args.every = std::to_string(*f.every_ms) + "ms";
    args.cron = f.cron;
    args.limits = f.limits;
    if (int rc = RunDeploy(args); rc != kExitOk) return rc;
    ++deployed;
  }
  std::printf("applied %s: %d deployed, %d unchanged\n", file.c_str(), deployed, unchanged);
  return kExitOk;
}

int RunDeleteManifest(const std::string& server, const std::string& file) {
  runtime::Manifest manifest;
  if (int rc = LoadManifest(file, &manifest); rc != kExitOk) return rc;
  int removed = 0;
  for (const runtime::ManifestFunction& f : manifest.functions) {
    runtime::HttpClientResponse response;
    int code = 0;
    if (!Call(server, "DELETE", "/v1/functions/" + f.name, {}, &response, &code)) return code;
    if (response.status == 404) {
      std::printf("not deployed %s\n", f.name.c_str());
      continue;
    }
    if (response.status != 200) {
      return Fail(kExitFailed, "cannot remove " + f.name + ": " + ErrorMessage(response));
    }
    std::printf("removed %s\n", f.name.c_str());
    ++removed;
  }
  std::printf("deleted %s: %d removed\n", file.c_str(), removed);
  return kExitOk;
}

}  // namespace wisp::cli
