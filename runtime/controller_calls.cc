// Synchronous composition: a function's host->call runs another function
// and hands its reply back to the waiting worker.
//
// The call chain (Invoke.call_chain) lists the functions waiting on an
// invocation; a call to one of them is refused with 508 call_cycle, since
// it would wait for itself. A called function with no room is refused with
// 503 at once rather than queued behind its own callers. The call's timeout
// is its own (timeout_ms), else the called function's.
#include <memory>

#include "runtime/base/uv_timer.h"
#include "runtime/controller.h"
#include "runtime/trace_context.h"
#include "triggers/http_server.h"
#include "triggers/route.h"
#include "wisp/function.h"

namespace wisp::runtime {
namespace {

constexpr int kMaxCallDepth = 16;

proto::CallReply Refusal(int status, std::string_view code, std::string_view message) {
  proto::CallReply reply;
  reply.set_status(status);
  reply.set_failed(true);
  reply.set_body(triggers::JsonErrorBody(code, message));
  return reply;
}

// One call in flight: answered once, by the outcome or by its timer.
struct PendingCall {
  std::function<void(proto::CallReply)> reply;
  uv_timer_t* timer = nullptr;  // owned; freed in its close callback
  bool answered = false;

  void Answer(proto::CallReply answer) {
    if (answered) return;
    answered = true;
    if (timer != nullptr) {
      CloseOwnedTimer(timer, nullptr);
      timer = nullptr;
    }
    reply(std::move(answer));
  }
};

}  // namespace

void Controller::HandleCall(const std::string& caller_name, const proto::Invoke& caller,
                            proto::Call call, std::function<void(proto::CallReply)> reply) {
  const std::string& name = call.function();
  if (!triggers::IsValidFunctionName(name)) {
    return reply(Refusal(400, "invalid_name", "function names match ^[a-z0-9][a-z0-9_-]{0,62}$"));
  }
  auto it = functions_.find(name);
  if (it == functions_.end() || shutting_down_) {
    return reply(Refusal(404, "function_not_found", "no function named '" + name + "' is deployed"));
  }
  std::vector<std::string> chain(caller.call_chain().begin(), caller.call_chain().end());
  chain.push_back(caller_name);
  for (const std::string& waiting : chain) {
    if (waiting != name) continue;
    std::string path;
    for (const std::string& f : chain) {
      path += f;
      path += " -> ";
    }
    return reply(Refusal(508, "call_cycle",
                         "calling " + name + " would wait for itself: " + path + name));
  }
  if (static_cast<int>(chain.size()) >= kMaxCallDepth) {
    return reply(Refusal(508, "call_depth",
                         "calls nest at most " + std::to_string(kMaxCallDepth) + " deep"));
  }
  Dispatcher* dispatcher = it->second->dispatcher.get();
  if (!dispatcher->has_room()) {
    return reply(Refusal(503, "no_capacity",
                         "function " + name + " has no worker or queue room for the call"));
  }

  proto::Invoke invoke;
  invoke.set_trigger(WISP_TRIGGER_CALL);
  invoke.set_method("POST");
  invoke.set_path("/");
  invoke.set_body(std::move(*call.mutable_body()));
  invoke.set_attempt(1);
  const uint64_t invocation = ++invocations_started_;
  invoke.set_invocation_id(InvocationId(invocation));
  for (const std::string& f : chain) invoke.add_call_chain(f);
  proto::Header* from = invoke.add_headers();
  from->set_name("wisp-caller");
  from->set_value(caller_name);
  if (!caller.trace_id().empty()) {
    // The callee's span is a child of the caller's.
    proto::Header* parent = invoke.add_headers();
    parent->set_name("traceparent");
    parent->set_value(FormatTraceparent({caller.trace_id(), caller.span_id(), "01"}));
  }
  StartInvocationSpan(&invoke);

  auto pending = std::make_shared<PendingCall>();
  pending->reply = std::move(reply);
  const uint64_t timeout_ms = call.timeout_ms();
  if (timeout_ms > 0 && timeout_ms < it->second->record.timeout_ms) {
    pending->timer = new uv_timer_t;
    uv_timer_init(loop_, pending->timer);
    pending->timer->data = new std::weak_ptr<PendingCall>(pending);
    uv_timer_start(
        pending->timer,
        [](uv_timer_t* timer) {
          auto* weak = static_cast<std::weak_ptr<PendingCall>*>(timer->data);
          std::shared_ptr<PendingCall> call = weak->lock();
          delete weak;
          timer->data = nullptr;
          if (call == nullptr) return;
          call->timer = nullptr;
          CloseOwnedTimer(timer, nullptr);
          call->Answer(Refusal(504, "timeout", "no reply within the call's timeout"));
        },
        timeout_ms, 0);
  }
  dispatcher->Submit(std::move(invoke), [this, name, pending](InvocationOutcome outcome) {
    if (pending->answered) return;
    if (pending->timer != nullptr) {
      delete static_cast<std::weak_ptr<PendingCall>*>(pending->timer->data);
      pending->timer->data = nullptr;
    }
    if (outcome.has_result && outcome.result.events_size() > 0) {
      events_->PublishEmitted(name, &outcome);
    }
    auto answer = [pending](InvocationOutcome outcome) {
      if (!outcome.has_result) {
        return pending->Answer(
            Refusal(outcome.http_status, outcome.error_code, outcome.error_message));
      }
      proto::CallReply reply;
      reply.set_status(OutcomeStatus(outcome));
      reply.set_body(std::move(*outcome.result.mutable_body()));
      pending->Answer(std::move(reply));
    };
    // The caller hears back once the events the callee emitted are stored.
    AfterEventsStored([answer, outcome = std::move(outcome)](Status stored) mutable {
      if (!stored.ok()) {
        outcome = InvocationOutcome{};
        outcome.http_status = 503;
        outcome.error_code = "event_store_failed";
        outcome.error_message = "the events it emitted could not be stored: " + stored.message();
      }
      answer(std::move(outcome));
    });
  });
}

}  // namespace wisp::runtime
