#include "runtime/event_triggers.h"

#include <http_parser.h>

#include <cstdio>

#include "api.pb.h"
#include "loader/artifact_store.h"
#include "runtime/base/uv_timer.h"
#include "runtime/deploy_params.h"
#include "runtime/trace_context.h"
#include "triggers/cloudevents.h"
#include "triggers/http_server.h"
#include "wisp/function.h"

namespace wisp::runtime {
namespace {

constexpr uint64_t kPumpRetryMs = 2;
constexpr size_t kMaxEmittedHeaders = 64;

const triggers::EventDefaults kIncomingDefaults{"/wisp/events", "io.wisp.event"};

std::string EventLabel(const triggers::BrokerMessage& message) {
  const std::string* id = triggers::FindHeader(message.headers, "ce-id");
  return "event " + (id != nullptr ? *id : std::string("?")) + " on '" + message.subject + "'";
}

}  // namespace

EventTriggers::EventTriggers(uv_loop_t* loop, triggers::Broker* broker, DispatcherLookup lookup,
                             size_t max_payload_bytes)
    : loop_(loop),
      broker_(broker),
      lookup_(std::move(lookup)),
      max_payload_bytes_(max_payload_bytes),
      pump_timer_(new uv_timer_t) {
  uv_timer_init(loop_, pump_timer_);
  pump_timer_->data = this;
}

EventTriggers::~EventTriggers() { WISP_CHECK(closed_ && pump_timer_ == nullptr); }

Status EventTriggers::Bind(const std::string& name, const std::vector<std::string>& subjects) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  for (const std::string& subject : subjects) {
    WISP_RETURN_IF_ERROR(triggers::ValidateSubscribeSubject(subject));
  }
  auto binding = std::make_unique<Binding>();
  binding->name = name;
  binding->generation = next_generation_++;
  Endpoint service;
  service.name = name;
  service.subject = "wisp.fn." + name;
  service.queue_group = "q";
  binding->endpoints.push_back(std::move(service));
  for (size_t i = 0; i < subjects.size(); ++i) {
    Endpoint e;
    e.name = name + "-" + std::to_string(i + 1);
    e.subject = subjects[i];
    e.queue_group = "wisp." + name;
    binding->endpoints.push_back(std::move(e));
  }
  auto& slot = bindings_[name];
  Binding* old = slot.get();
  // A subscription whose subject and group stay is kept, with what the
  // broker holds for it; only the others are made anew.
  std::vector<bool> kept(old != nullptr ? old->endpoints.size() : 0, false);
  std::vector<triggers::SubscriptionId> created;
  for (Endpoint& e : binding->endpoints) {
    for (size_t j = 0; j < kept.size(); ++j) {
      const Endpoint& previous = old->endpoints[j];
      if (!kept[j] && previous.subject == e.subject && previous.queue_group == e.queue_group) {
        kept[j] = true;
        e.subscription = previous.subscription;
        e.stats = previous.stats;
        break;
      }
    }
    if (e.subscription != 0) continue;
    StatusOr<triggers::SubscriptionId> id = broker_->Subscribe(
        e.subject, e.queue_group,
        [this, name, subject = e.subject, group = e.queue_group](triggers::BrokerMessage message) {
          OnMessage(name, subject, group, std::move(message));
        });
    if (!id.ok()) {
      for (triggers::SubscriptionId sub : created) broker_->Unsubscribe(sub);
      if (old == nullptr) bindings_.erase(name);
      return id.status().WithContext("subscribe " + name + " to '" + e.subject + "'");
    }
    e.subscription = *id;
    created.push_back(*id);
  }
  if (old != nullptr) {
    for (size_t j = 0; j < kept.size(); ++j) {
      if (!kept[j]) broker_->Unsubscribe(old->endpoints[j].subscription);
    }
    binding->backlog = std::move(old->backlog);
    binding->backlog_bytes = old->backlog_bytes;
    binding->inflight_bytes = old->inflight_bytes;
    binding->paused = old->paused;
    if (binding->paused) {
      for (triggers::SubscriptionId sub : created) broker_->SetPaused(sub, true);
    }
  }
  slot = std::move(binding);
  if (!slot->backlog.empty()) ArmPump();
  return Status::OK();
}

