#include "runtime/durable_delivery.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>

#include "runtime/base/random.h"
#include "runtime/base/time_format.h"
#include "runtime/base/uv_timer.h"
#include "runtime/event_triggers.h"
#include "runtime/trace_context.h"
#include "triggers/cloudevents.h"
#include "wisp/function.h"
#include "worker.pb.h"

namespace wisp::runtime {
namespace {

int64_t NowMs() { return NowUnixMicros() / 1000; }

}  // namespace

DurableDelivery::DurableDelivery(uv_loop_t* loop, EventQueue* queue, EventTriggers* events,
                                 DispatcherLookup lookup,
                                 std::function<size_t(const std::string&)> capacity)
    : loop_(loop),
      queue_(queue),
      events_(events),
      lookup_(std::move(lookup)),
      capacity_(std::move(capacity)),
      pump_timer_(new uv_timer_t),
      retry_timer_(new uv_timer_t) {
  uv_timer_init(loop_, pump_timer_);
  uv_timer_init(loop_, retry_timer_);
  pump_timer_->data = this;
  retry_timer_->data = this;
  counters_.redelivered = queue_->redelivered();
}

DurableDelivery::~DurableDelivery() { WISP_CHECK(pump_timer_ == nullptr && retry_timer_ == nullptr); }

double DurableDelivery::Jitter01() {
  uint32_t r = 0;
  FillRandom(&r, sizeof(r));
  return static_cast<double>(r) / 4294967296.0;
}

std::string DurableDelivery::FailureText(const InvocationOutcome& outcome) {
  if (!outcome.has_result) return outcome.error_message;
  return "the function answered with status " + std::to_string(outcome.result.status());
}

std::string DurableDelivery::FailureCode(const InvocationOutcome& outcome) {
  if (!outcome.has_result) return outcome.error_code;
  return outcome.result.status() >= 500 ? "function_error" : "";
}

triggers::BrokerMessage DurableDelivery::DeadLetterMessage(const std::string& name,
                                                           const std::string& subject,
                                                           triggers::BrokerMessage event,
                                                           uint32_t attempts,
                                                           const InvocationOutcome& outcome) {
  triggers::BrokerMessage letter;
  letter.subject = subject;
  letter.data = std::move(event.data);
  for (auto& [header, value] : event.headers) {
    // The original ce-id would be taken for a duplicate.
    if (header == "ce-id") {
      letter.headers.emplace_back("ce-id", value + ".dead");
      continue;
    }
    letter.headers.emplace_back(std::move(header), std::move(value));
  }
  letter.headers.emplace_back("wisp-function", name);
  letter.headers.emplace_back("wisp-subject", event.subject);
  letter.headers.emplace_back("wisp-attempts", std::to_string(attempts));
  letter.headers.emplace_back("wisp-error-code", FailureCode(outcome));
  letter.headers.emplace_back("wisp-error", FailureText(outcome).substr(0, 1024));
  return letter;
}

uint64_t DurableDelivery::BackoffMs(const DeliveryPolicy& policy, uint32_t attempt,
                                    double jitter01) {
  const double exponent = std::min<uint32_t>(attempt > 0 ? attempt - 1 : 0, 40);
  double delay = static_cast<double>(policy.backoff_ms) * std::pow(2.0, exponent);
  delay = std::min(delay, static_cast<double>(policy.max_backoff_ms));
  return static_cast<uint64_t>(delay * (0.75 + 0.25 * std::clamp(jitter01, 0.0, 1.0)));
}

void DurableDelivery::Bind(const std::string& name, std::vector<std::string> subjects,
                           DeliveryPolicy policy) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  if (policy.dead_letter_subject.empty()) policy.dead_letter_subject = "wisp.dlq." + name;
  bindings_[name] = Binding{std::move(subjects), std::move(policy)};
  SchedulePump();
}

void DurableDelivery::Remove(const std::string& name) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  bindings_.erase(name);
  inflight_.erase(name);  // late outcomes find no binding and change nothing
  StatusOr<size_t> removed = queue_->RemoveFunction(name);
  if (!removed.ok()) {
    CountFailure(removed.status());
  } else if (*removed > 0) {
    std::fprintf(stderr, "wisp: %s removed: %zu waiting durable events deleted\n", name.c_str(),
                 *removed);
  }
}

