#include "runtime/event_triggers.h"

#include <http_parser.h>

#include <cstdio>

#include "api.pb.h"
#include "runtime/base/uv_timer.h"
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
  Binding* raw = binding.get();
  for (size_t i = 0; i < raw->endpoints.size(); ++i) {
    Endpoint& e = raw->endpoints[i];
    StatusOr<triggers::SubscriptionId> id = broker_->Subscribe(
        e.subject, e.queue_group,
        [this, raw, i](triggers::BrokerMessage message) { OnMessage(raw, i, std::move(message)); });
    if (!id.ok()) {
      for (size_t j = 0; j < i; ++j) broker_->Unsubscribe(raw->endpoints[j].subscription);
      return id.status().WithContext("subscribe " + name + " to '" + e.subject + "'");
    }
    e.subscription = *id;
  }
  auto& slot = bindings_[name];
  if (slot) {
    for (const Endpoint& e : slot->endpoints) broker_->Unsubscribe(e.subscription);
    raw->backlog = std::move(slot->backlog);
  }
  slot = std::move(binding);
  if (!raw->backlog.empty()) Pump(raw);
  return Status::OK();
}

void EventTriggers::Unbind(const std::string& name) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  auto it = bindings_.find(name);
  if (it == bindings_.end()) return;
  for (const Endpoint& e : it->second->endpoints) broker_->Unsubscribe(e.subscription);
  if (!it->second->backlog.empty()) {
    std::fprintf(stderr, "wisp: %s removed: %zu waiting events were not delivered\n",
                 name.c_str(), it->second->backlog.size());
  }
  bindings_.erase(it);
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

EventTriggers::Binding* EventTriggers::Find(const std::string& name, uint64_t generation) {
  auto it = bindings_.find(name);
  if (it == bindings_.end() || it->second->generation != generation) return nullptr;
  return it->second.get();
}

void EventTriggers::OnMessage(Binding* binding, size_t endpoint, triggers::BrokerMessage message) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  ++counters_.received;
  if (message.data.size() > max_payload_bytes_) {
    return Refuse(binding, endpoint, message, 413,
                  "payload of " + std::to_string(message.data.size()) +
                      " bytes exceeds the limit of " + std::to_string(max_payload_bytes_));
  }
  Status s = triggers::NormalizeCloudEvent(&message, kIncomingDefaults);
  if (!s.ok()) return Refuse(binding, endpoint, message, 400, "malformed event: " + s.message());
  if (message.reply.empty() && (!binding->backlog.empty() || !HasRoom(binding))) {
    binding->backlog.push_back(std::move(message));
    if (binding->backlog.size() >= kBacklogHigh && !binding->paused) SetPaused(binding, true);
    ArmPump();
    return;
  }
  Submit(binding, endpoint, std::move(message));
}

bool EventTriggers::HasRoom(Binding* binding) {
  Dispatcher* dispatcher = lookup_(binding->name);
  return dispatcher != nullptr && dispatcher->has_room();
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
  std::string label = message.reply.empty() ? EventLabel(message) : std::string();
  invoke.set_subject(std::move(message.subject));
  invoke.set_body(std::move(message.data));
  ++binding->endpoints[endpoint].stats.requests;
  dispatcher->Submit(std::move(invoke),
                     [this, name = binding->name, generation = binding->generation, endpoint,
                      started = uv_hrtime(), reply = std::move(message.reply),
                      label = std::move(label)](InvocationOutcome outcome) mutable {
                       Finish(name, generation, endpoint, started, reply, label,
                              std::move(outcome));
                     });
}

