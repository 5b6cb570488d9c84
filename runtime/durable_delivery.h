// Durable triggers on the embedded broker: at-least-once delivery through
// the EventQueue, with retries, exponential backoff and dead letters.
//
// Capture: an event published through the controller (POST /v1/events, an
// emitted event, a dead letter) on a subject a durable function subscribes
// to is stored in that function's queue before the publish is acknowledged
// (its AfterCommit). An event whose ce-id was stored within the dedup window
// is a duplicate: not stored again, counted.
//
// Delivery: each function gets its oldest due events, up to its workers'
// capacity (max_workers x pipeline depth), with the attempt number (1 for
// the first). An event is acknowledged (removed) in the same transaction
// that stores the events its run emitted, so a crash at any point loses
// nothing; what was in flight at a crash runs again (counted: redelivered).
// A failed attempt (handler error, status >= 500, timeout, crash) is
// retried after backoff_ms x 2^(attempt-1), capped at max_backoff_ms, times
// a jitter in [0.75, 1]; after max_attempts it goes to the dead letters and
// is published on the function's dead-letter subject (default
// wisp.dlq.<name>) with wisp-error, wisp-error-code, wisp-attempts,
// wisp-function and wisp-subject headers.
//
// Ordering: events are handed out in the order they were stored. With one
// worker a function runs them in that order, except that a retried event
// runs after the ones stored behind it; with more workers they overlap.
//
// Ownership: borrows the loop, the queue and the event triggers (all outlive
// it); owns its timers (freed in their close callbacks).
// Threading: the loop thread only.
#ifndef WISP_RUNTIME_DURABLE_DELIVERY_H_
#define WISP_RUNTIME_DURABLE_DELIVERY_H_

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "runtime/base/loop_thread.h"
#include "runtime/base/status.h"
#include "runtime/dispatcher.h"
#include "runtime/event_queue.h"
#include "triggers/broker.h"

namespace wisp::runtime {

class EventTriggers;

struct DeliveryPolicy {
  uint32_t max_attempts = 3;
  uint64_t backoff_ms = 1000;
  uint64_t max_backoff_ms = 5 * 60 * 1000;
  std::string dead_letter_subject;  // empty: wisp.dlq.<name>
};

struct DurableCounters {
  uint64_t stored = 0;        // events stored for functions (one per function)
  uint64_t duplicates = 0;    // publishes dropped as duplicates of a recent ce-id
  uint64_t acked = 0;         // events done
  uint64_t retried = 0;       // failed attempts scheduled again
  uint64_t dead_lettered = 0;
  uint64_t redelivered = 0;   // in flight when the last controller stopped
  uint64_t store_failed = 0;  // writes the database refused
};

class DurableDelivery {
 public:
  using DispatcherLookup = std::function<Dispatcher*(const std::string& name)>;

  // events publishes what a function emits (and captures it here first);
  // capacity(name) is how many of name's events may be in flight.
  DurableDelivery(uv_loop_t* loop, EventQueue* queue, EventTriggers* events,
                  DispatcherLookup lookup, std::function<size_t(const std::string&)> capacity);
  ~DurableDelivery();  // Close first
  DurableDelivery(const DurableDelivery&) = delete;
  DurableDelivery& operator=(const DurableDelivery&) = delete;

  // name's durable subjects and policy, replacing earlier ones; its waiting
  // events stay and are delivered under the new policy. Empty subjects:
  // nothing more is captured for name, what waits is still delivered.
  void Bind(const std::string& name, std::vector<std::string> subjects, DeliveryPolicy policy);
  // Forgets name and deletes its waiting events and dead letters.
  void Remove(const std::string& name);

  // Stores message for each durable function whose subjects match it (see
  // Capture above); *stored says for how many (0 for a duplicate). The
  // write joins the queue's group: acknowledge the publisher in
  // queue->AfterCommit. IOError if the database refused it.
  [[nodiscard]] Status Capture(const triggers::BrokerMessage& message, size_t* stored);

  // Hands out what is due, for every bound function.
  void PumpAll();

  // Puts name's dead letters (or only id) back in its queue; see
  // EventQueue::Replay.
  [[nodiscard]] StatusOr<size_t> Replay(const std::string& name, int64_t id);

  // Stops handing out events and closes the timers; on_closed runs from the
  // last close callback. In-flight events stay leased in the database until
  // the next start.
  void Close(std::function<void()> on_closed);

  const DurableCounters& counters() const { return counters_; }
  bool IsDurable(const std::string& name) const;
  size_t inflight(const std::string& name) const;

  // The delay before attempt + 1 after attempt failed (jitter included).
  static uint64_t BackoffMs(const DeliveryPolicy& policy, uint32_t attempt, double jitter01);
  // A jitter in [0, 1) from the kernel's CSPRNG.
  static double Jitter01();
  // Why outcome failed: a code ("function_error" for a status >= 500) and a
  // sentence.
  static std::string FailureCode(const InvocationOutcome& outcome);
  static std::string FailureText(const InvocationOutcome& outcome);
  // The dead letter of event for function name, to publish on subject: its
  // attributes with a ce-id of its own, plus the wisp-* headers.
  static triggers::BrokerMessage DeadLetterMessage(const std::string& name,
                                                   const std::string& subject,
                                                   triggers::BrokerMessage event,
                                                   uint32_t attempts,
                                                   const InvocationOutcome& outcome);

 private:
  struct Binding {
    std::vector<std::string> subjects;
    DeliveryPolicy policy;
  };

  void Pump(const std::string& name);
  void Deliver(const std::string& name, QueuedEvent event);
  void Finish(const std::string& name, int64_t id, uint32_t attempt, triggers::BrokerMessage event,
              InvocationOutcome outcome);
  void DeadLetterEvent(const std::string& name, int64_t id, uint32_t attempt,
                       triggers::BrokerMessage event, const InvocationOutcome& outcome);
  void SchedulePump();
  void ArmRetryTimer(int64_t due_ms);
  void CountFailure(const Status& s);
  static void PumpCb(uv_timer_t* timer);
  static void RetryCb(uv_timer_t* timer);

  uv_loop_t* loop_;
  EventQueue* queue_;
  EventTriggers* events_;
  DispatcherLookup lookup_;
  std::function<size_t(const std::string&)> capacity_;
  LoopThread loop_thread_;
  std::map<std::string, Binding> bindings_;
  std::map<std::string, std::set<int64_t>> inflight_;  // leased ids per function
  uv_timer_t* pump_timer_;   // owned; a pump soon, outside any callback chain
  uv_timer_t* retry_timer_;  // owned; the next retry that falls due
  int64_t retry_due_ms_ = -1;
  bool closed_ = false;
  DurableCounters counters_;
};

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_DURABLE_DELIVERY_H_
