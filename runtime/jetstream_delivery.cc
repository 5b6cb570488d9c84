#include "runtime/jetstream_delivery.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "jetstream.pb.h"
#include "loader/artifact_store.h"
#include "runtime/base/check.h"
#include "runtime/base/time_format.h"
#include "runtime/base/uv_timer.h"
#include "runtime/event_triggers.h"
#include "runtime/jetstream_api.h"
#include "runtime/json_print.h"
#include "runtime/trace_context.h"
#include "triggers/cloudevents.h"
#include "wisp/function.h"
#include "worker.pb.h"

namespace wisp::runtime {
namespace {


std::vector<std::string_view> Tokens(std::string_view subject) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t dot = subject.find('.', start);
    out.push_back(subject.substr(start, dot - start));
    if (dot == std::string_view::npos) return out;
    start = dot + 1;
  }
}

std::string JsonArray(const std::set<std::string>& items) {
  std::string out = "[";
  for (const std::string& item : items) {
    if (out.size() > 1) out += ',';
    out += JsonQuote(item);
  }
  return out + "]";
}

}  // namespace

bool JetStreamDelivery::Covers(std::string_view a, std::string_view b) {
  const std::vector<std::string_view> ta = Tokens(a);
  const std::vector<std::string_view> tb = Tokens(b);
  for (size_t i = 0; i < ta.size(); ++i) {
    if (ta[i] == ">") return i < tb.size();
    if (i >= tb.size()) return false;
    if (tb[i] == ">") return false;
    if (ta[i] != "*" && ta[i] != tb[i]) return false;
  }
  return ta.size() == tb.size();
}

namespace {

// Token at + offset of a JetStream ack subject as a number, 0 if it is not
// one: $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>,
// or with <domain>.<account hash> after ACK (and a token at the end);
// offset 0 is <delivered>.
template <typename Number>
Number AckSubjectNumber(std::string_view ack_subject, size_t offset) {
  if (ack_subject.rfind("$JS.ACK.", 0) != 0) return 0;
  const std::vector<std::string_view> t = Tokens(ack_subject);
  const size_t at = t.size() == 9 ? 4 : t.size() >= 11 ? 6 : 0;
  Number n = 0;
  if (at == 0 ||
      std::from_chars(t[at + offset].data(), t[at + offset].data() + t[at + offset].size(), n)
              .ec != std::errc()) {
    return 0;
  }
  return n;
}

}  // namespace

uint32_t JetStreamDelivery::DeliveryCount(std::string_view ack_subject) {
  return AckSubjectNumber<uint32_t>(ack_subject, 0);
}

uint64_t JetStreamDelivery::StreamSequence(std::string_view ack_subject) {
  return AckSubjectNumber<uint64_t>(ack_subject, 1);
}

JetStreamDelivery::JetStreamDelivery(uv_loop_t* loop, triggers::Broker* broker,
                                     BrokerRequests* requests, EventTriggers* events,
                                     DispatcherLookup lookup,
                                     std::function<size_t(const std::string&)> capacity)
    : loop_(loop),
      broker_(broker),
      requests_(requests),
      events_(events),
      lookup_(std::move(lookup)),
      capacity_(std::move(capacity)),
      inbox_prefix_(broker->NewInbox()),
      retry_timer_(new uv_timer_t),
      pull_watchdog_(new uv_timer_t),
      dead_letters_(requests) {
  uv_timer_init(loop_, retry_timer_);
  retry_timer_->data = this;
  uv_timer_init(loop_, pull_watchdog_);
  pull_watchdog_->data = this;
  uv_timer_start(
      pull_watchdog_,
      [](uv_timer_t* timer) { static_cast<JetStreamDelivery*>(timer->data)->OnTick(); },
      kPullCheckMs, kPullCheckMs);
}

JetStreamDelivery::~JetStreamDelivery() {
  WISP_CHECK(retry_timer_ == nullptr && pull_watchdog_ == nullptr);
}

void JetStreamDelivery::OnTick() {
  if (stopped_) return;
  ReplaceLostPulls();
  RenewLeases();
  RetryDeadLetters();
}