bool DurableDelivery::IsDurable(const std::string& name) const {
  auto it = bindings_.find(name);
  return it != bindings_.end() && !it->second.subjects.empty();
}

size_t DurableDelivery::inflight(const std::string& name) const {
  auto it = inflight_.find(name);
  return it == inflight_.end() ? 0 : it->second.size();
}

Status DurableDelivery::Capture(const triggers::BrokerMessage& message, size_t* stored) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  *stored = 0;
  std::vector<const std::string*> targets;
  for (const auto& [name, binding] : bindings_) {
    for (const std::string& pattern : binding.subjects) {
      if (triggers::SubjectMatches(pattern, message.subject)) {
        targets.push_back(&name);
        break;
      }
    }
  }
  if (targets.empty()) return Status::OK();
  const int64_t now = NowMs();
  const std::string* id = triggers::FindHeader(message.headers, "ce-id");
  StatusOr<bool> seen = queue_->SeenBefore(id != nullptr ? *id : std::string(), now);
  if (!seen.ok()) {
    CountFailure(seen.status());
    return seen.status();
  }
  if (*seen) {
    ++counters_.duplicates;
    return Status::OK();
  }
  for (const std::string* name : targets) {
    Status s = queue_->Enqueue(*name, message, now);
    if (!s.ok()) {
      CountFailure(s);
      return s;
    }
    ++*stored;
    ++counters_.stored;
  }
  SchedulePump();
  return Status::OK();
}

void DurableDelivery::SchedulePump() {
  if (closed_ || uv_is_active(reinterpret_cast<uv_handle_t*>(pump_timer_))) return;
  uv_timer_start(pump_timer_, PumpCb, 0, 0);
}

void DurableDelivery::PumpCb(uv_timer_t* timer) {
  static_cast<DurableDelivery*>(timer->data)->PumpAll();
}

void DurableDelivery::RetryCb(uv_timer_t* timer) {
  auto* self = static_cast<DurableDelivery*>(timer->data);
  self->retry_due_ms_ = -1;
  self->PumpAll();
}

void DurableDelivery::PumpAll() {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  if (closed_) return;
  for (const auto& [name, binding] : bindings_) Pump(name);
}

void DurableDelivery::Pump(const std::string& name) {
  Dispatcher* dispatcher = lookup_(name);
  if (dispatcher == nullptr || !queue_->is_open()) return;
  std::set<int64_t>& leased = inflight_[name];
  const size_t capacity = capacity_(name);
  if (leased.size() >= capacity || !dispatcher->has_room()) return;
  const size_t room = capacity - leased.size();
  const int64_t now = NowMs();
  StatusOr<std::vector<QueuedEvent>> due = queue_->Due(name, now, room);
  if (!due.ok()) return CountFailure(due.status());
  const size_t got = due->size();
  for (QueuedEvent& event : *due) {
    if (leased.count(event.id) != 0) continue;  // a rolled-back lease; it runs already
    if (!dispatcher->has_room()) break;
    Deliver(name, std::move(event));
  }
  if (got < room) {
    // Everything due is out: wake up for the next retry.
    StatusOr<int64_t> next = queue_->NextDue(name);
    if (!next.ok()) return CountFailure(next.status());
    if (*next >= 0) ArmRetryTimer(*next);
  }
}

void DurableDelivery::ArmRetryTimer(int64_t due_ms) {
  if (closed_) return;
  if (retry_due_ms_ >= 0 && retry_due_ms_ <= due_ms) return;
  retry_due_ms_ = due_ms;
  const int64_t wait = std::max<int64_t>(due_ms - NowMs(), 0);
  uv_timer_start(retry_timer_, RetryCb, static_cast<uint64_t>(wait), 0);
}

