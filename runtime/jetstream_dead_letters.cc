#include "runtime/jetstream_dead_letters.h"

#include <chrono>
#include <charconv>
#include <cstdio>
#include <utility>

#include "jetstream.pb.h"
#include "runtime/base/ascii.h"
#include "runtime/jetstream_api.h"
#include "runtime/json_print.h"

namespace wisp::runtime {
namespace {

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The headers a dead letter carries besides the event's own.
constexpr const char* kSubjectHeader = "wisp-subject";
constexpr const char* kAttemptsHeader = "wisp-attempts";
constexpr const char* kCodeHeader = "wisp-error-code";
constexpr const char* kErrorHeader = "wisp-error";

// A stored letter as the API shows it: the event as it was published, and
// why it failed.
api::DeadLetter ToDeadLetter(const jetstream::StoredMessage& stored) {
  api::DeadLetter letter;
  letter.set_id(static_cast<int64_t>(stored.seq()));
  letter.set_data(stored.data());
  letter.set_at(stored.time());
  for (auto& [name, value] : ParseHeaderBlock(stored.hdrs())) {
    if (name == kSubjectHeader) {
      letter.set_subject(value);
    } else if (name == kAttemptsHeader) {
      uint32_t attempts = 0;
      (void)std::from_chars(value.data(), value.data() + value.size(), attempts);
      letter.set_attempts(attempts);
    } else if (name == kCodeHeader) {
      letter.set_error_code(value);
    } else if (name == kErrorHeader) {
      letter.set_error(value);
    } else if (name != "Nats-Msg-Id") {
      (*letter.mutable_headers())[name] = value;
    }
  }
  return letter;
}

Status Unreadable(const triggers::BrokerMessage& reply) {
  return Status::Corruption("JetStream dead letters: unreadable reply '" +
                            reply.data.substr(0, 200) + "'");
}

// What the read of one stored message ended with: OK and *stored, NotFound
// when there is none, or the failure.
Status ReadStored(Status s, const triggers::BrokerMessage& reply, jetstream::StoredMessage* stored) {
  if (!s.ok()) return s;
  jetstream::MsgGetReply got;
  if (!ParseJetStreamReply(reply.data, &got)) {
    return Unreadable(reply);
  }
  if (got.has_error()) {
    if (got.error().err_code() == kJsNoMessageFound ||
        got.error().err_code() == kJsStreamNotFound) {
      return Status::NotFound("no such dead letter");
    }
    return JetStreamFailure("read a dead letter", got.error());
  }
  *stored = std::move(*got.mutable_message());
  return Status::OK();
}

}  // namespace

struct JetStreamDeadLetters::Listing {
  std::string subject;
  size_t limit = 0;
  uint64_t next_seq = 1;
  std::vector<api::DeadLetter> letters;
  ListDone done;
};

struct JetStreamDeadLetters::Replaying {
  std::string name;
  std::string replay_subject;
  std::vector<api::DeadLetter> letters;
  size_t next = 0;
  ReplayDone done;
};

JetStreamDeadLetters::JetStreamDeadLetters(BrokerRequests* requests) : requests_(requests) {}

void JetStreamDeadLetters::Api(const std::string& subject, std::string body,
                               std::function<void(Status, triggers::BrokerMessage)> done) {
  triggers::BrokerMessage request;
  request.subject = subject;
  request.data = std::move(body);
  JetStreamRequest(requests_, alive_, std::move(request), kApiTimeoutMs, std::move(done));
}

void JetStreamDeadLetters::EnsureStream(std::function<void(Status)> done) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  if (stream_ready_) return done(Status::OK());
  waiting_for_stream_.push_back(std::move(done));
  if (ensuring_) return;
  ensuring_ = true;
  // CREATE answers success when the stream exists with this configuration.
  const std::string config =
      std::string("{\"name\":\"") + kStream + "\",\"subjects\":[" +
      JsonQuote(std::string(kSubjectPrefix) + ">") +
      "],\"retention\":\"limits\",\"storage\":\"file\",\"discard\":\"old\",\"max_age\":" +
      std::to_string(kMaxAgeNs) + ",\"max_msgs_per_subject\":" + std::to_string(kMaxPerFunction) +
      ",\"duplicate_window\":120000000000,\"num_replicas\":" + std::to_string(replicas_) + "}";
  Api(std::string("$JS.API.STREAM.CREATE.") + kStream, config,
      [this](Status s, triggers::BrokerMessage reply) {
        jetstream::StreamInfo info;
        if (s.ok() && !ParseJetStreamReply(reply.data, &info)) {
          s = Unreadable(reply);
        }
        // Made by another controller with other settings: it is there.
        if (s.ok() && info.has_error() && info.error().err_code() != kJsStreamNameInUse) {
          s = JetStreamFailure("create the dead-letter stream", info.error());
        }
        ensuring_ = false;
        stream_ready_ = s.ok();
        std::vector<std::function<void(Status)>> waiting = std::move(waiting_for_stream_);
        waiting_for_stream_.clear();
        for (auto& waiter : waiting) waiter(s);
      });
}

