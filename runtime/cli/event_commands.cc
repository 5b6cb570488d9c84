// wisp publish, wisp request and wisp services: events and NATS services
// through the controller, whichever broker it uses.
#include <unistd.h>

#include <cstdio>

#include "api.pb.h"
#include "runtime/cli/api_call.h"
#include "runtime/cli/commands.h"
#include "runtime/duration.h"
#include "triggers/broker.h"
#include "triggers/query.h"

namespace wisp::cli {

int RunPublish(const PublishArgs& args) {
  Status s = triggers::ValidatePublishSubject(args.subject);
  if (!s.ok()) return Fail(kExitUsage, s.message());
  std::vector<std::pair<std::string, std::string>> headers;
  for (const std::string& header : args.headers) {
    const size_t eq = header.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Fail(kExitUsage, "--header wants NAME=VALUE, got '" + header + "'");
    }
    headers.emplace_back(header.substr(0, eq), header.substr(eq + 1));
  }
  std::string body;
  std::string error;
  if (!ReadData(args.data, &body, &error)) return Fail(kExitUsage, error);
  std::string target = (args.request ? "/v1/requests/" : "/v1/events/") +
                       triggers::PercentEncode(args.subject);
  if (args.request) {
    uint64_t ms = 0;
    s = runtime::ParseDurationMs(args.timeout, &ms);
    if (!s.ok()) return Fail(kExitUsage, "--timeout: " + s.message());
    target += "?timeout=" + std::to_string(ms) + "ms";
  }
  runtime::HttpClientResponse response;
  int code = 0;
  if (!Call(args.server, "POST", target, body, &response, &code, headers)) return code;
  if (!args.request) {
    if (response.status != 202) return Fail(kExitFailed, "publish failed: " + ErrorMessage(response));
    api::PublishedEvent published;
    (void)ParseJson(response.body, &published);
    std::printf("published %s on %s\n", published.id().c_str(), published.subject().c_str());
    return kExitOk;
  }
  if (response.status >= 400) {
    return Fail(kExitFailed, "request on " + args.subject + " failed: " + ErrorMessage(response));
  }
  std::fwrite(response.body.data(), 1, response.body.size(), stdout);
  if (isatty(STDOUT_FILENO) && !response.body.empty() && response.body.back() != '\n') {
    std::printf("\n");
  }
  return kExitOk;
}

int RunServices(const std::string& server, bool json, const std::string& wait) {
  uint64_t ms = 0;
  Status s = runtime::ParseDurationMs(wait, &ms);
  if (!s.ok()) return Fail(kExitUsage, "--wait: " + s.message());
  runtime::HttpClientResponse response;
  int code = 0;
  if (!Call(server, "GET", "/v1/services?wait=" + std::to_string(ms) + "ms", {}, &response,
            &code)) {
    return code;
  }
  if (response.status != 200) return Fail(kExitFailed, "services failed: " + ErrorMessage(response));
  if (json) {
    std::fwrite(response.body.data(), 1, response.body.size(), stdout);
    return kExitOk;
  }
  api::ServiceList list;
  if (!ParseJson(response.body, &list)) return Fail(kExitFailed, "unreadable reply: " + response.body);
  std::printf("%-24s %-10s %-24s %s\n", "NAME", "VERSION", "ID", "ENDPOINTS");
  for (const api::ServiceInfo& service : list.services()) {
    std::string endpoints;
    for (const api::ServiceEndpointInfo& e : service.endpoints()) {
      if (!endpoints.empty()) endpoints += ", ";
      endpoints += e.subject();
    }
    std::printf("%-24s %-10s %-24s %s\n", service.name().c_str(), service.version().c_str(),
                service.id().c_str(), endpoints.c_str());
  }
  return kExitOk;
}

}  // namespace wisp::cli