void DurableDelivery::Deliver(const std::string& name, QueuedEvent event) {
  Status s = queue_->MarkDelivered(event.id);
  if (!s.ok()) return CountFailure(s);
  inflight_[name].insert(event.id);
  const uint32_t attempt = event.deliveries + 1;
  proto::Invoke invoke;
  invoke.set_trigger(WISP_TRIGGER_EVENT);
  invoke.set_attempt(attempt);
  for (const auto& [header, value] : event.message.headers) {
    proto::Header* h = invoke.add_headers();
    h->set_name(header);
    h->set_value(value);
  }
  StartInvocationSpan(&invoke);
  invoke.set_subject(event.message.subject);
  invoke.set_body(event.message.data);
  lookup_(name)->Submit(std::move(invoke), [this, name, id = event.id, attempt,
                                            message = std::move(event.message)](
                                               InvocationOutcome outcome) mutable {
    Finish(name, id, attempt, std::move(message), std::move(outcome));
  });
}

void DurableDelivery::Finish(const std::string& name, int64_t id, uint32_t attempt,
                             triggers::BrokerMessage event, InvocationOutcome outcome) {
  auto leased = inflight_.find(name);
  if (leased == inflight_.end() || leased->second.erase(id) == 0) return;  // removed meanwhile
  const std::string* event_id = triggers::FindHeader(event.headers, "ce-id");
  events_->PublishEmitted(name, &outcome, event_id != nullptr ? *event_id : std::string());
  const bool failed = !outcome.has_result || outcome.result.status() >= 500;
  auto binding = bindings_.find(name);
  const DeliveryPolicy policy =
      binding != bindings_.end() ? binding->second.policy : DeliveryPolicy{};
  Status s;
  if (!failed) {
    s = queue_->Ack(id);
    if (s.ok()) ++counters_.acked;
  } else if (attempt >= policy.max_attempts) {
    DeadLetterEvent(name, id, attempt, std::move(event), outcome);
  } else {
    const int64_t due = NowMs() + static_cast<int64_t>(BackoffMs(policy, attempt, Jitter01()));
    s = queue_->Retry(id, due);
    if (s.ok()) {
      ++counters_.retried;
      ArmRetryTimer(due);
    }
  }
  if (!s.ok()) CountFailure(s);
  SchedulePump();
}

void DurableDelivery::DeadLetterEvent(const std::string& name, int64_t id, uint32_t attempt,
                                      triggers::BrokerMessage event,
                                      const InvocationOutcome& outcome) {
  auto binding = bindings_.find(name);
  const std::string subject = binding != bindings_.end()
                                  ? binding->second.policy.dead_letter_subject
                                  : "wisp.dlq." + name;
  const std::string code = FailureCode(outcome);
  const std::string error = FailureText(outcome);
  Status s = queue_->MoveToDeadLetters(id, attempt, code, error, NowMs());
  if (!s.ok()) return CountFailure(s);
  ++counters_.dead_lettered;
  std::fprintf(stderr, "wisp: %s: event on '%s' dead-lettered after %u attempts: %s\n",
               name.c_str(), event.subject.c_str(), attempt, error.c_str());
  triggers::BrokerMessage letter = DeadLetterMessage(name, subject, std::move(event), attempt, outcome);
  s = events_->PublishEvent(std::move(letter));
  if (!s.ok()) {
    std::fprintf(stderr, "wisp: %s: the dead letter could not be published on '%s': %s\n",
                 name.c_str(), subject.c_str(), s.ToString().c_str());
  }
}

StatusOr<size_t> DurableDelivery::Replay(const std::string& name, int64_t id) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  StatusOr<size_t> replayed = queue_->Replay(name, id, NowMs());
  if (replayed.ok()) SchedulePump();
  return replayed;
}

void DurableDelivery::CountFailure(const Status& s) {
  ++counters_.store_failed;
  std::fprintf(stderr, "wisp: durable events: %s\n", s.ToString().c_str());
}

void DurableDelivery::Close(std::function<void()> on_closed) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  closed_ = true;  // outcomes still arriving are acknowledged; nothing new goes out
  auto remaining = std::make_shared<int>(2);
  auto one_closed = [remaining, done = std::move(on_closed)] {
    if (--*remaining == 0 && done) done();
  };
  CloseOwnedTimer(pump_timer_, one_closed);
  CloseOwnedTimer(retry_timer_, one_closed);
  pump_timer_ = nullptr;
  retry_timer_ = nullptr;
}

}  // namespace wisp::runtime
