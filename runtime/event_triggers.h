// Event triggers: connects deployed functions to the broker.
//
// Each deployed function, loaded or not, is subscribed to "wisp.fn.<name>"
// (queue group "q", the NATS service convention) and to each subject it was
// deployed with (queue group "wisp.<name>", so every function gets each
// event once however many controllers share the broker). A message that
// arrives is normalised to a CloudEvent (binary mode) and runs the function;
// the first one loads it.
//
// Request-reply: a message with a reply subject gets the function's reply;
// a failure comes back with the Nats-Service-Error and
// Nats-Service-Error-Code headers. A request the function's queue cannot
// take is refused at once (503).
//
// Fire-and-forget events: never dropped here while the function is
// deployed. What the function's queue cannot take (kInflightMaxBytes bounds
// the bytes of its queued events too) waits in a backlog; past kBacklogHigh
// events or kBacklogMaxBytes the subscriptions are paused and further events
// wait in the broker under its slow-consumer policy (counted and logged
// there). A redeploy keeps the subscriptions whose subject is unchanged, and
// the backlog.
//
// Emitted events: after an invocation succeeds (handler returned 0, status
// below 500), PublishEmitted publishes what it emitted, in order. If any is
// invalid (a bad subject or header, structured mode, over the broker's
// max payload, more than kMaxEmittedEvents), none is published and the
// outcome becomes a 502 invalid_event.
//
// Ownership: borrows the loop and the broker (both outlive it); owns its
// bindings and its pump timer (freed in the close callback).
// Threading: the loop thread only.
#ifndef WISP_RUNTIME_EVENT_TRIGGERS_H_
#define WISP_RUNTIME_EVENT_TRIGGERS_H_

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/base/loop_thread.h"
#include "runtime/base/status.h"
#include "runtime/dispatcher.h"
#include "triggers/broker.h"

namespace wisp::runtime {

// Per-endpoint figures for the NATS service API ($SRV.STATS).
struct EndpointStats {
  uint64_t requests = 0;
  uint64_t errors = 0;
  std::string last_error;
  uint64_t processing_ns = 0;
};

struct Endpoint {
  std::string name;
  std::string subject;
  std::string queue_group;
  EndpointStats stats;
  triggers::SubscriptionId subscription = 0;
};

struct EventTriggerCounters {
  uint64_t received = 0;     // messages that reached a function's trigger
  uint64_t rejected = 0;     // malformed or oversized, refused
  uint64_t failed = 0;       // fire-and-forget events whose invocation failed
  uint64_t emitted = 0;      // events published on behalf of functions
  uint64_t emit_refused = 0; // invocations whose emitted events were invalid
};

class EventTriggers {
 public:
  // The current dispatcher of a function, or nullptr once it is removed.
  using DispatcherLookup = std::function<Dispatcher*(const std::string& name)>;

  EventTriggers(uv_loop_t* loop, triggers::Broker* broker, DispatcherLookup lookup,
                size_t max_payload_bytes);
  ~EventTriggers();  // Close first
  EventTriggers(const EventTriggers&) = delete;
  EventTriggers& operator=(const EventTriggers&) = delete;

  // Subscribes name's triggers, replacing an earlier binding of name (its
  // waiting events carry over). InvalidArgument for a malformed subject, in
  // which case nothing changes.
  [[nodiscard]] Status Bind(const std::string& name, const std::vector<std::string>& subjects);
  // Unsubscribes name; events still waiting for it are reported and dropped.
  void Unbind(const std::string& name);

  // name's endpoints, or nullptr when unbound. Valid until the next Bind or
  // Unbind of name.
  const std::vector<Endpoint>* Endpoints(const std::string& name) const;
  // Zeroes name's endpoint figures (a service instance starts from zero).
  void ResetStats(const std::string& name);

  // See "Emitted events" above. outcome is changed in place. cause_id: the
  // ce-id of the event that ran the invocation, if any; an emitted event
  // without a ce-id then gets one derived from it, the function and its
  // index, so a rerun of the same event emits the same ids (deduplicated
  // downstream).
  void PublishEmitted(const std::string& name, InvocationOutcome* outcome,
                      const std::string& cause_id = "");

  // Publishes one valid event (subject checked, CloudEvent attributes set):
  // captured for durable functions first (see set_capture), then on the
  // broker. The first error is returned.
  [[nodiscard]] Status PublishEvent(triggers::BrokerMessage message);

  // Called with each event published through PublishEmitted or
  // PublishEvent before the broker gets it (durable capture); an error
  // fails the publish. A capture that published the event itself (a
  // JetStream publish, which may move from the message) sets *published
  // and the broker publish is skipped.
  using Capture = std::function<Status(triggers::BrokerMessage&, bool* published)>;
  void set_capture(Capture capture) {
    capture_ = std::move(capture);
  }

  // Replies to a request message (reply subject set) with outcome.
  void Respond(const std::string& reply_subject, InvocationOutcome& outcome);

  const EventTriggerCounters& counters() const { return counters_; }

  // Unsubscribes every trigger (on NATS the queue groups' other members get
  // the events from now on); events still in the backlog are reported and
  // dropped. The controller calls it first when shutting down.
  void StopReceiving();

  // StopReceiving, then closes the pump timer; on_closed runs from its close
  // callback.
  void Close(std::function<void()> on_closed);

  static constexpr size_t kBacklogHigh = 512;
  static constexpr size_t kBacklogLow = 128;
  static constexpr size_t kBacklogMaxBytes = 32 * 1024 * 1024;
  static constexpr size_t kInflightMaxBytes = 32 * 1024 * 1024;
  static constexpr int kMaxEmittedEvents = 1000;

 private:
  struct Binding {
    std::string name;
    uint64_t generation = 0;
    std::vector<Endpoint> endpoints;
    std::deque<triggers::BrokerMessage> backlog;  // fire-and-forget, waiting for room
    size_t backlog_bytes = 0;
    size_t inflight_bytes = 0;  // fire-and-forget events handed to the dispatcher
    bool paused = false;
  };

  void OnMessage(const std::string& name, const std::string& subject, const std::string& group,
                 triggers::BrokerMessage message);
  void Submit(Binding* binding, size_t endpoint, triggers::BrokerMessage message);
  void Finish(const std::string& name, uint64_t generation, size_t endpoint, uint64_t started_ns,
              size_t event_bytes, const std::string& reply, const std::string& event_label,
              InvocationOutcome outcome);
  void Backlog(Binding* binding, triggers::BrokerMessage message);
  void LogRateLimited(const std::string& line);
  void Refuse(Binding* binding, size_t endpoint, const triggers::BrokerMessage& message,
              int status, const std::string& reason);
  bool HasRoom(Binding* binding);
  void Pump(Binding* binding);
  void SetPaused(Binding* binding, bool paused);
  void ArmPump();
  static void PumpCb(uv_timer_t* timer);

  uv_loop_t* loop_;
  triggers::Broker* broker_;
  DispatcherLookup lookup_;
  Capture capture_;
  size_t max_payload_bytes_;
  LoopThread loop_thread_;
  std::map<std::string, std::unique_ptr<Binding>> bindings_;
  uint64_t next_generation_ = 1;
  uv_timer_t* pump_timer_;  // owned; freed in its close callback
  bool closed_ = false;
  EventTriggerCounters counters_;
  uint64_t last_log_ms_ = 0;
  uint64_t unlogged_ = 0;
};

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_EVENT_TRIGGERS_H_