void EventTriggers::Finish(const std::string& name, uint64_t generation, size_t endpoint,
                           uint64_t started_ns, const std::string& reply,
                           const std::string& event_label, InvocationOutcome outcome) {
  PublishEmitted(name, &outcome);
  const bool failed = !outcome.has_result || outcome.result.status() >= 500;
  Binding* binding = Find(name, generation);
  if (binding != nullptr) {
    EndpointStats& stats = binding->endpoints[endpoint].stats;
    stats.processing_ns += uv_hrtime() - started_ns;
    if (failed) {
      ++stats.errors;
      stats.last_error = outcome.has_result ? "status " + std::to_string(outcome.result.status())
                                            : outcome.error_message;
    }
  }
  if (!reply.empty()) {
    Respond(reply, outcome);
  } else if (failed) {
    ++counters_.failed;
    const uint64_t now = uv_now(loop_);
    if (now - last_log_ms_ >= 1000) {
      std::fprintf(stderr, "wisp: %s: %s failed: %s%s\n", name.c_str(), event_label.c_str(),
                   outcome.has_result ? ("status " + std::to_string(outcome.result.status())).c_str()
                                      : outcome.error_message.c_str(),
                   unlogged_ > 0 ? (" (and " + std::to_string(unlogged_) +
                                    " more failures since the last line)").c_str()
                                 : "");
      last_log_ms_ = now;
      unlogged_ = 0;
    } else {
      ++unlogged_;
    }
  }
  if (binding != nullptr && !binding->backlog.empty()) Pump(binding);
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
  const uint64_t now = uv_now(loop_);
  if (now - last_log_ms_ >= 1000) {
    std::fprintf(stderr, "wisp: %s: refused a message on '%s': %s\n", binding->name.c_str(),
                 message.subject.c_str(), reason.c_str());
    last_log_ms_ = now;
  } else {
    ++unlogged_;
  }
}

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
    message.headers.emplace_back("Nats-Service-Error", outcome.error_message);
    message.headers.emplace_back("Nats-Service-Error-Code", std::to_string(outcome.http_status));
    message.headers.emplace_back("Content-Type", "application/json");
    message.data = triggers::JsonErrorBody(outcome.error_code, outcome.error_message);
  }
  Status s = broker_->Publish(std::move(message));
  if (!s.ok()) std::fprintf(stderr, "wisp: cannot send a reply: %s\n", s.ToString().c_str());
}

void EventTriggers::PublishEmitted(const std::string& name, InvocationOutcome* outcome) {
  if (!outcome->has_result || outcome->result.events_size() == 0) return;
  proto::Result& result = outcome->result;
  if (result.status() >= 500) return;  // the invocation failed: its events go nowhere
  const triggers::EventDefaults defaults{"/wisp/fn/" + name, "io.wisp.event"};
  std::vector<triggers::BrokerMessage> messages;
  messages.reserve(static_cast<size_t>(result.events_size()));
  Status bad;
  int index = 0;
  for (proto::Event& event : *result.mutable_events()) {
    ++index;
    triggers::BrokerMessage message;
    message.subject = std::move(*event.mutable_subject());
    message.data = std::move(*event.mutable_data());
    if (static_cast<size_t>(event.headers_size()) > kMaxEmittedHeaders) {
      bad = Status::InvalidArgument("more than " + std::to_string(kMaxEmittedHeaders) + " headers");
    }
    for (proto::Header& h : *event.mutable_headers()) {
      message.headers.emplace_back(std::move(*h.mutable_name()), std::move(*h.mutable_value()));
    }
    if (bad.ok()) bad = triggers::ValidatePublishSubject(message.subject);
    if (bad.ok()) bad = triggers::NormalizeCloudEvent(&message, defaults);
    if (!bad.ok()) {
      ++counters_.emit_refused;
      outcome->has_result = false;
      outcome->http_status = 502;
      outcome->error_code = "invalid_event";
      outcome->error_message = "function " + name + " emitted an invalid event (#" +
                               std::to_string(index) + "); none was published: " + bad.message();
      outcome->result.Clear();
      return;
    }
    messages.push_back(std::move(message));
  }
  result.clear_events();
  for (triggers::BrokerMessage& message : messages) {
    const std::string subject = message.subject;
    Status s = broker_->Publish(std::move(message));
    if (!s.ok()) {
      std::fprintf(stderr, "wisp: %s: cannot publish an emitted event on '%s': %s\n", name.c_str(),
                   subject.c_str(), s.ToString().c_str());
      continue;
    }
    ++counters_.emitted;
  }
}

void EventTriggers::Pump(Binding* binding) {
  while (!binding->backlog.empty() && HasRoom(binding)) {
    triggers::BrokerMessage message = std::move(binding->backlog.front());
    binding->backlog.pop_front();
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
  if (binding->paused && binding->backlog.size() <= kBacklogLow) SetPaused(binding, false);
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
  std::vector<std::string> names;
  for (const auto& [name, binding] : bindings_) names.push_back(name);
  for (const std::string& name : names) Unbind(name);
  closed_ = true;
  uv_timer_stop(pump_timer_);
  CloseOwnedTimer(pump_timer_, [this, done = std::move(on_closed)] {
    pump_timer_ = nullptr;
    if (done) done();
  });
}

}  // namespace wisp::runtime