void JetStreamDelivery::RenewLeases() {
  const uint64_t now = uv_now(loop_);
  for (auto& [name, binding] : bindings_) {
    const uint64_t renew_after = binding.ack_wait_ms / 3;
    for (auto& [ack, renewed] : binding.held) {
      if (now - renewed < renew_after) continue;
      renewed = now;
      ++counters_.leases_renewed;
      Acknowledge(ack, "+WPI");
    }
  }
}

void JetStreamDelivery::ReplaceLostPulls() {
  if (stopped_) return;
  const uint64_t now = uv_now(loop_);
  for (auto& [name, binding] : bindings_) {
    for (auto& [durable, consumer] : binding.consumers) {
      if (!consumer->pulling || now < consumer->pull_given_up_ms) continue;
      ++counters_.lost_pulls;
      std::fprintf(stderr,
                   "wisp: jetstream: the pull for %s never ended (its server or the consumer's "
                   "leader changed); pulling again\n",
                   durable.c_str());
      consumer->pulling = false;
      consumer->answered = false;
      consumer->requested = 0;
      Pull(consumer.get());
    }
  }
}

void JetStreamDelivery::RetryCb(uv_timer_t* timer) {
  auto* self = static_cast<JetStreamDelivery*>(timer->data);
  self->SyncStream();  // creates what is missing once the stream is there
  for (auto& [name, binding] : self->bindings_) self->PullAll(name);
}

void JetStreamDelivery::SyncFailed(const Status& s) {
  ++counters_.api_errors;
  std::fprintf(stderr, "wisp: jetstream: %s (trying again in %llums)\n", s.ToString().c_str(),
               static_cast<unsigned long long>(kRetryMs));
  if (!stopped_ && !uv_is_active(reinterpret_cast<uv_handle_t*>(retry_timer_))) {
    uv_timer_start(retry_timer_, RetryCb, kRetryMs, 0);
  }
}

void JetStreamDelivery::WhenReady(const std::string& name, std::function<void(Status)> done) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  auto it = bindings_.find(name);
  if (it == bindings_.end()) return done(Status::OK());
  it->second.ready.push_back(std::move(done));
  CheckReady(name);
}

void JetStreamDelivery::CheckReady(const std::string& name) {
  auto it = bindings_.find(name);
  if (it == bindings_.end() || it->second.ready.empty()) return;
  Status result;
  for (auto& [durable, consumer] : it->second.consumers) {
    if (consumer->created) continue;
    if (consumer->failed.ok()) return;  // still on its way
    result = consumer->failed;
  }
  std::vector<std::function<void(Status)>> ready = std::move(it->second.ready);
  it->second.ready.clear();
  for (auto& done : ready) done(result);
}

void JetStreamDelivery::Api(const std::string& subject, std::string body,
                            std::function<void(Status, triggers::BrokerMessage)> done) {
  triggers::BrokerMessage request;
  request.subject = subject;
  request.data = std::move(body);
  JetStreamRequest(requests_, alive_, std::move(request), kApiTimeoutMs, std::move(done));
}

std::set<std::string> JetStreamDelivery::WantedSubjects() const {
  std::set<std::string> wanted;
  for (const auto& [name, binding] : bindings_) {
    wanted.insert(binding.subjects.begin(), binding.subjects.end());
  }
  return wanted;
}

void JetStreamDelivery::Bind(const std::string& name, std::vector<std::string> subjects,
                             DeliveryPolicy policy, uint64_t lease_ms) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  if (policy.dead_letter_subject.empty()) policy.dead_letter_subject = "wisp.dlq." + name;
  Binding& binding = bindings_[name];
  binding.subjects = std::move(subjects);
  binding.subjects.push_back(ReplaySubject(name));
  binding.policy = std::move(policy);
  const bool lease_changed = binding.ack_wait_ms != lease_ms;
  binding.ack_wait_ms = lease_ms;
  // Consumers for subjects it no longer has go; new ones are made once the
  // stream holds the subjects.
  std::map<std::string, std::unique_ptr<Consumer>> kept;
  for (const std::string& subject : binding.subjects) {
    const std::string durable = "wisp-" + name + "-" + loader::Sha256Hex(subject).substr(0, 8);
    auto it = binding.consumers.find(durable);
    if (it != binding.consumers.end()) {
      // A new lease is set by creating it again (an update).
      if (lease_changed) it->second->created = false;
      it->second->failed = Status::OK();
      kept[durable] = std::move(it->second);
      binding.consumers.erase(it);
      continue;
    }
    auto consumer = std::make_unique<Consumer>();
    consumer->function = name;
    consumer->durable = durable;
    consumer->subject = subject;
    consumer->inbox = inbox_prefix_ + "." + durable;
    kept[durable] = std::move(consumer);
  }
  for (auto& [durable, gone] : binding.consumers) {
    if (gone->subscription != 0) broker_->Unsubscribe(gone->subscription);
    DeleteConsumer(durable);
  }
  binding.consumers = std::move(kept);
  SyncStream();
  CheckReady(name);
}

