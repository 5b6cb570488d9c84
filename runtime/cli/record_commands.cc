// The record subcommands: wisp invocations and wisp logs [-f].
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <thread>

#include "api.pb.h"
#include "runtime/cli/api_call.h"
#include "runtime/cli/commands.h"
#include "runtime/http_client.h"
#include "triggers/query.h"
#include "triggers/route.h"

namespace wisp::cli {
namespace {

constexpr auto kFollowPoll = std::chrono::milliseconds(500);

volatile std::sig_atomic_t g_stop_following = 0;

void PrintLines(const api::LogLines& lines) {
  for (const api::LogLine& l : lines.lines()) {
    std::printf("%s %-14s %s\n", l.at().c_str(),
                l.invocation().empty() ? "-" : l.invocation().c_str(), l.line().c_str());
  }
  std::fflush(stdout);
}

}  // namespace

int RunInvocations(const std::string& server, const std::string& function,
                   const std::string& trace, uint32_t limit, bool json) {
  if (!function.empty() && !triggers::IsValidFunctionName(function)) {
    return Fail(kExitUsage, "invalid function name '" + function + "'");
  }
  std::string target = "/v1/invocations?limit=" + std::to_string(limit);
  if (!function.empty()) target += "&function=" + function;
  if (!trace.empty()) target += "&trace=" + triggers::PercentEncode(trace);
  runtime::HttpClientResponse response;
  int code = 0;
  if (!Call(server, "GET", target, {}, &response, &code)) return code;
  if (response.status != 200) {
    return Fail(kExitFailed, "invocations failed: " + ErrorMessage(response));
  }
  if (json) {
    std::fwrite(response.body.data(), 1, response.body.size(), stdout);
    return kExitOk;
  }
  api::InvocationList list;
  if (!ParseJson(response.body, &list)) return Fail(kExitFailed, "unreadable reply: " + response.body);
  std::printf("%-27s %-16s %-20s %-10s %-7s %-5s %-6s %10s  %s\n", "STARTED", "ID", "FUNCTION",
              "VERSION", "TRIGGER", "COLD", "STATUS", "MS", "ERROR");
  for (const api::Invocation& inv : list.invocations()) {
    std::printf("%-27s %-16s %-20s %-10s %-7s %-5s %-6d %10.3f  %s\n", inv.started_at().c_str(),
                inv.id().c_str(), inv.function().c_str(), inv.version().c_str(),
                inv.trigger().c_str(), inv.cold() ? "yes" : "no", inv.status(), inv.duration_ms(),
                inv.error_code().empty() ? "" : (inv.error_code() + ": " + inv.error()).c_str());
  }
  return kExitOk;
}

int RunLogs(const std::string& server, const std::string& name, uint32_t limit, bool follow,
            bool json) {
  if (!triggers::IsValidFunctionName(name)) {
    return Fail(kExitUsage, "invalid function name '" + name + "'");
  }
  const std::string base = "/v1/functions/" + name + "/logs?limit=" + std::to_string(limit);
  int64_t after = -1;  // the newest lines first, then what follows them
  std::signal(SIGINT, [](int) { g_stop_following = 1; });
  std::signal(SIGTERM, [](int) { g_stop_following = 1; });
  while (true) {
    runtime::HttpClientResponse response;
    int code = 0;
    const std::string target = after < 0 ? base : base + "&after=" + std::to_string(after);
    if (!Call(server, "GET", target, {}, &response, &code)) return code;
    if (response.status != 200) return Fail(kExitFailed, "logs failed: " + ErrorMessage(response));
    api::LogLines lines;
    if (json) {
      std::fwrite(response.body.data(), 1, response.body.size(), stdout);
      std::printf("\n");
      std::fflush(stdout);
      if (!ParseJson(response.body, &lines)) return kExitOk;
    } else {
      if (!ParseJson(response.body, &lines)) {
        return Fail(kExitFailed, "unreadable reply: " + response.body);
      }
      PrintLines(lines);
    }
    if (lines.lines_size() > 0) after = lines.lines(lines.lines_size() - 1).seq();
    if (after < 0) after = 0;
    if (!follow) return kExitOk;
    // A full page means more may be waiting: ask again at once.
    if (lines.lines_size() < static_cast<int>(limit)) {
      for (auto waited = std::chrono::milliseconds(0); waited < kFollowPoll && !g_stop_following;
           waited += std::chrono::milliseconds(50)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
    if (g_stop_following) return kExitOk;
  }
}

}  // namespace wisp::cli
