#include "runtime/deploy_params.h"

#include <cctype>

#include "runtime/base/ascii.h"
#include "runtime/duration.h"
#include "runtime/schedule.h"
#include "triggers/broker.h"
#include "triggers/query.h"

namespace wisp::runtime {
namespace {

// Whether some subject matches both patterns (tokens, "*", ">").
bool PatternsOverlap(std::string_view a, std::string_view b) {
  while (true) {
    const size_t a_dot = a.find('.');
    const size_t b_dot = b.find('.');
    const std::string_view ta = a.substr(0, a_dot);
    const std::string_view tb = b.substr(0, b_dot);
    if (ta == ">" || tb == ">") return true;  // each has a token here
    if (ta != "*" && tb != "*" && ta != tb) return false;
    if (a_dot == std::string_view::npos || b_dot == std::string_view::npos) {
      return a_dot == b_dot;  // both end here
    }
    a.remove_prefix(a_dot + 1);
    b.remove_prefix(b_dot + 1);
  }
}

// Subjects a function may not subscribe to: the controller's own traffic
// (reply inboxes, the service API, other functions' wisp.fn.<name>, calls
// forwarded between the nodes of a cluster on wisp.fwd., dead letters
// stored on wisp.dead.<name> and replayed on wisp.replay.<name>) and the
// catch-all ">", which would also feed the function its own events.
Status CheckNotReserved(const std::string& subject) {
  for (std::string_view reserved : {"_INBOX.", "$", "wisp.fn.", "wisp.fwd."}) {
    if (subject.rfind(reserved, 0) == 0) {
      return Status::InvalidArgument("subscribe: '" + subject + "' is reserved (subjects starting with " +
                                     std::string(reserved) + " carry wisp's own traffic)");
    }
  }
  WISP_RETURN_IF_ERROR(CheckNotInternal(subject).WithContext("subscribe"));
  if (subject == ">" || subject == "*.>" ) {
    return Status::InvalidArgument("subscribe: '" + subject +
                                   "' would take every event, the function's own included");
  }
  return Status::OK();
}

}  // namespace

Status CheckNotInternal(std::string_view subject) {
  for (std::string_view internal : {"wisp.dead.>", "wisp.replay.>"}) {
    if (PatternsOverlap(subject, internal)) {
      return Status::InvalidArgument(
          "'" + std::string(subject) + "' is reserved (subjects starting with " +
          std::string(internal.substr(0, internal.size() - 1)) +
          " carry wisp's own dead letters and replays)");
    }
  }
  return Status::OK();
}

namespace {

// KEY=VALUE for the config map: KEY like a shell variable, not one of wisp's
// own (WISP_*), VALUE without NUL; bounded in count and size.
Status AddEnv(const std::string& pair, FunctionRecord* record) {
  const size_t eq = pair.find('=');
  const std::string key = pair.substr(0, eq);
  if (eq == std::string::npos || key.empty() || key.size() > 128 ||
      std::isdigit(static_cast<unsigned char>(key[0]))) {
    return Status::InvalidArgument("env must be KEY=VALUE with a KEY of letters, digits and _, got '" +
                                   pair.substr(0, 64) + "'");
  }
  for (char c : key) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') {
      return Status::InvalidArgument("env key '" + key + "' may hold only letters, digits and _");
    }
  }
  if (key.rfind("WISP_", 0) == 0) {
    return Status::InvalidArgument("env key '" + key + "' is reserved (WISP_* are set by wisp)");
  }
  const std::string value = pair.substr(eq + 1);
  if (value.find('\0') != std::string::npos) {
    return Status::InvalidArgument("env value of " + key + " contains a NUL byte");
  }
  size_t total = pair.size();
  for (const auto& [k, v] : record->env) total += k.size() + v.size() + 1;
  if (record->env.size() >= kMaxEnvEntries || total > kMaxEnvBytes) {
    return Status::InvalidArgument("the config map is limited to " + std::to_string(kMaxEnvEntries) +
                                   " entries and " + std::to_string(kMaxEnvBytes) + " bytes");
  }
  record->env[key] = value;
  return Status::OK();
}

}  // namespace

bool IsSemver(std::string_view text) {
  const size_t dash = text.find('-');
  std::string_view core = text.substr(0, dash);
  int parts = 0;
  while (true) {
    const size_t dot = core.find('.');
    std::string_view number = core.substr(0, dot);
    uint64_t ignored = 0;
    if (!ParseUint(number, &ignored) || (number.size() > 1 && number[0] == '0')) return false;
    ++parts;
    if (dot == std::string_view::npos) break;
    core = core.substr(dot + 1);
  }
  if (parts != 3) return false;
  if (dash == std::string_view::npos) return true;
  std::string_view pre = text.substr(dash + 1);
  if (pre.empty()) return false;
  for (char c : pre) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') return false;
  }
  return true;
}

std::string NextPatch(const std::string& previous) {
  if (!IsSemver(previous)) return "0.0.1";
  const size_t dash = previous.find('-');
  const std::string core = previous.substr(0, dash);
  if (dash != std::string::npos) return core;
  const size_t last_dot = core.rfind('.');
  uint64_t patch = 0;
  (void)ParseUint(std::string_view(core).substr(last_dot + 1), &patch);
  if (patch == UINT64_MAX) return previous;
  return core.substr(0, last_dot + 1) + std::to_string(patch + 1);
}