void EventTriggers::Unbind(const std::string& name) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  auto it = bindings_.find(name);
  if (it == bindings_.end()) return;
  for (const Endpoint& e : it->second->endpoints) broker_->Unsubscribe(e.subscription);
  if (!it->second->backlog.empty()) {
    std::fprintf(stderr, "wisp: %s removed: %zu waiting events were not run\n", name.c_str(),
                 it->second->backlog.size());
  }
  bindings_.erase(it);
}

void EventTriggers::StopReceiving() {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  for (auto& [name, binding] : bindings_) {
    for (Endpoint& e : binding->endpoints) {
      if (e.subscription != 0) broker_->Unsubscribe(e.subscription);
      e.subscription = 0;
    }
    if (!binding->backlog.empty()) {
      std::fprintf(stderr, "wisp: %s: %zu waiting events were not run: the controller is stopping\n",
                   name.c_str(), binding->backlog.size());
      binding->backlog.clear();
      binding->backlog_bytes = 0;
    }
  }
}

const std::vector<Endpoint>* EventTriggers::Endpoints(const std::string& name) const {
  auto it = bindings_.find(name);
  return it == bindings_.end() ? nullptr : &it->second->endpoints;
}

void EventTriggers::ResetStats(const std::string& name) {
  auto it = bindings_.find(name);
  if (it == bindings_.end()) return;
  for (Endpoint& e : it->second->endpoints) e.stats = EndpointStats{};
}

void EventTriggers::OnMessage(const std::string& name, const std::string& subject,
                              const std::string& group, triggers::BrokerMessage message) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  auto it = bindings_.find(name);
  if (it == bindings_.end()) return;
  Binding* binding = it->second.get();
  size_t endpoint = 0;
  while (endpoint + 1 < binding->endpoints.size() &&
         (binding->endpoints[endpoint].subject != subject ||
          binding->endpoints[endpoint].queue_group != group)) {
    ++endpoint;
  }
  ++counters_.received;
  // A JetStream publish (wisp's own on a durable subject, or a client's
  // with a Nats-Msg-Id) waits on its reply subject for the stream's PubAck:
  // here it is an event, never a request to answer.
  if (!message.reply.empty() && triggers::FindHeader(message.headers, "nats-msg-id") != nullptr) {
    message.reply.clear();
  }
  if (!message.reply.empty() && !triggers::ValidatePublishSubject(message.reply).ok()) {
    message.reply.clear();  // nobody can be answered there
    return Refuse(binding, endpoint, message, 400, "the reply subject is not a valid subject");
  }
  if (message.data.size() > max_payload_bytes_) {
    return Refuse(binding, endpoint, message, 413,
                  "payload of " + std::to_string(message.data.size()) +
                      " bytes exceeds the limit of " + std::to_string(max_payload_bytes_));
  }
  Status s = triggers::NormalizeCloudEvent(&message, kIncomingDefaults);
  if (!s.ok()) return Refuse(binding, endpoint, message, 400, "malformed event: " + s.message());
  if (message.reply.empty() && (!binding->backlog.empty() || !HasRoom(binding))) {
    return Backlog(binding, std::move(message));
  }
  Submit(binding, endpoint, std::move(message));
}

void EventTriggers::Backlog(Binding* binding, triggers::BrokerMessage message) {
  binding->backlog_bytes += message.data.size();
  binding->backlog.push_back(std::move(message));
  if (!binding->paused && (binding->backlog.size() >= kBacklogHigh ||
                           binding->backlog_bytes >= kBacklogMaxBytes)) {
    SetPaused(binding, true);
  }
  ArmPump();
}

bool EventTriggers::HasRoom(Binding* binding) {
  Dispatcher* dispatcher = lookup_(binding->name);
  return dispatcher != nullptr && dispatcher->has_room() &&
         binding->inflight_bytes < kInflightMaxBytes;
}