void JetStreamDelivery::Remove(const std::string& name) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  auto it = bindings_.find(name);
  if (it == bindings_.end()) return;
  for (auto& [durable, consumer] : it->second.consumers) {
    if (consumer->subscription != 0) broker_->Unsubscribe(consumer->subscription);
    DeleteConsumer(durable);
  }
  std::vector<std::function<void(Status)>> ready = std::move(it->second.ready);
  bindings_.erase(it);
  for (auto& done : ready) done(Status::NotFound(name + " was removed"));
}

void JetStreamDelivery::DeleteConsumer(const std::string& durable) {
  deleting_.insert(durable);
  Api(std::string("$JS.API.CONSUMER.DELETE.") + kStream + "." + durable, "",
      [this, durable](Status s, triggers::BrokerMessage reply) {
        deleting_.erase(durable);
        jetstream::ConsumerReply parsed;
        if (s.ok() && ParseJetStreamReply(reply.data, &parsed) && parsed.has_error() &&
            parsed.error().code() != 404) {
          s = JetStreamFailure("delete consumer " + durable, parsed.error());
        }
        if (!s.ok()) {
          ++counters_.api_errors;
          std::fprintf(stderr, "wisp: jetstream: %s\n", s.ToString().c_str());
        }
        // Bound again while it was being deleted: make it now.
        for (const auto& [name, binding] : bindings_) {
          if (binding.consumers.count(durable) != 0) return SyncStream();
        }
      });
}

// Reads the stream's subjects, then creates it or adds ours; then the
// consumers. One sync at a time; a Bind meanwhile asks for another.
void JetStreamDelivery::SyncStream() {
  if (stopped_) return;
  if (syncing_) {
    sync_again_ = true;
    return;
  }
  syncing_ = true;
  sync_again_ = false;
  Api(std::string("$JS.API.STREAM.INFO.") + kStream, "",
      [this](Status s, triggers::BrokerMessage reply) { OnStreamInfo(std::move(s), std::move(reply)); });
}

void JetStreamDelivery::OnStreamInfo(Status s, triggers::BrokerMessage reply) {
  jetstream::StreamInfo info;
  if (s.ok() && !ParseJetStreamReply(reply.data, &info)) {
    s = Status::Corruption("JetStream stream info: unreadable reply '" + reply.data.substr(0, 200) + "'");
  }
  const bool missing = s.ok() && info.has_error() && info.error().err_code() == kJsStreamNotFound;
  if (s.ok() && info.has_error() && !missing) s = JetStreamFailure("stream info", info.error());
  auto finish = [this](Status result) {
    syncing_ = false;
    if (sync_again_) return SyncStream();
    if (result.ok()) return EnsureConsumers();
    SyncFailed(result);
    for (auto& [name, binding] : bindings_) {
      for (auto& [durable, consumer] : binding.consumers) {
        if (!consumer->created) consumer->failed = result;
      }
    }
    std::vector<std::string> names;
    for (auto& [name, binding] : bindings_) names.push_back(name);
    for (const std::string& name : names) CheckReady(name);
  };
  if (!s.ok()) return finish(s);
  // The subjects on the server, plus ours that none of them covers; a
  // subject of ours that covers some of theirs replaces them.
  std::vector<std::string> subjects(info.config().subjects().begin(),
                                    info.config().subjects().end());
  bool changed = missing;
  for (const std::string& want : WantedSubjects()) {
    bool covered = false;
    for (const std::string& have : subjects) covered = covered || Covers(have, want);
    if (covered) continue;
    subjects.erase(std::remove_if(subjects.begin(), subjects.end(),
                                  [&](const std::string& have) { return Covers(want, have); }),
                   subjects.end());
    subjects.push_back(want);
    changed = true;
  }
  if (!changed) {
    stream_subjects_ = std::move(subjects);
    stream_ready_ = !stream_subjects_.empty();
    return finish(Status::OK());
  }
  if (subjects.empty()) return finish(Status::OK());  // nothing durable yet
  const std::set<std::string> sorted(subjects.begin(), subjects.end());
  const std::string config = std::string("{\"name\":\"") + kStream + "\",\"subjects\":" +
                             JsonArray(sorted) +
                             ",\"retention\":\"limits\",\"storage\":\"file\",\"max_age\":" +
                             std::to_string(kMaxAgeNs) +
                             ",\"duplicate_window\":120000000000,\"num_replicas\":" +
                             std::to_string(replicas_) + "}";
  const std::string verb = missing ? "CREATE" : "UPDATE";
  Api(std::string("$JS.API.STREAM.") + verb + "." + kStream, config,
      [this, finish, subjects, verb](Status s, triggers::BrokerMessage reply) {
        jetstream::StreamInfo info;
        if (s.ok() && !ParseJetStreamReply(reply.data, &info)) {
          s = Status::Corruption("JetStream stream " + verb + ": unreadable reply");
        }
        if (s.ok() && info.has_error()) s = JetStreamFailure("stream " + verb, info.error());
        if (s.ok()) {
          stream_subjects_.assign(info.config().subjects().begin(), info.config().subjects().end());
          stream_ready_ = true;
        }
        finish(s);
      });
}