Status ApplyDeployQuery(std::string_view query, FunctionRecord* record) {
  triggers::QueryParams params;
  WISP_RETURN_IF_ERROR(triggers::ParseQuery(query, &params));
  std::string retry_given;  // a retry parameter, which needs durable
  for (const auto& [key, value] : params) {
    if (key == "timeout") {
      WISP_RETURN_IF_ERROR(ParseDurationMs(value, &record->timeout_ms).WithContext("timeout"));
      if (record->timeout_ms == 0) return Status::InvalidArgument("timeout must be above 0");
    } else if (key == "idle") {
      WISP_RETURN_IF_ERROR(ParseDurationMs(value, &record->idle_ms).WithContext("idle"));
    } else if (key == "max_workers") {
      uint64_t n = 0;
      if (!ParseUint(value, &n) || n == 0 || n > kMaxWorkersLimit) {
        return Status::InvalidArgument("max_workers must be a number from 1 to " +
                                       std::to_string(kMaxWorkersLimit) + ", got '" + value + "'");
      }
      record->max_workers = static_cast<uint32_t>(n);
    } else if (key == "subscribe") {
      WISP_RETURN_IF_ERROR(triggers::ValidateSubscribeSubject(value).WithContext("subscribe"));
      WISP_RETURN_IF_ERROR(CheckNotReserved(value));
      if (record->subjects.size() >= kMaxSubjectsPerFunction) {
        return Status::InvalidArgument("at most " + std::to_string(kMaxSubjectsPerFunction) +
                                       " subjects per function");
      }
      record->subjects.push_back(value);
    } else if (key == "private") {
      if (value != "true" && value != "false" && !value.empty()) {
        return Status::InvalidArgument("private must be true or false, got '" + value + "'");
      }
      record->is_private = value != "false";
    } else if (key == "version") {
      if (!IsSemver(value) || value.size() > 64) {
        return Status::InvalidArgument("version must be semver (MAJOR.MINOR.PATCH), got '" +
                                       value + "'");
      }
      record->version = value;
    } else if (key == "env") {
      WISP_RETURN_IF_ERROR(AddEnv(value, record));
    } else if (key == "durable") {
      if (value != "true" && value != "false" && !value.empty()) {
        return Status::InvalidArgument("durable must be true or false, got '" + value + "'");
      }
      record->durable = value != "false";
    } else if (key == "max_attempts") {
      uint64_t n = 0;
      if (!ParseUint(value, &n) || n == 0 || n > kMaxAttemptsLimit) {
        return Status::InvalidArgument("max_attempts must be a number from 1 to " +
                                       std::to_string(kMaxAttemptsLimit) + ", got '" + value + "'");
      }
      record->max_attempts = static_cast<uint32_t>(n);
      retry_given = key;
    } else if (key == "backoff" || key == "max_backoff") {
      uint64_t ms = 0;
      WISP_RETURN_IF_ERROR(ParseDurationMs(value, &ms).WithContext(key));
      if (ms == 0 || ms > kMaxBackoffMs) {
        return Status::InvalidArgument(key + " must be above 0 and at most 24h, got '" + value + "'");
      }
      (key == "backoff" ? record->backoff_ms : record->max_backoff_ms) = ms;
      retry_given = key;
    } else if (key == "every") {
      uint64_t ms = 0;
      WISP_RETURN_IF_ERROR(ParseDurationMs(value, &ms).WithContext("every"));
      if (ms < kMinEveryMs || ms > kMaxBackoffMs) {
        return Status::InvalidArgument("every must be from 100ms to 24h, got '" + value + "'");
      }
      record->every_ms = ms;
    } else if (key == "cron") {
      StatusOr<CronExpr> expr = ParseCron(value);
      if (!expr.ok()) return expr.status();
      record->cron = value;
    } else if (key == "dead_letter") {
      WISP_RETURN_IF_ERROR(triggers::ValidatePublishSubject(value).WithContext("dead_letter"));
      WISP_RETURN_IF_ERROR(CheckNotInternal(value).WithContext("dead_letter"));
      record->dead_letter = value;
      retry_given = key;
    } else if (IsLimitKey(key)) {
      WISP_RETURN_IF_ERROR(ApplyLimit(key, value, &record->limits));
    } else {
      return Status::InvalidArgument(
          "unknown deploy parameter '" + key +
          "' (known: timeout, idle, max_workers, subscribe, version, private, env, durable, "
          "max_attempts, backoff, max_backoff, dead_letter, every, cron, " + kLimitKeys + ")");
    }
  }
  if (!retry_given.empty() && !record->durable) {
    return Status::InvalidArgument(retry_given +
                                   " applies to durable triggers: add durable=true (--durable)");
  }
  if (record->every_ms > 0 && !record->cron.empty()) {
    return Status::InvalidArgument("give every or cron, not both");
  }
  if (record->durable && record->subjects.empty() && record->every_ms == 0 &&
      record->cron.empty()) {
    return Status::InvalidArgument("durable=true needs at least one subscribe subject or a "
                                   "schedule (every, cron)");
  }
  if (record->backoff_ms > record->max_backoff_ms) {
    return Status::InvalidArgument("backoff (" + std::to_string(record->backoff_ms) +
                                   " ms) is longer than max_backoff (" +
                                   std::to_string(record->max_backoff_ms) + " ms)");
  }
  return Status::OK();
}

}  // namespace wisp::runtime
