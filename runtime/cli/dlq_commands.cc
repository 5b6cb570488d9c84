// wisp dlq ls NAME and wisp dlq replay NAME [--id ID]: a durable function's
// dead letters.
#include <cstdio>

#include "api.pb.h"
#include "runtime/cli/api_call.h"
#include "runtime/cli/commands.h"
#include "runtime/http_client.h"
#include "triggers/route.h"

namespace wisp::cli {
namespace {

// The payload as printable text: control bytes and non-ASCII shown as '.',
// cut at 60 characters.
std::string Preview(const std::string& data) {
  std::string out;
  for (char c : data.substr(0, 60)) {
    const auto u = static_cast<unsigned char>(c);
    out += u >= 0x20 && u < 0x7f ? c : '.';
  }
  if (data.size() > 60) out += "...";
  return out;
}

}  // namespace

int RunDeadLetters(const std::string& server, const std::string& name, uint32_t limit, bool json) {
  if (!triggers::IsValidFunctionName(name)) {
    return Fail(kExitUsage, "invalid function name '" + name + "'");
  }
  runtime::HttpClientResponse response;
  int code = 0;
  if (!Call(server, "GET", "/v1/functions/" + name + "/dead-letters?limit=" + std::to_string(limit),
            {}, &response, &code)) {
    return code;
  }
  if (response.status != 200) {
    return Fail(kExitFailed, "dead letters failed: " + ErrorMessage(response));
  }
  if (json) {
    std::fwrite(response.body.data(), 1, response.body.size(), stdout);
    return kExitOk;
  }
  api::DeadLetterList list;
  if (!ParseJson(response.body, &list)) return Fail(kExitFailed, "unreadable reply: " + response.body);
  if (list.dead_letters_size() == 0) {
    std::printf("%s has no dead letters\n", name.c_str());
    return kExitOk;
  }
  std::printf("%-8s %-27s %-20s %-8s %-40s %s\n", "ID", "AT", "SUBJECT", "ATTEMPTS", "ERROR",
              "DATA");
  for (const api::DeadLetter& d : list.dead_letters()) {
    const std::string error = d.error_code().empty() ? d.error() : d.error_code() + ": " + d.error();
    std::printf("%-8lld %-27s %-20s %-8u %-40.40s %s\n", static_cast<long long>(d.id()),
                d.at().c_str(), d.subject().c_str(), d.attempts(), error.c_str(),
                Preview(d.data()).c_str());
  }
  return kExitOk;
}

int RunReplay(const std::string& server, const std::string& name, uint64_t id) {
  if (!triggers::IsValidFunctionName(name)) {
    return Fail(kExitUsage, "invalid function name '" + name + "'");
  }
  std::string target = "/v1/functions/" + name + "/replay";
  if (id > 0) target += "?id=" + std::to_string(id);
  runtime::HttpClientResponse response;
  int code = 0;
  if (!Call(server, "POST", target, {}, &response, &code)) return code;
  if (response.status != 200) return Fail(kExitFailed, "replay failed: " + ErrorMessage(response));
  api::Replayed replayed;
  if (!ParseJson(response.body, &replayed)) {
    return Fail(kExitFailed, "unreadable reply: " + response.body);
  }
  std::printf("replayed %llu dead letter%s of %s\n",
              static_cast<unsigned long long>(replayed.replayed()),
              replayed.replayed() == 1 ? "" : "s", name.c_str());
  return kExitOk;
}

}  // namespace wisp::cli
