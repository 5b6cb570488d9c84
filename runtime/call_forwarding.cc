#include "runtime/call_forwarding.h"

#include <cstdio>
#include <set>

#include "runtime/base/uv_timer.h"
#include "wisp/function.h"

namespace wisp::runtime {
namespace {

// Whether text is 1..max characters, each a letter, a digit or one of extra.
bool TokenOf(const std::string& text, size_t max, std::string_view extra) {
  if (text.empty() || text.size() > max) return false;
  for (char c : text) {
    const bool plain = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!plain && extra.find(c) == std::string_view::npos) return false;
  }
  return true;
}

// What a forwarded call must look like: an HTTP call as HandleInvoke builds
// it (the ids are the forwarding node's; they name the call in its records).
bool WellFormedForwardedCall(const proto::Invoke& invoke) {
  return invoke.trigger() == WISP_TRIGGER_HTTP && invoke.attempt() == 1 &&
         invoke.call_chain_size() == 0 && invoke.subject().empty() &&
         TokenOf(invoke.method(), 32, "-_") && TokenOf(invoke.invocation_id(), 64, "-") &&
         (invoke.trace_id().empty() || (invoke.trace_id().size() == 32 &&
                                        TokenOf(invoke.trace_id(), 32, ""))) &&
         (invoke.span_id().empty() || (invoke.span_id().size() == 16 &&
                                       TokenOf(invoke.span_id(), 16, "")));
}

InvocationOutcome Refusal(int status, std::string code, std::string message) {
  InvocationOutcome outcome;
  outcome.http_status = status;
  outcome.error_code = std::move(code);
  outcome.error_message = std::move(message);
  return outcome;
}

}  // namespace

CallForwarding::CallForwarding(uv_loop_t* loop, triggers::Broker* broker, BrokerRequests* requests,
                               std::string cluster, std::string node, size_t max_request_bytes,
                               Hooks hooks)
    : loop_(loop),
      broker_(broker),
      requests_(requests),
      cluster_(std::move(cluster)),
      node_(std::move(node)),
      max_request_bytes_(max_request_bytes),
      hooks_(std::move(hooks)),
      timer_(new uv_timer_t) {
  uv_timer_init(loop_, timer_);
  timer_->data = this;
}

CallForwarding::~CallForwarding() { WISP_CHECK(closed_ && timer_ == nullptr); }

std::string CallForwarding::Subject(const std::string& name) const {
  return "wisp.fwd." + cluster_ + "." + name;
}

Status CallForwarding::Start() {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  SyncOffers();
  uv_timer_start(timer_, TimerCb, kOfferSyncMs, kOfferSyncMs);
  return Status::OK();
}

void CallForwarding::TimerCb(uv_timer_t* timer) {
  static_cast<CallForwarding*>(timer->data)->SyncOffers();
}

void CallForwarding::SyncOffers() {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  if (closed_) return;
  std::set<std::string> wanted;
  for (const std::string& name : hooks_.names()) {
    Dispatcher* dispatcher = hooks_.dispatcher(name);
    // Less than half full: room for this node's own callers too.
    if (dispatcher != nullptr && dispatcher->has_room() &&
        dispatcher->queue_depth() * 2 < dispatcher->spec().max_queue) {
      wanted.insert(name);
    }
  }
  for (auto it = offers_.begin(); it != offers_.end();) {
    if (wanted.count(it->first) != 0) {
      ++it;
      continue;
    }
    broker_->Unsubscribe(it->second);
    it = offers_.erase(it);
  }
  for (const std::string& name : wanted) {
    if (offers_.count(name) != 0) continue;
    StatusOr<triggers::SubscriptionId> id =
        broker_->Subscribe(Subject(name), "fwd", [this, name](triggers::BrokerMessage message) {
          OnRequest(name, std::move(message));
        });
    // Not offering is safe (calls stay where they are); tried again next tick.
    if (id.ok()) offers_.emplace(name, *id);
  }
}