void JetStreamDelivery::EnsureConsumers() {
  std::vector<std::string> names;
  for (auto& [name, binding] : bindings_) {
    names.push_back(name);
    for (auto& [durable, consumer] : binding.consumers) {
      if (!consumer->created && !consumer->creating && deleting_.count(durable) == 0) {
        CreateConsumer(name, &binding, consumer.get());
      }
    }
  }
  for (const std::string& name : names) CheckReady(name);
}

void JetStreamDelivery::CreateConsumer(const std::string& name, Binding* binding,
                                       Consumer* consumer) {
  consumer->creating = true;
  const std::string config =
      std::string("{\"stream_name\":\"") + kStream + "\",\"config\":{\"durable_name\":" +
      JsonQuote(consumer->durable) + ",\"deliver_policy\":\"new\",\"ack_policy\":\"explicit\"," +
      "\"ack_wait\":" + std::to_string(binding->ack_wait_ms * 1000000) +
      ",\"max_deliver\":-1,\"filter_subject\":" + JsonQuote(consumer->subject) +
      ",\"replay_policy\":\"instant\",\"max_ack_pending\":" + std::to_string(kMaxAckPending) +
      "}}";
  const std::string durable = consumer->durable;
  Api(std::string("$JS.API.CONSUMER.DURABLE.CREATE.") + kStream + "." + durable, config,
      [this, name, durable](Status s, triggers::BrokerMessage reply) {
        auto it = bindings_.find(name);
        if (it == bindings_.end()) return;
        auto c = it->second.consumers.find(durable);
        if (c == it->second.consumers.end()) return;
        Consumer* consumer = c->second.get();
        consumer->creating = false;
        jetstream::ConsumerReply parsed;
        if (s.ok() && !ParseJetStreamReply(reply.data, &parsed)) {
          s = Status::Corruption("JetStream consumer create: unreadable reply");
        }
        if (s.ok() && parsed.has_error()) s = JetStreamFailure("create consumer " + durable, parsed.error());
        if (!s.ok()) {
          consumer->failed = s;
          SyncFailed(s);
          return CheckReady(name);
        }
        consumer->created = true;
        consumer->answered = false;
        consumer->failed = Status::OK();
        if (consumer->subscription == 0) {
          StatusOr<triggers::SubscriptionId> sub = broker_->Subscribe(
              consumer->inbox, "", [this, name, durable](triggers::BrokerMessage message) {
                OnMessage(name, durable, std::move(message));
              });
          if (!sub.ok()) {
            consumer->created = false;
            consumer->failed = sub.status();
            SyncFailed(sub.status());
            return CheckReady(name);
          }
          consumer->subscription = *sub;
        }
        Pull(consumer);
        CheckReady(name);
      });
}

