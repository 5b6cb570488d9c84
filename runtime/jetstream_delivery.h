// Durable triggers on NATS: JetStream. Spoken over the broker (the $JS.API
// requests, pull requests and acknowledgements are plain NATS messages), so
// the controller needs no JetStream client of its own.
//
// Stream: one, WISP_EVENTS (file storage, limits retention, kept
// kMaxAgeNs, duplicate window 2 minutes), whose subjects are the durable
// subjects of the functions deployed here, merged with those already on the
// server (other controllers'): a subject another one covers is not added.
// Consumers: one durable pull consumer per function and subject,
// "wisp-<name>-<8 hex of the subject's SHA-256>", explicit acks, AckWait =
// the lease given to Bind (longer than the function's timeout times the
// events it may hold), delivering new messages from its creation on (so
// Bind's ready callback runs once they exist: a deploy is answered when
// its durable subjects take events). A consumer that exists already keeps
// its place: events stored while no controller ran are delivered. Every controller
// on the server pulls from the same consumers, so each event runs once
// across them (a crash: redelivered to another after AckWait).
//
// Publishing: an event published through the controller on a stream
// subject is published with a reply inbox and Nats-Msg-Id = its ce-id (the
// server's dedup); it counts as stored when the PubAck arrives. AfterStored
// runs its callback once every such publish made before it is acknowledged
// (or failed: the callback gets the error).
//
// Delivery: each consumer keeps one pull request (batch = free capacity,
// expiring after kPullExpiresMs) outstanding while it has room. A pull whose
// end the server never reported (its server died, the consumer's leader
// moved, or the consumer was just made and its leader's interest had not
// reached our server yet) is given up kPullGraceMs after it expired, checked
// every kPullCheckMs, and a new one is sent. Until a pull of a consumer has
// been answered, its pulls expire after kFirstPullExpiresMs, so a lost one
// costs seconds, not its whole expiry. Up to kHeldPerWorker events per
// worker are held (running or queued); each one's lease (AckWait: one run
// and a margin) is renewed with +WPI while it is held. The attempt
// number is the delivery count from the message's ack subject. After the
// function: success -> the events it emitted are stored (AfterStored), then
// +ACK; failure -> -NAK with the backoff delay (DurableDelivery::BackoffMs);
// the last attempt -> a dead letter, stored in JetStream (dead_letters(),
// shared by every controller) and published on the dead-letter subject,
// then +TERM; a store that fails is tried again every kRetryMs, the event
// held (its lease renewed) meanwhile.
//
// Replays: each function also has a consumer on ReplaySubject(name), where
// its replayed dead letters are published (wisp-subject names the subject
// they first came on, which the function sees again).
//
// Ownership: borrows the loop, broker, requests and event triggers
// (all outlive it). Threading: the loop thread only.
#ifndef WISP_RUNTIME_JETSTREAM_DELIVERY_H_
#define WISP_RUNTIME_JETSTREAM_DELIVERY_H_

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/base/loop_thread.h"
#include "runtime/base/status.h"
#include "runtime/broker_requests.h"
#include "runtime/dispatcher.h"
#include "runtime/durable_delivery.h"
#include "runtime/event_queue.h"
#include "runtime/jetstream_dead_letters.h"
#include "triggers/broker.h"

namespace wisp::runtime {

class EventTriggers;

struct JetStreamCounters {
  uint64_t stored = 0;        // PubAcks for events published here
  uint64_t duplicates = 0;    // PubAcks saying the Nats-Msg-Id was a duplicate
  uint64_t acked = 0;
  uint64_t retried = 0;       // NAKs with a delay
  uint64_t dead_lettered = 0;
  uint64_t redelivered = 0;   // deliveries after the first
  uint64_t api_errors = 0;    // $JS.API replies that were errors, or none came
  uint64_t lost_pulls = 0;    // pulls whose end never came, replaced
  uint64_t leases_renewed = 0;  // +WPI sent for held events still waiting or running
};

class JetStreamDelivery {
 public:
  using DispatcherLookup = std::function<Dispatcher*(const std::string& name)>;