void EventTriggers::Submit(Binding* binding, size_t endpoint, triggers::BrokerMessage message) {
  Dispatcher* dispatcher = lookup_(binding->name);
  if (dispatcher == nullptr) {
    return Refuse(binding, endpoint, message, 404, "function " + binding->name + " is not deployed");
  }
  proto::Invoke invoke;
  invoke.set_trigger(WISP_TRIGGER_EVENT);
  invoke.set_attempt(1);
  for (auto& [name, value] : message.headers) {
    proto::Header* h = invoke.add_headers();
    h->set_name(std::move(name));
    h->set_value(std::move(value));
  }
  StartInvocationSpan(&invoke);
  std::string label = message.reply.empty() ? EventLabel(message) : std::string();
  const size_t event_bytes = message.reply.empty() ? message.data.size() : 0;
  binding->inflight_bytes += event_bytes;
  invoke.set_subject(std::move(message.subject));
  invoke.set_body(std::move(message.data));
  ++binding->endpoints[endpoint].stats.requests;
  dispatcher->Submit(std::move(invoke),
                     [this, name = binding->name, generation = binding->generation, endpoint,
                      started = uv_hrtime(), event_bytes, reply = std::move(message.reply),
                      label = std::move(label)](InvocationOutcome outcome) mutable {
                       Finish(name, generation, endpoint, started, event_bytes, reply, label,
                              std::move(outcome));
                     });
}

void EventTriggers::Finish(const std::string& name, uint64_t generation, size_t endpoint,
                           uint64_t started_ns, size_t event_bytes, const std::string& reply,
                           const std::string& event_label, InvocationOutcome outcome) {
  PublishEmitted(name, &outcome);
  const bool failed = !outcome.has_result || outcome.result.status() >= 500;
  auto it = bindings_.find(name);
  Binding* binding = it == bindings_.end() ? nullptr : it->second.get();
  if (binding != nullptr) {
    // A redeploy's binding took over the bytes in flight.
    binding->inflight_bytes -= std::min(binding->inflight_bytes, event_bytes);
    if (binding->generation == generation && endpoint < binding->endpoints.size()) {
      EndpointStats& stats = binding->endpoints[endpoint].stats;
      stats.processing_ns += uv_hrtime() - started_ns;
      if (failed) {
        ++stats.errors;
        stats.last_error = outcome.has_result
                               ? "status " + std::to_string(outcome.result.status())
                               : outcome.error_message;
      }
    }
  }
  if (!reply.empty()) {
    Respond(reply, outcome);
  } else if (failed) {
    ++counters_.failed;
    LogRateLimited(name + ": " + event_label + " failed: " +
                   (outcome.has_result ? "status " + std::to_string(outcome.result.status())
                                       : outcome.error_message));
  }
  // Never pumps from here: a dispatcher failing calls at once would recurse.
  if (binding != nullptr && !binding->backlog.empty()) ArmPump();
}

void EventTriggers::LogRateLimited(const std::string& line) {
  const uint64_t now = uv_now(loop_);
  if (now - last_log_ms_ < 1000) {
    ++unlogged_;
    return;
  }
  std::fprintf(stderr, "wisp: %s%s\n", line.c_str(),
               unlogged_ > 0
                   ? (" (and " + std::to_string(unlogged_) + " more since the last line)").c_str()
                   : "");
  last_log_ms_ = now;
  unlogged_ = 0;
}

void EventTriggers::Refuse(Binding* binding, size_t endpoint,
                           const triggers::BrokerMessage& message, int status,
                           const std::string& reason) {
  ++counters_.rejected;
  EndpointStats& stats = binding->endpoints[endpoint].stats;
  ++stats.requests;
  ++stats.errors;
  stats.last_error = reason;
  if (!message.reply.empty()) {
    InvocationOutcome outcome;
    outcome.http_status = status;
    outcome.error_code = status == 413 ? "payload_too_large" : "invalid_event";
    outcome.error_message = reason;
    Respond(message.reply, outcome);
    return;
  }
  LogRateLimited(binding->name + ": refused a message on '" + message.subject + "': " + reason);
}