void JetStreamDelivery::PullAll(const std::string& name) {
  auto it = bindings_.find(name);
  if (it == bindings_.end()) return;
  for (auto& [durable, consumer] : it->second.consumers) Pull(consumer.get());
}

void JetStreamDelivery::Pull(Consumer* consumer) {
  if (stopped_ || !consumer->created || consumer->pulling) return;
  auto it = bindings_.find(consumer->function);
  if (it == bindings_.end()) return;
  Dispatcher* dispatcher = lookup_(consumer->function);
  const size_t capacity = capacity_(consumer->function);
  if (dispatcher == nullptr || !dispatcher->has_room() || it->second.inflight >= capacity) return;
  const size_t batch = capacity - it->second.inflight;
  triggers::BrokerMessage request;
  request.subject = std::string("$JS.API.CONSUMER.MSG.NEXT.") + kStream + "." + consumer->durable;
  request.reply = consumer->inbox;
  const uint64_t expires_ms = consumer->answered ? kPullExpiresMs : kFirstPullExpiresMs;
  request.data = "{\"batch\":" + std::to_string(batch) +
                 ",\"expires\":" + std::to_string(expires_ms * 1000000) + "}";
  Status s = broker_->Publish(std::move(request));
  if (!s.ok()) {
    std::fprintf(stderr, "wisp: jetstream: pull for %s: %s\n", consumer->durable.c_str(),
                 s.ToString().c_str());
    return;
  }
  consumer->pulling = true;
  consumer->requested = batch;
  consumer->pull_given_up_ms = uv_now(loop_) + expires_ms + kPullGraceMs;
}

void JetStreamDelivery::OnMessage(const std::string& name, const std::string& durable,
                                  triggers::BrokerMessage message) {
  auto it = bindings_.find(name);
  if (it == bindings_.end()) return;
  auto c = it->second.consumers.find(durable);
  if (c == it->second.consumers.end()) return;
  Consumer* consumer = c->second.get();
  consumer->answered = true;
  const std::string* status = triggers::FindHeader(message.headers, "status");
  if (status != nullptr && message.reply.empty()) {
    // This pull is over. 404 no messages, 408 it expired: ask again; else
    // (409 the consumer was deleted or changed, 503 no JetStream) a while
    // later, and the consumer is made again if it has gone.
    consumer->pulling = false;
    consumer->requested = 0;
    if (*status == "404" || *status == "408") return Pull(consumer);
    std::fprintf(stderr, "wisp: jetstream: pull for %s ended with %s %s\n", durable.c_str(),
                 status->c_str(), message.data.c_str());
    if (*status == "409") consumer->created = false;
    return SyncFailed(Status::Unavailable("pull for " + durable + " refused"));
  }
  if (consumer->requested > 0 && --consumer->requested == 0) consumer->pulling = false;
  const uint32_t attempt = std::max<uint32_t>(DeliveryCount(message.reply), 1);
  if (attempt > 1) ++counters_.redelivered;
  Dispatcher* dispatcher = lookup_(name);
  if (dispatcher == nullptr || stopped_) return;  // not acknowledged: redelivered after AckWait
  if (IsReplaySubject(message.subject, name)) RestoreReplayed(&message);
  ++it->second.inflight;
  proto::Invoke invoke;
  invoke.set_trigger(WISP_TRIGGER_EVENT);
  invoke.set_attempt(attempt);
  for (const auto& [header, value] : message.headers) {
    if (header == "Nats-Msg-Id") continue;  // JetStream's; ce-id carries the same
    proto::Header* h = invoke.add_headers();
    h->set_name(header);
    h->set_value(value);
  }
  StartInvocationSpan(&invoke);
  invoke.set_subject(message.subject);
  invoke.set_body(message.data);
  std::string ack = std::move(message.reply);
  message.reply.clear();
  if (!ack.empty()) it->second.held[ack] = uv_now(loop_);
  dispatcher->Submit(std::move(invoke), [this, name, ack = std::move(ack), attempt,
                                         event = std::move(message), alive = std::weak_ptr<int>(alive_)](
                                            InvocationOutcome outcome) mutable {
    if (alive.expired()) return;
    Finish(name, std::move(ack), attempt, std::move(event), std::move(outcome));
  });
}