  static constexpr const char* kStream = "WISP_EVENTS";
  static constexpr int64_t kMaxAgeNs = 7LL * 24 * 3600 * 1000000000LL;
  static constexpr uint64_t kRetryMs = 2000;
  static constexpr uint64_t kLeaseMarginMs = 5000;
  // Events held per worker of a function (running or queued for it). Each
  // held event's lease is renewed (+WPI) once a third of it has passed, so
  // the lease needs to outlast only one run, not the queue ahead of it.
  static constexpr size_t kHeldPerWorker = 8;
  static constexpr int kMaxAckPending = 10000;
  static constexpr uint64_t kPullExpiresMs = 5000;
  static constexpr uint64_t kFirstPullExpiresMs = 1000;
  static constexpr uint64_t kPullGraceMs = 2000;
  static constexpr uint64_t kPullCheckMs = 1000;
  static constexpr uint64_t kApiTimeoutMs = 5000;

  JetStreamDelivery(uv_loop_t* loop, triggers::Broker* broker, BrokerRequests* requests,
                    EventTriggers* events, DispatcherLookup lookup,
                    std::function<size_t(const std::string&)> capacity);
  ~JetStreamDelivery();  // Close first
  JetStreamDelivery(const JetStreamDelivery&) = delete;
  JetStreamDelivery& operator=(const JetStreamDelivery&) = delete;

  // name's durable subjects, policy and AckWait (lease_ms), replacing
  // earlier ones. The stream and consumers are set up in the background
  // (see WhenReady); what fails is tried again every kRetryMs.
  void Bind(const std::string& name, std::vector<std::string> subjects, DeliveryPolicy policy,
            uint64_t lease_ms);
  // Runs done once name's consumers exist (at once if it has none), or
  // with the error that stopped one of them.
  void WhenReady(const std::string& name, std::function<void(Status)> done);
  // Stops pulling for name and deletes its consumers (the events they held
  // for it go with them).
  void Remove(const std::string& name);

  // If message's subject is one of the stream's, publishes it to JetStream
  // (see Publishing), moving from it, and sets *published; else leaves it
  // untouched to the caller.
  [[nodiscard]] Status Capture(triggers::BrokerMessage& message, bool* published);
  // See Publishing above.
  void AfterStored(std::function<void(Status)> done);

  // Stops pulling; outcomes still arriving are acknowledged. on_closed runs
  // from the timer's close callback. Unacknowledged events are redelivered
  // (here after a restart, or to another controller) after their lease.
  void Close(std::function<void()> on_closed);

  // Copies JetStream keeps of the stream (1 by default; 3 on a three-server
  // NATS cluster), applied when the stream is next created or updated. Call
  // before the first Bind.
  void set_replicas(int replicas) {
    replicas_ = replicas;
    dead_letters_.set_replicas(replicas);
  }

  // The dead letters of every function on the server.
  JetStreamDeadLetters& dead_letters() { return dead_letters_; }
  // The subject only name's replay consumer takes.
  static std::string ReplaySubject(const std::string& name) { return kReplayPrefix + name; }
  // Whether subject is ReplaySubject(name), without building it (once per
  // delivered event).
  static bool IsReplaySubject(std::string_view subject, std::string_view name) {
    constexpr std::string_view prefix = kReplayPrefix;
    return subject.size() == prefix.size() + name.size() && subject.starts_with(prefix) &&
           subject.ends_with(name);
  }
  static constexpr const char* kReplayPrefix = "wisp.replay.";

  const JetStreamCounters& counters() const { return counters_; }

  // Whether pattern a matches every subject pattern b matches.
  static bool Covers(std::string_view a, std::string_view b);
  // The delivery count in a JetStream ack subject, 0 if it is not one.
  static uint32_t DeliveryCount(std::string_view ack_subject);
  // The message's stream sequence in a JetStream ack subject, 0 if it is
  // not one.
  static uint64_t StreamSequence(std::string_view ack_subject);

 private:
  struct Consumer {
    std::string function;
    std::string durable;
    std::string subject;
    std::string inbox;  // where its pull requests are answered
    triggers::SubscriptionId subscription = 0;
    bool created = false;
    bool creating = false;
    Status failed;  // why it could not be created, the last time
    uint64_t requested = 0;  // messages the outstanding pull may still bring
    bool pulling = false;
    uint64_t pull_given_up_ms = 0;  // uv_now after which the outstanding pull is lost
    bool answered = false;  // a pull of it was answered: pulls reach its leader
  };
  struct Binding {
    std::vector<std::string> subjects;
    DeliveryPolicy policy;
    uint64_t ack_wait_ms = 0;
    std::map<std::string, std::unique_ptr<Consumer>> consumers;  // by durable name
    size_t inflight = 0;
    // The ack subject of each event held here (running or queued), and
    // when its lease was last renewed (uv_now).
    std::map<std::string, uint64_t> held;
    std::vector<std::function<void(Status)>> ready;
  };