void JetStreamDeadLetters::Add(const std::string& name, triggers::BrokerMessage event,
                               uint32_t attempts, const std::string& code, const std::string& error,
                               const std::string& duplicate_id, std::function<void(Status)> done) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  triggers::BrokerMessage letter;
  letter.subject = Subject(name);
  letter.data = std::move(event.data);
  for (auto& [header, value] : event.headers) {
    if (EqualsIgnoreCase(header, "nats-msg-id")) continue;  // the event's own
    letter.headers.emplace_back(std::move(header), std::move(value));
  }
  letter.headers.emplace_back(kSubjectHeader, std::move(event.subject));
  letter.headers.emplace_back(kAttemptsHeader, std::to_string(attempts));
  letter.headers.emplace_back(kCodeHeader, code);
  letter.headers.emplace_back(kErrorHeader, error.substr(0, 1024));
  if (!duplicate_id.empty()) {
    letter.headers.emplace_back("Nats-Msg-Id", "dead-" + name + "-" + duplicate_id);
  }
  EnsureStream([this, letter = std::move(letter), done = std::move(done)](Status s) mutable {
    if (!s.ok()) return done(s);
    JetStreamRequest(requests_, alive_, std::move(letter), kApiTimeoutMs,
                     [this, done = std::move(done)](Status s, triggers::BrokerMessage reply) {
                       jetstream::PubAck ack;
                       counts_read_ms_ = INT64_MIN / 2;  // stale
                       s = PubAckStatus(std::move(s), reply.data, "store a dead letter", &ack);
                       // The stream may have gone (deleted by hand): make sure again next time.
                       if (!s.ok()) stream_ready_ = false;
                       done(std::move(s));
                     });
  });
}

uint64_t JetStreamDeadLetters::Count(const std::string& name) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  if (SteadyMs() - counts_read_ms_ >= kCountsMaxAgeMs) ReadCounts();
  auto it = counts_.find(Subject(name));
  return it == counts_.end() ? 0 : it->second;
}

void JetStreamDeadLetters::ReadCounts() {
  if (reading_counts_) return;
  reading_counts_ = true;
  counts_read_ms_ = SteadyMs();
  Api(std::string("$JS.API.STREAM.INFO.") + kStream,
      "{\"subjects_filter\":" + JsonQuote(std::string(kSubjectPrefix) + ">") + "}",
      [this](Status s, triggers::BrokerMessage reply) {
        reading_counts_ = false;
        jetstream::StreamInfoWithState info;
        if (!s.ok() || !ParseJetStreamReply(reply.data, &info)) return;
        if (info.has_error()) {
          if (info.error().err_code() == kJsStreamNotFound) counts_.clear();
          return;
        }
        counts_ = std::map<std::string, uint64_t>(info.state().subjects().begin(),
                                                  info.state().subjects().end());
      });
}

void JetStreamDeadLetters::List(const std::string& name, size_t limit, ListDone done) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  auto listing = std::make_shared<Listing>();
  listing->subject = Subject(name);
  listing->limit = limit;
  listing->done = std::move(done);
  NextLetter(std::move(listing));
}

void JetStreamDeadLetters::NextLetter(std::shared_ptr<Listing> listing) {
  if (listing->letters.size() >= listing->limit) {
    return listing->done(std::move(listing->letters));
  }
  Api(std::string("$JS.API.STREAM.MSG.GET.") + kStream,
      "{\"seq\":" + std::to_string(listing->next_seq) +
          ",\"next_by_subj\":" + JsonQuote(listing->subject) + "}",
      [this, listing](Status s, triggers::BrokerMessage reply) {
        jetstream::StoredMessage stored;
        s = ReadStored(std::move(s), reply, &stored);
        if (s.code() == Status::Code::kNotFound) return listing->done(std::move(listing->letters));
        if (!s.ok()) return listing->done(s);
        listing->next_seq = stored.seq() + 1;
        listing->letters.push_back(ToDeadLetter(stored));
        NextLetter(listing);
      });
}

