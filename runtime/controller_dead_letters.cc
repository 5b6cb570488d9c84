// The controller's dead-letter endpoints: GET /v1/functions/<name>/dead-letters
// and POST /v1/functions/<name>/replay.
#include <cstdio>

#include "api.pb.h"
#include "runtime/base/ascii.h"
#include "runtime/base/time_format.h"
#include "runtime/controller.h"
#include "runtime/json_print.h"
#include "triggers/query.h"

namespace wisp::runtime {
namespace {

constexpr size_t kDefaultDeadLetterLimit = 100;
constexpr size_t kMaxDeadLetterLimit = 1000;

// Reads the one numeric parameter allowed (name, 1..max) from query.
Status ParseOneNumber(std::string_view query, const std::string& name, uint64_t max,
                      uint64_t* out) {
  triggers::QueryParams params;
  WISP_RETURN_IF_ERROR(triggers::ParseQuery(query, &params));
  for (const auto& [key, value] : params) {
    if (key != name) {
      return Status::InvalidArgument("unknown parameter '" + key + "' (known: " + name + ")");
    }
    if (!ParseUint(value, out) || *out == 0 || *out > max) {
      return Status::InvalidArgument(name + " must be a number from 1 to " + std::to_string(max) +
                                     ", got '" + value + "'");
    }
  }
  return Status::OK();
}

}  // namespace

void Controller::MoveLocalDeadLetters() {
  if (!local_dead_letters_left_ || dead_letters_moving_ > 0 || shutting_down_) return;
  local_dead_letters_left_ = false;
  for (const auto& entry : functions_) {
    const std::string& name = entry.first;
    StatusOr<std::vector<DeadLetter>> letters =
        event_queue_->DeadLetters(name, kMaxDeadLetterLimit);
    if (!letters.ok()) {
      std::fprintf(stderr, "wisp: %s\n", letters.status().ToString().c_str());
      continue;
    }
    for (DeadLetter& d : *letters) {
      local_dead_letters_left_ = true;  // looked at again once these are answered
      ++dead_letters_moving_;
      jetstream_->dead_letters().Add(
          name, std::move(d.message), d.attempts, d.error_code, d.error,
          "local-" + std::to_string(d.id), [this, name, id = d.id](Status stored) {
            --dead_letters_moving_;
            if (!stored.ok()) {
              std::fprintf(stderr, "wisp: %s: moving dead letter %lld to JetStream: %s\n",
                           name.c_str(), static_cast<long long>(id), stored.ToString().c_str());
              return;
            }
            Status removed = event_queue_->RemoveDeadLetter(name, id);
            if (!removed.ok()) std::fprintf(stderr, "wisp: %s\n", removed.ToString().c_str());
          });
    }
  }
}

void Controller::HandleDeadLetters(triggers::ReplyToken token, const std::string& name,
                                   const triggers::HttpRequest& request) {
  if (functions_.count(name) == 0) {
    return ReplyError(token, 404, "function_not_found", "no function named '" + name + "' is deployed");
  }
  uint64_t limit = kDefaultDeadLetterLimit;
  Status s = ParseOneNumber(request.query, "limit", kMaxDeadLetterLimit, &limit);
  if (!s.ok()) return ReplyError(token, 400, "invalid_argument", s.message());
  api::DeadLetterList list;
  list.set_function(name);
  if (jetstream_ != nullptr) {
    return jetstream_->dead_letters().List(
        name, limit, [this, token, list](StatusOr<std::vector<api::DeadLetter>> letters) mutable {
          if (!letters.ok()) {
            return ReplyError(token, 503, "jetstream_unavailable", letters.status().message());
          }
          for (api::DeadLetter& letter : *letters) *list.add_dead_letters() = std::move(letter);
          ReplyJson(token, 200, ToJson(list));
        });
  }
  if (event_queue_ != nullptr) {
    StatusOr<std::vector<DeadLetter>> letters = event_queue_->DeadLetters(name, limit);
    if (!letters.ok()) return ReplyError(token, 500, "storage_error", letters.status().message());
    for (DeadLetter& d : *letters) {
      api::DeadLetter* out = list.add_dead_letters();
      out->set_id(d.id);
      out->set_subject(std::move(d.message.subject));
      for (auto& [header, value] : d.message.headers) (*out->mutable_headers())[header] = value;
      out->set_data(std::move(d.message.data));
      out->set_attempts(d.attempts);
      out->set_error_code(std::move(d.error_code));
      out->set_error(std::move(d.error));
      out->set_at(FormatUnixMicros(d.at_ms * 1000));
    }
  }
  ReplyJson(token, 200, ToJson(list));
}

void Controller::HandleReplay(triggers::ReplyToken token, const std::string& name,
                              const triggers::HttpRequest& request) {
  if (functions_.count(name) == 0) {
    return ReplyError(token, 404, "function_not_found", "no function named '" + name + "' is deployed");
  }
  uint64_t id = 0;
  Status s = ParseOneNumber(request.query, "id", INT64_MAX, &id);
  if (!s.ok()) return ReplyError(token, 400, "invalid_argument", s.message());
  if (jetstream_ != nullptr) {
    return jetstream_->dead_letters().Replay(
        name, static_cast<int64_t>(id), JetStreamDelivery::ReplaySubject(name),
        [this, token, name](StatusOr<size_t> replayed) {
          if (!replayed.ok()) {
            const bool missing = replayed.status().code() == Status::Code::kNotFound;
            return ReplyError(token, missing ? 404 : 503,
                              missing ? "dead_letter_not_found" : "jetstream_unavailable",
                              replayed.status().message());
          }
          api::Replayed out;
          out.set_function(name);
          out.set_replayed(*replayed);
          ReplyJson(token, 200, ToJson(out));
        });
  }
  StatusOr<size_t> replayed = durable_->Replay(name, static_cast<int64_t>(id));
  if (!replayed.ok()) {
    const bool missing = replayed.status().code() == Status::Code::kNotFound;
    return ReplyError(token, missing ? 404 : 500, missing ? "dead_letter_not_found" : "storage_error",
                      replayed.status().message());
  }
  api::Replayed out;
  out.set_function(name);
  out.set_replayed(*replayed);
  const std::string json = ToJson(out);
  event_queue_->AfterCommit([this, token, json](Status stored) {
    if (!stored.ok()) {
      return ReplyError(token, 503, "event_store_failed", "the replay was not stored: " + stored.message());
    }
    ReplyJson(token, 200, json);
  });
}

}  // namespace wisp::runtime