Status CallForwarding::Forward(const std::string& name, const proto::Invoke& invoke,
                               uint64_t timeout_ms, ForwardDone done) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  triggers::BrokerMessage request;
  request.subject = Subject(name);
  if (!invoke.SerializeToString(&request.data)) request.data.clear();
  if (request.data.empty() || request.data.size() > broker_->max_payload()) {
    return Status::InvalidArgument("the call is too large to forward to another node");
  }
  // Full here: stop offering before asking, so the call does not come back.
  if (auto offer = offers_.find(name); offer != offers_.end()) {
    broker_->Unsubscribe(offer->second);
    offers_.erase(offer);
  }
  ++counters_.forwarded;
  requests_->Request(
      std::move(request), timeout_ms,
      [this, name, timeout_ms, done = std::move(done)](Status status,
                                                       triggers::BrokerMessage reply) {
        if (status.code() == Status::Code::kNotFound) {
          ++counters_.unplaced;
          InvocationOutcome outcome = Refusal(
              503, "no_capacity",
              "function " + name + " has no room here and no other node of cluster " + cluster_ +
                  " has room for it");
          outcome.retry_after_s = 1;
          return done(std::move(outcome), "");
        }
        if (status.code() == Status::Code::kTimeout) {
          return done(Refusal(504, "timeout",
                              "function " + name + " was forwarded to another node, which did "
                              "not answer within " + std::to_string(timeout_ms) + " ms"),
                      "");
        }
        if (!status.ok()) {
          return done(Refusal(503, "forward_failed",
                              "function " + name + " could not be forwarded: " + status.message()),
                      "");
        }
        proto::ForwardedOutcome forwarded;
        if (!forwarded.ParseFromString(reply.data)) {
          return done(Refusal(502, "forward_failed",
                              "function " + name + " was forwarded to another node, whose "
                              "answer could not be read"),
                      "");
        }
        InvocationOutcome outcome;
        outcome.has_result = forwarded.has_result();
        if (outcome.has_result) {
          outcome.result = std::move(*forwarded.mutable_result());
        } else {
          const int http = forwarded.http_status();
          outcome.http_status = http >= 400 && http <= 599 ? http : 502;
          outcome.error_code = forwarded.error_code().empty() ? "forward_failed"
                                                              : forwarded.error_code();
          outcome.error_message = forwarded.error_message();
          outcome.retry_after_s = static_cast<int>(std::min(forwarded.retry_after_s(), 3600u));
        }
        outcome.version = forwarded.version();
        done(std::move(outcome), forwarded.node());
      });
  return Status::OK();
}

void CallForwarding::OnRequest(const std::string& name, triggers::BrokerMessage message) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  if (message.reply.empty() || !triggers::ValidatePublishSubject(message.reply).ok()) {
    ++counters_.refused;  // nobody to answer
    return;
  }
  proto::Invoke invoke;
  if (!invoke.ParseFromString(message.data) || !WellFormedForwardedCall(invoke)) {
    ++counters_.refused;
    return Answer(message.reply, Refusal(400, "bad_forward", "not a forwarded HTTP call"));
  }
  if (invoke.body().size() > max_request_bytes_) {
    ++counters_.refused;
    return Answer(message.reply,
                  Refusal(413, "payload_too_large",
                          "request body of " + std::to_string(invoke.body().size()) +
                              " bytes exceeds the limit of " + std::to_string(max_request_bytes_)));
  }
  Dispatcher* dispatcher = hooks_.dispatcher(name);
  if (dispatcher == nullptr) {
    ++counters_.refused;
    return Answer(message.reply, Refusal(404, "function_not_found",
                                         "no function named '" + name + "' is deployed on " + node_));
  }
  if (!dispatcher->has_room()) {  // filled up since it last offered
    ++counters_.refused;
    InvocationOutcome outcome = Refusal(503, "queue_full",
                                        "function " + name + " has no room on " + node_ + " either");
    outcome.retry_after_s = 1;
    return Answer(message.reply, outcome);
  }
  ++counters_.taken;
  hooks_.run(name, std::move(invoke),
             [this, reply = std::move(message.reply)](InvocationOutcome outcome) {
               Answer(reply, outcome);
             });
}

void CallForwarding::Answer(const std::string& reply, const InvocationOutcome& outcome) {
  proto::ForwardedOutcome forwarded;
  if (outcome.has_result) {
    *forwarded.mutable_result() = outcome.result;
  } else {
    forwarded.set_http_status(outcome.http_status);
    forwarded.set_error_code(outcome.error_code);
    forwarded.set_error_message(outcome.error_message);
    forwarded.set_retry_after_s(static_cast<uint32_t>(std::max(outcome.retry_after_s, 0)));
  }
  forwarded.set_node(node_);
  forwarded.set_version(outcome.version);
  triggers::BrokerMessage message;
  message.subject = reply;
  if (!forwarded.SerializeToString(&message.data) ||
      message.data.size() > broker_->max_payload()) {
    forwarded.Clear();
    forwarded.set_http_status(502);
    forwarded.set_error_code("reply_too_large");
    forwarded.set_error_message("the reply is larger than the broker carries between nodes");
    forwarded.set_node(node_);
    message.data = forwarded.SerializeAsString();
  }
  Status s = broker_->Publish(std::move(message));
  if (!s.ok()) {
    std::fprintf(stderr, "wisp: a forwarded call's answer was not sent: %s\n",
                 s.ToString().c_str());
  }
}

std::vector<std::string> CallForwarding::Offering() const {
  std::vector<std::string> names;
  names.reserve(offers_.size());
  for (const auto& [name, id] : offers_) names.push_back(name);
  return names;
}

void CallForwarding::Close(std::function<void()> on_closed) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  closed_ = true;
  for (const auto& [name, id] : offers_) broker_->Unsubscribe(id);
  offers_.clear();
  uv_timer_t* timer = timer_;
  timer_ = nullptr;
  CloseOwnedTimer(timer, std::move(on_closed));
}

}  // namespace wisp::runtime
