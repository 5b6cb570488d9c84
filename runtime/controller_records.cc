// The controller's records: what each completed invocation leaves in the
// invocation log, GET /v1/invocations and GET /v1/functions/<name>/logs.
#include <cstdio>
#include <ctime>

#include "api.pb.h"
#include "runtime/base/ascii.h"
#include "runtime/base/time_format.h"
#include "runtime/controller.h"
#include "runtime/json_print.h"
#include "runtime/log_followers.h"
#include "runtime/trace_context.h"
#include "triggers/query.h"
#include "wisp/function.h"

namespace wisp::runtime {
namespace {

constexpr size_t kDefaultInvocationLimit = 50;
constexpr size_t kDefaultLogLimit = 100;

// Reads limit (1..max, else InvalidArgument) and the keys in *others from
// query; anything else is refused by name.
Status ParseListQuery(std::string_view query, size_t max, size_t* limit,
                      std::vector<std::pair<std::string, std::string*>> others) {
  triggers::QueryParams params;
  WISP_RETURN_IF_ERROR(triggers::ParseQuery(query, &params));
  for (const auto& [key, value] : params) {
    if (key == "limit") {
      uint64_t n = 0;
      if (!ParseUint(value, &n) || n == 0 || n > max) {
        return Status::InvalidArgument("limit must be a number from 1 to " + std::to_string(max) +
                                       ", got '" + value + "'");
      }
      *limit = static_cast<size_t>(n);
      continue;
    }
    bool known = false;
    for (auto& [name, out] : others) {
      if (key == name) {
        *out = value;
        known = true;
      }
    }
    if (!known) {
      std::string names = "limit";
      for (const auto& other : others) names += ", " + other.first;
      return Status::InvalidArgument("unknown parameter '" + key + "' (known: " + names + ")");
    }
  }
  return Status::OK();
}

}  // namespace

void Controller::Record(const std::string& name, const proto::Invoke& invoke,
                        const InvocationOutcome& outcome) {
  InvocationRecord record;
  record.id = invoke.invocation_id().empty() ? InvocationId(++invocations_started_)
                                             : invoke.invocation_id();
  record.function = name;
  record.version = outcome.version;
  record.trigger = invoke.trigger() == WISP_TRIGGER_EVENT  ? "event"
                   : invoke.trigger() == WISP_TRIGGER_CALL ? "call"
                                                           : "http";
  record.duration_us = static_cast<int64_t>(outcome.duration_ns / 1000);
  record.started_at_us = NowUnixMicros() - record.duration_us;
  record.cold = outcome.cold;
  record.trace_id.assign(invoke.trace_id());
  record.status = OutcomeStatus(outcome);
  if (!outcome.has_result) {
    record.error_code = outcome.error_code;
    record.error = outcome.error_message;
  }
  invocation_log_.Add(std::move(record));
}

void Controller::RecordLog(const std::string& name, const std::string& invocation,
                           const std::string& text) {
  LogLine line;
  line.function = name;
  line.invocation = invocation;
  line.at_us = NowUnixMicros();
  line.line = text;
  invocation_log_.AddLog(std::move(line));
}

void Controller::HandleInvocations(triggers::ReplyToken token,
                                   const triggers::HttpRequest& request) {
  size_t limit = kDefaultInvocationLimit;
  std::string function;
  std::string trace;
  Status s = ParseListQuery(request.query, 1000, &limit, {{"function", &function}, {"trace", &trace}});
  if (!s.ok()) return ReplyError(token, 400, "invalid_argument", s.message());
  if (!trace.empty() && !IsTraceId(trace)) {
    return ReplyError(token, 400, "invalid_argument",
                      "trace must be a W3C trace id (32 lower-case hex digits), got '" + trace + "'");
  }
  if (!function.empty() && !triggers::IsValidFunctionName(function)) {
    return ReplyError(token, 400, "invalid_name", "function names match ^[a-z0-9][a-z0-9_-]{0,62}$");
  }
  if (!options_.record_invocations) {
    return ReplyError(token, 404, "not_recorded", "this controller runs without invocation records");
  }
  StatusOr<std::vector<InvocationRecord>> records = invocation_log_.Invocations(function, limit, trace);
  if (!records.ok()) return ReplyError(token, 500, "storage_error", records.status().message());
  api::InvocationList list;
  for (const InvocationRecord& r : *records) {
    api::Invocation* out = list.add_invocations();
    out->set_id(r.id);
    out->set_function(r.function);
    out->set_version(r.version);
    out->set_trigger(r.trigger);
    out->set_started_at(FormatUnixMicros(r.started_at_us));
    out->set_duration_ms(static_cast<double>(r.duration_us) / 1000.0);
    out->set_cold(r.cold);
    out->set_status(r.status);
    out->set_error_code(r.error_code);
    out->set_error(r.error);
    out->set_trace_id(std::string(r.trace_id.view()));
  }
  ReplyJson(token, 200, ToJson(list));
}

void Controller::HandleLogs(triggers::ReplyToken token, const std::string& name,
                            const triggers::HttpRequest& request) {
  size_t limit = kDefaultLogLimit;
  std::string after_text;
  std::string follow_text;
  Status s = ParseListQuery(request.query, 10000, &limit,
                            {{"after", &after_text}, {"follow", &follow_text}});
  if (!s.ok()) return ReplyError(token, 400, "invalid_argument", s.message());
  if (!follow_text.empty() && follow_text != "true" && follow_text != "false") {
    return ReplyError(token, 400, "invalid_argument",
                      "follow must be true or false, got '" + follow_text + "'");
  }
  const bool follow = follow_text == "true";
  int64_t after = -1;  // the newest lines
  if (!after_text.empty()) {
    uint64_t n = 0;
    if (!ParseUint(after_text, &n) || n > static_cast<uint64_t>(INT64_MAX)) {
      return ReplyError(token, 400, "invalid_argument",
                        "after must be the seq of a line already seen, got '" + after_text + "'");
    }
    after = static_cast<int64_t>(n);
  }
  // A removed function's lines stay readable until retention trims them.
  if (!options_.record_invocations) {
    return ReplyError(token, 404, "not_recorded", "this controller runs without log records");
  }
  StatusOr<std::vector<LogLine>> lines = invocation_log_.Logs(name, after, limit);
  if (!lines.ok()) return ReplyError(token, 500, "storage_error", lines.status().message());
  if (lines->empty() && functions_.find(name) == functions_.end()) {
    return ReplyError(token, 404, "function_not_found", "no function named '" + name + "' is deployed");
  }
  if (follow) {
    s = log_followers_->Follow(token, name, *lines, after < 0 ? 0 : after);
    if (!s.ok()) return ReplyError(token, 503, "too_many_streams", s.message());
    return;
  }
  api::LogLines out;
  out.set_function(name);
  for (const LogLine& line : *lines) ToApi(line, out.add_lines());
  ReplyJson(token, 200, ToJson(out));
}

}  // namespace wisp::runtime
