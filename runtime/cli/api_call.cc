#include "runtime/cli/api_call.h"

#include <cerrno>
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

}  // namespace

void UseToken(const std::string& flag) {
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
  runtime::HttpClient client(host, port);
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