void JetStreamDeadLetters::Replay(const std::string& name, int64_t id,
                                  const std::string& replay_subject, ReplayDone done) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  auto replaying = std::make_shared<Replaying>();
  replaying->name = name;
  replaying->replay_subject = replay_subject;
  replaying->done = std::move(done);
  if (id == 0) {
    return List(name, kMaxReplayed,
                [this, replaying](StatusOr<std::vector<api::DeadLetter>> letters) {
                  if (!letters.ok()) return replaying->done(letters.status());
                  replaying->letters = std::move(*letters);
                  ReplayNext(replaying);
                });
  }
  Api(std::string("$JS.API.STREAM.MSG.GET.") + kStream,
      "{\"seq\":" + std::to_string(id) + "}",
      [this, replaying, id](Status s, triggers::BrokerMessage reply) {
        jetstream::StoredMessage stored;
        s = ReadStored(std::move(s), reply, &stored);
        if (s.ok() && stored.subject() != Subject(replaying->name)) {
          s = Status::NotFound("no such dead letter");
        }
        if (s.code() == Status::Code::kNotFound) {
          return replaying->done(Status::NotFound(replaying->name + " has no dead letter " +
                                                  std::to_string(id)));
        }
        if (!s.ok()) return replaying->done(s);
        replaying->letters.push_back(ToDeadLetter(stored));
        ReplayNext(replaying);
      });
}

// Says how far a replay got before it failed.
std::string JetStreamDeadLetters::Progress(const Replaying& replaying) {
  return "replayed " + std::to_string(replaying.next) + " of " +
         std::to_string(replaying.letters.size()) + " dead letters of " + replaying.name +
         " before";
}

// One letter at a time: published, stored, then deleted.
void JetStreamDeadLetters::ReplayNext(std::shared_ptr<Replaying> replaying) {
  if (replaying->next > 0) counts_read_ms_ = INT64_MIN / 2;  // stale
  if (replaying->next >= replaying->letters.size()) {
    return replaying->done(replaying->letters.size());
  }
  const api::DeadLetter& letter = replaying->letters[replaying->next];
  triggers::BrokerMessage event;
  event.subject = replaying->replay_subject;
  event.data = letter.data();
  // The map is sorted by name, as the event's headers were when received.
  for (const auto& [header, value] : letter.headers()) event.headers.emplace_back(header, value);
  event.headers.emplace_back(kSubjectHeader, letter.subject());
  event.headers.emplace_back("Nats-Msg-Id", "replay-" + std::to_string(letter.id()));
  const int64_t seq = letter.id();
  JetStreamRequest(
      requests_, alive_, std::move(event), kApiTimeoutMs,
      [this, replaying, seq](Status s, triggers::BrokerMessage reply) {
        jetstream::PubAck ack;
        s = PubAckStatus(std::move(s), reply.data, "replay a dead letter", &ack);
        // A duplicate was not stored: a replay of this letter within the
        // duplicate window (then it ran already), or an event published with
        // the same id. The letter stays; replaying it again later stores it.
        if (s.ok() && ack.duplicate()) {
          s = Status::Unavailable("JetStream took the replay of dead letter " +
                                  std::to_string(seq) +
                                  " for a duplicate (replayed within the last 2 minutes?); "
                                  "it is kept");
        }
        if (!s.ok()) return replaying->done(s.WithContext(Progress(*replaying)));
        Api(std::string("$JS.API.STREAM.MSG.DELETE.") + kStream,
            "{\"seq\":" + std::to_string(seq) + "}",
            [this, replaying](Status s, triggers::BrokerMessage reply) {
              jetstream::MsgDeleteReply deleted;
              if (s.ok() && !ParseJetStreamReply(reply.data, &deleted)) {
                s = Unreadable(reply);
              }
              // Deleted meanwhile by another replay: that one ran it.
              if (s.ok() && deleted.has_error() && deleted.error().err_code() != kJsNoMessageFound) {
                s = JetStreamFailure("delete a replayed dead letter", deleted.error());
              }
              if (!s.ok()) return replaying->done(s.WithContext(Progress(*replaying)));
              ++replaying->next;
              ReplayNext(replaying);
            });
      });
}

}  // namespace wisp::runtime