void JetStreamDelivery::Finish(const std::string& name, std::string ack, uint32_t attempt,
                               triggers::BrokerMessage event, InvocationOutcome outcome) {
  auto it = bindings_.find(name);
  if (it != bindings_.end() && it->second.inflight > 0) --it->second.inflight;
  const DeliveryPolicy policy = it != bindings_.end() ? it->second.policy : DeliveryPolicy{};
  const std::string* event_id = triggers::FindHeader(event.headers, "ce-id");
  events_->PublishEmitted(name, &outcome, event_id != nullptr ? *event_id : std::string());
  const bool failed = !outcome.has_result || outcome.result.status() >= 500;
  // A dead letter keeps its lease renewed until it is stored.
  if (it != bindings_.end() && !(failed && attempt >= policy.max_attempts)) {
    it->second.held.erase(ack);
  }
  if (!failed) {
    // Acknowledged once what it emitted is stored.
    AfterStored([this, ack](Status stored) {
      if (!stored.ok()) return Acknowledge(ack, "-NAK");
      ++counters_.acked;
      Acknowledge(ack, "+ACK");
    });
  } else if (attempt >= policy.max_attempts) {
    const std::string text = DurableDelivery::FailureText(outcome);
    std::fprintf(stderr, "wisp: %s: event on '%s' dead-lettered after %u attempts: %s\n",
                 name.c_str(), event.subject.c_str(), attempt, text.c_str());
    PendingDeadLetter letter;
    letter.name = name;
    letter.ack = std::move(ack);
    letter.attempt = attempt;
    letter.code = DurableDelivery::FailureCode(outcome);
    letter.error = text;
    letter.published =
        DurableDelivery::DeadLetterMessage(name, policy.dead_letter_subject, event, attempt, outcome);
    letter.event = std::move(event);
    StoreDeadLetter(std::move(letter));
  } else {
    ++counters_.retried;
    const uint64_t delay_ms =
        DurableDelivery::BackoffMs(policy, attempt, DurableDelivery::Jitter01());
    Acknowledge(ack, "-NAK {\"delay\":" + std::to_string(delay_ms * 1000000) + "}");
  }
  PullAll(name);
}

// Stored first: the event goes (+TERM) only once its dead letter is kept.
// Until then its lease is renewed; a store that fails is tried again from
// OnTick after kRetryMs (a restart or another controller runs the event
// again if this one dies meanwhile).
void JetStreamDelivery::StoreDeadLetter(PendingDeadLetter letter) {
  const uint64_t seq = StreamSequence(letter.ack);
  const std::string duplicate_id = seq > 0 ? std::to_string(seq) : std::string();
  auto shared = std::make_shared<PendingDeadLetter>(std::move(letter));
  dead_letters_.Add(
      shared->name, shared->event, shared->attempt, shared->code, shared->error, duplicate_id,
      [this, shared](Status stored) {
        if (!stored.ok()) {
          ++counters_.api_errors;
          std::fprintf(stderr,
                       "wisp: %s: the dead letter could not be stored (trying again in %llums): "
                       "%s\n",
                       shared->name.c_str(), static_cast<unsigned long long>(kRetryMs),
                       stored.ToString().c_str());
          shared->retry_at_ms = uv_now(loop_) + kRetryMs;
          unstored_dead_letters_.push_back(std::move(*shared));
          return;
        }
        if (auto b = bindings_.find(shared->name); b != bindings_.end()) {
          b->second.held.erase(shared->ack);
        }
        ++counters_.dead_lettered;
        Status s = events_->PublishEvent(std::move(shared->published));
        if (!s.ok()) {
          std::fprintf(stderr, "wisp: %s: dead letter: %s\n", shared->name.c_str(),
                       s.ToString().c_str());
        }
        AfterStored([this, ack = shared->ack](Status) { Acknowledge(ack, "+TERM"); });
      });
}

void JetStreamDelivery::RetryDeadLetters() {
  const uint64_t now = uv_now(loop_);
  std::vector<PendingDeadLetter> due;
  for (auto it = unstored_dead_letters_.begin(); it != unstored_dead_letters_.end();) {
    if (it->retry_at_ms > now) {
      ++it;
      continue;
    }
    due.push_back(std::move(*it));
    it = unstored_dead_letters_.erase(it);
  }
  for (PendingDeadLetter& letter : due) StoreDeadLetter(std::move(letter));
}