  void Api(const std::string& subject, std::string body,
           std::function<void(Status, triggers::BrokerMessage)> done);
  void SyncStream();
  void OnStreamInfo(Status s, triggers::BrokerMessage reply);
  void EnsureConsumers();
  void CreateConsumer(const std::string& name, Binding* binding, Consumer* consumer);
  void DeleteConsumer(const std::string& durable);
  void Pull(Consumer* consumer);
  void PullAll(const std::string& name);
  // Every kPullCheckMs: ReplaceLostPulls, RenewLeases, RetryDeadLetters.
  void OnTick();
  // Sends a new pull for each consumer whose outstanding one is lost.
  void ReplaceLostPulls();
  // Sends +WPI for each held event whose lease is a third gone.
  void RenewLeases();
  void OnMessage(const std::string& name, const std::string& durable,
                 triggers::BrokerMessage message);
  void Finish(const std::string& name, std::string ack, uint32_t attempt,
              triggers::BrokerMessage event, InvocationOutcome outcome);
  // A dead letter on its way to dead_letters_, with what follows once it is
  // stored: the publish on the dead-letter subject, then +TERM of ack.
  struct PendingDeadLetter {
    std::string name, ack;
    uint32_t attempt = 0;
    std::string code, error;
    triggers::BrokerMessage event, published;
    uint64_t retry_at_ms = 0;  // uv_now; while waiting in unstored_dead_letters_
  };
  void StoreDeadLetter(PendingDeadLetter letter);
  // Stores again those whose store failed kRetryMs ago or more.
  void RetryDeadLetters();
  void Acknowledge(const std::string& ack, const std::string& body);
  // A replayed dead letter: back to the subject it first came on.
  static void RestoreReplayed(triggers::BrokerMessage* message);
  void OnPubAck(uint64_t seq, Status s, const triggers::BrokerMessage& reply);
  void RunWaiters();
  // Runs name's ready callbacks if each consumer exists or failed.
  void CheckReady(const std::string& name);
  // Fails what waits on the stream and tries again after kRetryMs.
  void SyncFailed(const Status& s);
  static void RetryCb(uv_timer_t* timer);
  std::set<std::string> WantedSubjects() const;

  uv_loop_t* loop_;
  triggers::Broker* broker_;
  BrokerRequests* requests_;
  EventTriggers* events_;
  DispatcherLookup lookup_;
  std::function<size_t(const std::string&)> capacity_;
  LoopThread loop_thread_;
  std::map<std::string, Binding> bindings_;
  // Durables whose delete is in flight: one bound again meanwhile is made
  // once the delete is answered (else the server could answer the create
  // with the old consumer, then delete it, and its pulls go unanswered).
  std::set<std::string> deleting_;
  std::string inbox_prefix_;
  // The stream's subjects as last seen on the server (ours included once
  // synced); a publish on one of them is a JetStream publish.
  std::vector<std::string> stream_subjects_;
  int replicas_ = 1;
  bool stream_ready_ = false;
  bool syncing_ = false;
  bool sync_again_ = false;
  bool stopped_ = false;
  uv_timer_t* retry_timer_;  // owned; closed by Close
  uv_timer_t* pull_watchdog_;  // owned; closed by Close; OnTick every kPullCheckMs
  // Publishing: sequence numbers of publishes awaiting their PubAck, the
  // failures among them, and the callbacks waiting for them.
  uint64_t next_publish_ = 1;
  std::set<uint64_t> unacked_;
  std::map<uint64_t, Status> failed_;
  struct Waiter {
    uint64_t from, through;
    std::function<void(Status)> done;
  };
  std::vector<Waiter> waiters_;
  uint64_t last_barrier_ = 0;
  JetStreamDeadLetters dead_letters_;
  std::vector<PendingDeadLetter> unstored_dead_letters_;  // their leases still renewed
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  JetStreamCounters counters_;
};

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_JETSTREAM_DELIVERY_H_