namespace {

// text as a header value: no control bytes, at most 1 KiB.
std::string HeaderSafe(std::string_view text) {
  std::string out(text.substr(0, 1024));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return out;
}

triggers::BrokerMessage ErrorReply(const std::string& subject, int status,
                                   std::string_view message) {
  triggers::BrokerMessage reply;
  reply.subject = subject;
  reply.headers.emplace_back("Nats-Service-Error", HeaderSafe(message));
  reply.headers.emplace_back("Nats-Service-Error-Code", std::to_string(status));
  return reply;
}

}  // namespace

void EventTriggers::Respond(const std::string& reply_subject, InvocationOutcome& outcome) {
  triggers::BrokerMessage message;
  message.subject = reply_subject;
  if (outcome.has_result) {
    proto::Result& result = outcome.result;
    const int status = result.status() == 0 ? 200 : result.status();
    for (proto::Header& h : *result.mutable_headers()) {
      message.headers.emplace_back(std::move(*h.mutable_name()), std::move(*h.mutable_value()));
    }
    if (status >= 400) {
      std::string reason = http_status_str(static_cast<enum http_status>(status));
      if (reason == "<unknown>") reason = "status " + std::to_string(status);
      message.headers.emplace_back("Nats-Service-Error", std::move(reason));
      message.headers.emplace_back("Nats-Service-Error-Code", std::to_string(status));
    }
    message.data = std::move(*result.mutable_body());
  } else {
    message = ErrorReply(reply_subject, outcome.http_status, outcome.error_message);
    message.headers.emplace_back("Content-Type", "application/json");
    message.data = triggers::JsonErrorBody(outcome.error_code, outcome.error_message);
  }
  if (message.data.size() > broker_->max_payload()) {
    message = ErrorReply(reply_subject, 413,
                         "the reply of " + std::to_string(message.data.size()) +
                             " bytes exceeds the broker's max payload of " +
                             std::to_string(broker_->max_payload()));
  }
  Status s = broker_->Publish(std::move(message));
  if (s.ok()) return;
  // The requester must not wait for its timeout: tell it why instead.
  s = broker_->Publish(ErrorReply(reply_subject, 502, "the reply could not be sent: " + s.message()));
  if (!s.ok()) LogRateLimited("cannot send a reply: " + s.ToString());
}

Status EventTriggers::PublishEvent(triggers::BrokerMessage message) {
  bool published = false;
  if (capture_) WISP_RETURN_IF_ERROR(capture_(message, &published));
  if (published) return Status::OK();
  return broker_->Publish(std::move(message));
}