void JetStreamDelivery::RestoreReplayed(triggers::BrokerMessage* message) {
  for (auto it = message->headers.begin(); it != message->headers.end(); ++it) {
    if (it->first == "wisp-subject") {
      message->subject = std::move(it->second);
      message->headers.erase(it);
      return;
    }
  }
}

void JetStreamDelivery::Acknowledge(const std::string& ack, const std::string& body) {
  if (ack.empty()) return;
  triggers::BrokerMessage message;
  message.subject = ack;
  message.data = body;
  Status s = broker_->Publish(std::move(message));
  if (!s.ok()) std::fprintf(stderr, "wisp: jetstream: ack: %s\n", s.ToString().c_str());
}

Status JetStreamDelivery::Capture(triggers::BrokerMessage& message, bool* published) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  *published = false;
  bool in_stream = false;
  for (const std::string& subject : stream_subjects_) {
    in_stream = in_stream || triggers::SubjectMatches(subject, message.subject);
  }
  if (!in_stream) return Status::OK();
  const std::string* id = triggers::FindHeader(message.headers, "ce-id");
  if (id != nullptr && triggers::FindHeader(message.headers, "Nats-Msg-Id") == nullptr) {
    message.headers.emplace_back("Nats-Msg-Id", std::string(*id));
  }
  const uint64_t seq = next_publish_++;
  unacked_.insert(seq);
  std::weak_ptr<int> alive = alive_;
  requests_->Request(std::move(message), kApiTimeoutMs,
                     [this, alive, seq](Status s, triggers::BrokerMessage reply) {
                       if (alive.expired()) return;
                       OnPubAck(seq, std::move(s), reply);
                     });
  *published = true;
  return Status::OK();
}

void JetStreamDelivery::OnPubAck(uint64_t seq, Status s, const triggers::BrokerMessage& reply) {
  jetstream::PubAck ack;
  s = PubAckStatus(std::move(s), reply.data, "publish", &ack);
  if (!s.ok() && s.code() == Status::Code::kNotFound) {
    s = Status::Unavailable("JetStream did not take the event (no stream answers)");
  }
  if (s.ok()) {
    ++counters_.stored;
    if (ack.duplicate()) ++counters_.duplicates;
  } else {
    failed_[seq] = s;
  }
  unacked_.erase(seq);
  RunWaiters();
}

void JetStreamDelivery::AfterStored(std::function<void(Status)> done) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  const uint64_t through = next_publish_ - 1;
  waiters_.push_back(Waiter{last_barrier_ + 1, through, std::move(done)});
  last_barrier_ = through;
  RunWaiters();
}

void JetStreamDelivery::RunWaiters() {
  const uint64_t oldest_unacked = unacked_.empty() ? UINT64_MAX : *unacked_.begin();
  std::vector<std::pair<std::function<void(Status)>, Status>> ready;
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    if (it->through >= oldest_unacked) {
      ++it;
      continue;
    }
    Status s;
    for (auto f = failed_.lower_bound(it->from); f != failed_.end() && f->first <= it->through; ++f) {
      s = f->second;
      break;
    }
    ready.emplace_back(std::move(it->done), s);
    it = waiters_.erase(it);
  }
  // Failures no waiter can ask about any more.
  const uint64_t keep_from = waiters_.empty() ? last_barrier_ + 1 : waiters_.front().from;
  failed_.erase(failed_.begin(), failed_.lower_bound(keep_from));
  for (auto& [done, s] : ready) done(s);
}

void JetStreamDelivery::Close(std::function<void()> on_closed) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  stopped_ = true;
  CloseOwnedTimer(pull_watchdog_, nullptr);
  pull_watchdog_ = nullptr;
  CloseOwnedTimer(retry_timer_, std::move(on_closed));
  retry_timer_ = nullptr;
  for (auto& [name, binding] : bindings_) {
    for (auto& [durable, consumer] : binding.consumers) {
      if (consumer->subscription != 0) broker_->Unsubscribe(consumer->subscription);
      consumer->subscription = 0;
    }
  }
}

}  // namespace wisp::runtime
