// EmbeddedBroker: the in-process Broker, the default when no NATS server is
// configured. NATS semantics (see broker.h) without a network: subjects and
// wildcards, queue groups, pending limits with slow-consumer drops.
//
// Delivery is asynchronous: Publish matches the subscriptions, appends the
// message to each chosen subscription's pending queue and returns; handlers
// run from a uv_idle_t on a later callback of the loop, never inside
// Publish. Messages to one subscription arrive in publish order. A message
// with a reply subject that matches no subscription gets, like nats-server's
// "no responders", an empty reply with the header Status: 503.
//
// Queue groups: among all subscriptions matching a subject that share a
// queue group name (whatever their patterns), one gets the message, in turn
// (round-robin per group name). Unpaused members are chosen before paused
// ones; when every member is paused one of them still gets it and holds it
// pending, as a NATS server would (it does not know about client-side
// pauses). Subscriptions without a group each get a copy.
//
// Threading: construct, call and destroy on the loop thread; handlers run on
// it. Handlers may call any method, including Unsubscribe (of their own or
// another subscription), Publish and Close.
#ifndef WISP_TRIGGERS_EMBEDDED_BROKER_H_
#define WISP_TRIGGERS_EMBEDDED_BROKER_H_

#include <uv.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/base/loop_thread.h"
#include "triggers/broker.h"

namespace wisp::triggers {

struct EmbeddedBrokerOptions {
  // Per subscription: messages held (paused, or not yet delivered) beyond
  // either limit are dropped as a slow consumer. nats.c's defaults. 0 means
  // no limit.
  size_t pending_messages_limit = 65536;
  size_t pending_bytes_limit = 64 * 1024 * 1024;  // data and headers
};

inline constexpr size_t kEmbeddedMaxPayload = 8 * 1024 * 1024;

class EmbeddedBroker final : public Broker {
 public:
  // loop is borrowed and must outlive the broker. Call on the loop thread.
  explicit EmbeddedBroker(uv_loop_t* loop, EmbeddedBrokerOptions options = {});
  // The broker must be closed: Close called and its on_closed run.
  ~EmbeddedBroker() override;
  EmbeddedBroker(const EmbeddedBroker&) = delete;
  EmbeddedBroker& operator=(const EmbeddedBroker&) = delete;

  // Takes message. InvalidArgument for a malformed subject or reply subject;
  // Unavailable once Close was called. A message no subscription matches is
  // discarded (NATS semantics); one over a subscription's pending limits is
  // dropped for that subscription, counted and logged.
  [[nodiscard]] Status Publish(BrokerMessage message) override;

  // The broker owns handler until Unsubscribe or Close. InvalidArgument for a
  // malformed subject, a group with whitespace or control bytes, or an empty
  // handler; Unavailable once Close was called. Ids are never reused.
  [[nodiscard]] StatusOr<SubscriptionId> Subscribe(const std::string& subject,
                                                   const std::string& queue_group,
                                                   MessageHandler handler) override;

  // Pending messages are discarded; the handler is destroyed once it is not
  // running. Unknown ids are ignored.
  void Unsubscribe(SubscriptionId id) override;

  // A paused subscription keeps its pending messages (up to its limits);
  // resuming delivers them, in order, from a later loop callback. Unknown ids
  // are ignored.
  void SetPaused(SubscriptionId id, bool paused) override;

  // "_INBOX." and 22 random letters and digits.
  std::string NewInbox() override;

  std::string Describe() const override { return "embedded"; }

  // Publish refuses larger payloads with ResourceExhausted.
  size_t max_payload() const override { return kEmbeddedMaxPayload; }

  BrokerStats stats() const override;

  // Drops every subscription (and its pending messages) and closes the
  // broker's handle; on_closed runs from its close callback, on the loop, and
  // may destroy the broker. Later calls to Close are ignored.
  void Close(std::function<void()> on_closed) override;

 private:
  enum class State { kRunning, kClosing, kClosed };
  struct Subscription;
  struct IndexNode;
  struct Group;

  // Routing a published message.
  void ChooseTargets();
  Subscription* PickMember(Subscription* const* begin, Subscription* const* end);
  void Enqueue(Subscription* sub, BrokerMessage&& message, size_t bytes);

  // Delivery from the idle handle.
  static void OnIdle(uv_idle_t* idle);
  void DeliverReady();
  void DeliverBatch(Subscription* sub);
  void MarkReady(Subscription* sub);

  // Ending subscriptions while handlers may be running.
  void Retire(std::unique_ptr<Subscription> sub);
  void ReportDrops(Subscription* sub);
  static void OnClosed(uv_handle_t* handle);

  uv_loop_t* loop_;
  EmbeddedBrokerOptions options_;
  LoopThread loop_thread_;
  State state_ = State::kRunning;
  uv_idle_t idle_;  // runs deliveries while ready_ or drop_reports_ is non-empty
  std::function<void()> on_closed_;

  SubscriptionId next_id_ = 1;
  std::unordered_map<SubscriptionId, std::unique_ptr<Subscription>> subscriptions_;
  std::unique_ptr<IndexNode> index_;  // subscriptions by pattern, token by token
  std::unordered_map<std::string, std::unique_ptr<Group>> groups_;

  // Scratch for Publish, kept to reuse their storage.
  std::vector<Subscription*> matches_;
  std::vector<Subscription*> grouped_;
  std::vector<Subscription*> targets_;

  std::vector<Subscription*> ready_;       // unpaused, with pending messages
  std::vector<Subscription*> delivering_;  // ready_'s storage during DeliverReady
  bool delivering_now_ = false;
  // Ended during DeliverReady; freed when it returns, as a handler may be
  // running or the subscription may still be listed in delivering_.
  std::vector<std::unique_ptr<Subscription>> retired_;
  std::vector<Subscription*> drop_reports_;  // to log at the end of this loop turn

  BrokerStats stats_;
};

}  // namespace wisp::triggers

#endif  // WISP_TRIGGERS_EMBEDDED_BROKER_H_
