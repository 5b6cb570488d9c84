#include "runtime/cli/api_call.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>

#include "api.pb.h"
#include "runtime/auth_token.h"
#include "runtime/cli/commands.h"

namespace wisp::cli {
namespace {

std::string& Token() {
  static std::string token;
  return token;
}

std::string& TokenFlag() {
  static std::string flag;
  return flag;
}

uint64_t& WaitMs() {
  static uint64_t ms = 0;
  return ms;
}

constexpr size_t kProgressFrom = 1024 * 1024;

// Polls GET /healthz until the controller answers or wait_ms pass.
bool AwaitController(const std::string& server, const std::string& host, int port,
                     uint64_t wait_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  bool said = false;
  while (true) {
    runtime::HttpClient probe(host, port, 1000);
    StatusOr<runtime::HttpClientResponse> r = probe.Request("GET", "/healthz");
    if (r.ok() && r->status == 200) {
      if (said) std::fprintf(stderr, "wisp: the controller is up\n");
      return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
    if (!said) {
      std::fprintf(stderr, "wisp: waiting for the controller at %s (up to %llu ms)\n",
                   server.c_str(), static_cast<unsigned long long>(wait_ms));
      said = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace

void WaitForController(uint64_t wait_ms) { WaitMs() = wait_ms; }

void UseToken(const std::string& flag) {
  TokenFlag() = flag;
  if (!flag.empty()) {
    Token() = flag;
    return;
  }
  if (const char* env = std::getenv("WISP_TOKEN"); env != nullptr && *env != '\0') {
    Token() = env;
    return;
  }
  const char* home = std::getenv("WISP_HOME");
  std::string dir;
  if (home != nullptr && *home != '\0') {
    dir = home;
  } else if (const char* user = std::getenv("HOME"); user != nullptr) {
    dir = std::string(user) + "/.wisp";
  }
  StatusOr<std::string> token = runtime::ReadToken(dir + "/token");
  if (token.ok()) Token() = std::move(token).value();
}

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

bool ReadData(const std::string& arg, std::string* out, std::string* error) {
  if (arg == "-") {
    out->assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    return true;
  }
  if (!arg.empty() && arg[0] == '@') return ReadFile(arg.substr(1), out, error);
  *out = arg;
  return true;
}

std::string ErrorMessage(const runtime::HttpClientResponse& response) {
  api::ErrorBody body;
  if (ParseJson(response.body, &body) && body.has_error()) {
    return body.error().message() + " (" + body.error().code() + ", HTTP " +
           std::to_string(response.status) + ")";
  }
  return "HTTP " + std::to_string(response.status) + ": " + response.body;
}

bool Call(const std::string& server, std::string_view method, const std::string& target,
          std::string_view body, runtime::HttpClientResponse* response, int* exit_code,
          const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string host;
  int port = 0;
  Status s = runtime::ParseServerUrl(server, &host, &port);
  if (!s.ok()) {
    *exit_code = Fail(kExitUsage, "bad server URL: " + s.message());
    return false;
  }
  if (WaitMs() > 0) {
    const uint64_t wait_ms = WaitMs();
    WaitMs() = 0;  // once per command
    if (!AwaitController(server, host, port, wait_ms)) {
      *exit_code = Fail(kExitUnreachable, "the controller at " + server + " did not come up within " +
                                              std::to_string(wait_ms) + " ms");
      return false;
    }
    if (Token().empty()) UseToken(TokenFlag());
  }
  runtime::HttpClient client(host, port);
  if (body.size() > kProgressFrom && ::isatty(STDERR_FILENO)) {
    client.set_progress([last = -1](size_t sent, size_t total) mutable {
      const int percent = static_cast<int>(sent * 100 / total);
      if (percent == last) return;
      last = percent;
      std::fprintf(stderr, "\rwisp: sending %.1f of %.1f MiB (%d%%)%s", sent / 1048576.0,
                   total / 1048576.0, percent, sent == total ? "\n" : "");
    });
  }
  std::vector<std::pair<std::string, std::string>> all = headers;
  // Also to /fn/ (a private function needs it): the controller strips its own
  // token before a request reaches function code.
  if (!Token().empty()) {
    all.emplace_back("Authorization", "Bearer " + Token());
  }
  StatusOr<runtime::HttpClientResponse> got = client.Request(method, target, all, body);
  if (!got.ok()) {
    *exit_code = Fail(kExitUnreachable, "cannot reach the controller at " + server + ": " +
                                            got.status().message() + " (is `wisp up` running?)");
    return false;
  }
  *response = std::move(got).value();
  return true;
}

}  // namespace wisp::cli