void EventTriggers::PublishEmitted(const std::string& name, InvocationOutcome* outcome,
                                   const std::string& cause_id) {
  if (!outcome->has_result || outcome->result.events_size() == 0) return;
  proto::Result& result = outcome->result;
  if (result.status() >= 500) return;  // the invocation failed: its events go nowhere
  auto refuse = [&](const std::string& why) {
    ++counters_.emit_refused;
    outcome->has_result = false;
    outcome->http_status = 502;
    outcome->error_code = "invalid_event";
    outcome->error_message = "function " + name + " emitted " + why + "; none was published";
    outcome->result.Clear();
  };
  if (result.events_size() > kMaxEmittedEvents) {
    return refuse(std::to_string(result.events_size()) + " events, over the limit of " +
                  std::to_string(kMaxEmittedEvents));
  }
  const triggers::EventDefaults defaults{"/wisp/fn/" + name, "io.wisp.event"};
  const size_t max_payload = broker_->max_payload();
  std::vector<triggers::BrokerMessage> messages;
  messages.reserve(static_cast<size_t>(result.events_size()));
  int index = 0;
  for (proto::Event& event : *result.mutable_events()) {
    ++index;
    const std::string which = "an invalid event (#" + std::to_string(index) + ")";
    if (static_cast<size_t>(event.headers_size()) > kMaxEmittedHeaders) {
      return refuse(which + ": more than " + std::to_string(kMaxEmittedHeaders) + " headers");
    }
    if (event.data().size() > max_payload) {
      return refuse(which + ": its payload of " + std::to_string(event.data().size()) +
                    " bytes exceeds the broker's max payload of " + std::to_string(max_payload));
    }
    triggers::BrokerMessage message;
    message.subject = std::move(*event.mutable_subject());
    message.data = std::move(*event.mutable_data());
    for (proto::Header& h : *event.mutable_headers()) {
      message.headers.emplace_back(std::move(*h.mutable_name()), std::move(*h.mutable_value()));
    }
    const std::string* type = triggers::FindHeader(message.headers, "content-type");
    if (type != nullptr && type->rfind("application/cloudevents", 0) == 0) {
      return refuse(which + ": emitted events are binary mode (ce-* headers), not " + *type);
    }
    // The trace goes on, the emitting invocation's span its parent.
    if (!outcome->trace_id.empty() &&
        triggers::FindHeader(message.headers, "traceparent") == nullptr) {
      message.headers.emplace_back(
          "traceparent", FormatTraceparent({outcome->trace_id, outcome->span_id, "01"}));
    }
    if (!cause_id.empty() && triggers::FindHeader(message.headers, "ce-id") == nullptr) {
      message.headers.emplace_back(
          "ce-id", loader::Sha256Hex(cause_id + "\n" + name + "\n" + std::to_string(index))
                       .substr(0, 32));
    }
    Status bad = triggers::ValidatePublishSubject(message.subject);
    if (bad.ok()) bad = CheckNotInternal(message.subject);
    if (bad.ok()) bad = triggers::NormalizeCloudEvent(&message, defaults);
    if (!bad.ok()) return refuse(which + ": " + bad.message());
    messages.push_back(std::move(message));
  }
  result.clear_events();
  size_t published = 0;
  for (triggers::BrokerMessage& message : messages) {
    Status s = PublishEvent(std::move(message));
    if (!s.ok()) {
      // Those before it are out: the invocation did not do all it meant to.
      ++counters_.emit_refused;
      outcome->has_result = false;
      outcome->http_status = 502;
      outcome->error_code = "event_publish_failed";
      outcome->error_message = "published " + std::to_string(published) + " of " +
                               std::to_string(messages.size()) + " events emitted by " + name +
                               ", then: " + s.message();
      outcome->result.Clear();
      return;
    }
    ++published;
    ++counters_.emitted;
  }
}

void EventTriggers::Pump(Binding* binding) {
  while (!binding->backlog.empty() && HasRoom(binding)) {
    triggers::BrokerMessage message = std::move(binding->backlog.front());
    binding->backlog.pop_front();
    binding->backlog_bytes -= std::min(binding->backlog_bytes, message.data.size());
    // The endpoint only matters for figures; find the one the subject matches.
    size_t endpoint = 0;
    for (size_t i = 1; i < binding->endpoints.size(); ++i) {
      if (triggers::SubjectMatches(binding->endpoints[i].subject, message.subject)) {
        endpoint = i;
        break;
      }
    }
    Submit(binding, endpoint, std::move(message));
  }
  if (binding->paused && binding->backlog.size() <= kBacklogLow &&
      binding->backlog_bytes <= kBacklogMaxBytes / 4) {
    SetPaused(binding, false);
  }
  if (!binding->backlog.empty()) ArmPump();
}

void EventTriggers::SetPaused(Binding* binding, bool paused) {
  binding->paused = paused;
  for (const Endpoint& e : binding->endpoints) broker_->SetPaused(e.subscription, paused);
}

void EventTriggers::ArmPump() {
  if (closed_ || uv_is_active(reinterpret_cast<uv_handle_t*>(pump_timer_))) return;
  uv_timer_start(pump_timer_, PumpCb, kPumpRetryMs, 0);
}

void EventTriggers::PumpCb(uv_timer_t* timer) {
  auto* self = static_cast<EventTriggers*>(timer->data);
  for (auto& [name, binding] : self->bindings_) {
    if (!binding->backlog.empty()) self->Pump(binding.get());
  }
}

void EventTriggers::Close(std::function<void()> on_closed) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  StopReceiving();
  bindings_.clear();
  closed_ = true;
  CloseOwnedTimer(pump_timer_, [this, done = std::move(on_closed)] {
    pump_timer_ = nullptr;
    if (done) done();
  });
}

}  // namespace wisp::runtime
