// The controller's event endpoints: POST /v1/events/<subject>,
// POST /v1/requests/<subject> and GET /v1/services.
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <tuple>

#include "api.pb.h"
#include "runtime/base/ascii.h"
#include "runtime/controller.h"
#include "runtime/deploy_params.h"
#include "runtime/duration.h"
#include "runtime/json_print.h"
#include "triggers/cloudevents.h"
#include "triggers/query.h"

namespace wisp::runtime {

namespace {

// Request headers that describe the HTTP exchange, not the event.
bool IsHttpOnlyHeader(const std::string& name) {
  static constexpr std::string_view kHttpOnly[] = {
      "host",          "content-length", "connection",      "transfer-encoding", "expect",
      "user-agent",    "accept",         "keep-alive",      "te",                "trailer",
      "upgrade",       "authorization",  "accept-encoding", "accept-language",   "cookie",
      "forwarded",     "via",            "origin",          "referer",           "cache-control",
      "pragma",        "range",          "x-real-ip",       "dnt"};
  for (std::string_view h : kHttpOnly) {
    if (name == h) return true;
  }
  for (std::string_view prefix : {"proxy-", "x-forwarded-", "if-", "sec-"}) {
    if (name.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

// A broker reply as an HTTP response: NATS service errors become their
// status (502 when the code is not an HTTP error status).
triggers::HttpResponse ReplyToHttp(triggers::BrokerMessage reply) {
  triggers::HttpResponse response;
  const std::string* code = triggers::FindHeader(reply.headers, "nats-service-error-code");
  if (code != nullptr) {
    uint64_t status = 0;
    response.status = ParseUint(*code, &status) && status >= 400 && status <= 599
                          ? static_cast<int>(status)
                          : 502;
    if (reply.data.empty()) {
      const std::string* text = triggers::FindHeader(reply.headers, "nats-service-error");
      return triggers::JsonErrorResponse(response.status, "service_error",
                                         text != nullptr ? *text : "the service failed");
    }
  } else {
    response.status = 200;
  }
  for (auto& [name, value] : reply.headers) {
    if (name == "Status" || name == "Description") continue;  // NATS's own status line
    response.headers.emplace_back(std::move(name), std::move(value));
  }
  response.body = std::move(reply.data);
  return response;
}

}  // namespace

void Controller::HandlePublish(triggers::ReplyToken token, const std::string& subject,
                               triggers::HttpRequest& request, bool wait_for_reply) {
  if (request.body.size() > options_.max_request_bytes) {
    return ReplyError(token, 413, "payload_too_large",
                      "event payload of " + std::to_string(request.body.size()) +
                          " bytes exceeds the limit of " + std::to_string(options_.max_request_bytes));
  }
  if (Status internal = CheckNotInternal(subject); !internal.ok()) {
    return ReplyError(token, 400, "reserved_subject", internal.message());
  }
  triggers::QueryParams params;
  Status s = triggers::ParseQuery(request.query, &params);
  uint64_t timeout_ms = 5000;
  for (const auto& [key, value] : params) {
    if (!s.ok()) break;
    if (key == "timeout" && wait_for_reply) {
      s = ParseDurationMs(value, &timeout_ms).WithContext("timeout");
      if (s.ok() && (timeout_ms == 0 || timeout_ms > 600000)) {
        s = Status::InvalidArgument("timeout must be above 0 and at most 10m");
      }
    } else {
      s = Status::InvalidArgument("unknown parameter '" + key + "'" +
                                  (wait_for_reply ? " (known: timeout)" : ""));
    }
  }
  if (!s.ok()) return ReplyError(token, 400, "invalid_argument", s.message());
  triggers::BrokerMessage message;
  message.subject = subject;
  message.data = std::move(request.body);
  for (auto& [name, value] : request.headers) {
    if (!IsHttpOnlyHeader(name)) message.headers.emplace_back(std::move(name), std::move(value));
  }
  s = triggers::NormalizeCloudEvent(&message, triggers::EventDefaults{"/wisp/api", "io.wisp.event"});
  if (!s.ok()) return ReplyError(token, 400, "invalid_event", s.message());
  if (!wait_for_reply) {
    api::PublishedEvent published;
    published.set_subject(subject);
    if (const std::string* id = triggers::FindHeader(message.headers, "ce-id")) {
      published.set_id(*id);
    }
    // Captured for durable functions first: the 202 waits until it is stored.
    s = events_->PublishEvent(std::move(message));
    if (!s.ok()) return ReplyError(token, 503, "broker_unavailable", s.message());
    const std::string json = ToJson(published);
    return AfterEventsStored([this, token, json](Status stored) {
      if (!stored.ok()) {
        return ReplyError(token, 503, "event_store_failed",
                          "the event could not be stored: " + stored.message());
      }
      ReplyJson(token, 202, json);
    });
  }
  triggers::HttpServer* server = server_.get();
  requests_->Request(
      std::move(message), timeout_ms,
      [server, token, subject, timeout_ms](Status status, triggers::BrokerMessage reply) {
        if (status.code() == Status::Code::kNotFound) {
          return server->Reply(token, triggers::JsonErrorResponse(
                                          503, "no_responders",
                                          "nothing answers requests on '" + subject + "'"));
        }
        if (status.code() == Status::Code::kTimeout) {
          return server->Reply(token, triggers::JsonErrorResponse(
                                          504, "timeout",
                                          "no reply on '" + subject + "' within " +
                                              std::to_string(timeout_ms) + " ms"));
        }
        if (!status.ok()) {
          return server->Reply(token,
                               triggers::JsonErrorResponse(503, "broker_unavailable", status.message()));
        }
        server->Reply(token, ReplyToHttp(std::move(reply)));
      });
}

void Controller::HandleServices(triggers::ReplyToken token, const triggers::HttpRequest& request) {
  triggers::QueryParams params;
  Status s = triggers::ParseQuery(request.query, &params);
  uint64_t wait_ms = 250;
  for (const auto& [key, value] : params) {
    if (!s.ok()) break;
    if (key == "wait") {
      s = ParseDurationMs(value, &wait_ms).WithContext("wait");
      if (s.ok() && wait_ms > 10000) s = Status::InvalidArgument("wait must be at most 10s");
    } else {
      s = Status::InvalidArgument("unknown parameter '" + key + "' (known: wait)");
    }
  }
  if (!s.ok()) return ReplyError(token, 400, "invalid_argument", s.message());
  triggers::BrokerMessage ask;
  ask.subject = "$SRV.INFO";
  triggers::HttpServer* server = server_.get();
  requests_->Gather(std::move(ask), wait_ms,
                    [server, token](std::vector<triggers::BrokerMessage> replies) {
                      api::ServiceList list;
                      google::protobuf::util::JsonParseOptions parse;
                      parse.ignore_unknown_fields = true;
                      for (const triggers::BrokerMessage& reply : replies) {
                        api::ServiceInfo info;
                        if (google::protobuf::util::JsonStringToMessage(reply.data, &info, parse)
                                .ok()) {
                          *list.add_services() = std::move(info);
                        }
                      }
                      std::sort(list.mutable_services()->begin(), list.mutable_services()->end(),
                                [](const api::ServiceInfo& a, const api::ServiceInfo& b) {
                                  return std::tie(a.name(), a.id()) < std::tie(b.name(), b.id());
                                });
                      triggers::HttpResponse response;
                      response.status = 200;
                      response.headers.emplace_back("Content-Type", "application/json");
                      response.body = ToJson(list);
                      server->Reply(token, std::move(response));
                    });
}

}  // namespace wisp::runtime
