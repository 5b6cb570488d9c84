// A message broker as the controller sees it: publish, subscribe (with
// queue groups), unsubscribe, and flow control per subscription. Two
// implementations: EmbeddedBroker (in process, the default) and NatsBroker
// (nats.c on the controller's loop).
//
// Subjects follow NATS: tokens separated by '.', '*' matches one token and
// '>' (last token only) one or more. A subscription with a queue group
// shares its messages with the other members of the same group on the same
// subject: each message goes to one member. Without a group every matching
// subscription gets every message.
//
// Flow control: a paused subscription gets no messages; they wait in the
// broker, up to its pending limits, beyond which the broker drops them as a
// slow consumer (counted in BrokerStats, logged). This is NATS's own policy,
// and the embedded broker follows it.
//
// Ownership: the controller owns the broker; handlers are owned by their
// subscription and destroyed on Unsubscribe or Close.
// Threading: every method is called on the loop thread and every handler
// runs there, never inside Publish (delivery is asynchronous).
#ifndef WISP_TRIGGERS_BROKER_H_
#define WISP_TRIGGERS_BROKER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/base/status.h"

namespace wisp::triggers {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct BrokerMessage {
  std::string subject;
  std::string reply;  // where to send a reply; empty when none is wanted
  Headers headers;
  std::string data;
};

using SubscriptionId = uint64_t;
using MessageHandler = std::function<void(BrokerMessage message)>;

struct BrokerStats {
  uint64_t published = 0;
  uint64_t delivered = 0;
  uint64_t slow_consumer_dropped = 0;  // messages lost to pending limits
};

class Broker {
 public:
  virtual ~Broker() = default;

  // Publishes message. InvalidArgument for a subject that is empty, has an
  // empty token, a wildcard or whitespace; Unavailable when the broker is
  // closed (or, for NATS, the connection is closed for good).
  [[nodiscard]] virtual Status Publish(BrokerMessage message) = 0;

  // Subscribes handler to subject (wildcards allowed) in queue_group (empty:
  // none). InvalidArgument for a malformed subject or group.
  [[nodiscard]] virtual StatusOr<SubscriptionId> Subscribe(const std::string& subject,
                                                           const std::string& queue_group,
                                                           MessageHandler handler) = 0;

  // Ends the subscription; its handler is not called again, messages still
  // pending for it are discarded. Unknown ids are ignored.
  virtual void Unsubscribe(SubscriptionId id) = 0;

  // Pauses or resumes delivery to a subscription (see flow control above).
  virtual void SetPaused(SubscriptionId id, bool paused) = 0;

  // A subject prefix no other client uses ("_INBOX.<random>"); replies are
  // received by subscribing to "<inbox>.>" or "<inbox>.<token>".
  virtual std::string NewInbox() = 0;

  // "embedded" or the NATS URL connected to.
  virtual std::string Describe() const = 0;

  virtual BrokerStats stats() const = 0;

  // The largest payload Publish accepts (NATS: the server's max_payload,
  // 1 MiB by default; embedded: kEmbeddedMaxPayload).
  virtual size_t max_payload() const = 0;

  // Ends every subscription and releases the broker's handles; on_closed
  // runs on the loop once they are closed. Publish fails after this.
  virtual void Close(std::function<void()> on_closed) = 0;
};

// Subject syntax, shared by both brokers and by deploy-time validation.
// A publish subject: non-empty tokens, no wildcards, no whitespace or
// control bytes, at most kMaxSubjectBytes.
[[nodiscard]] Status ValidatePublishSubject(std::string_view subject);
// A subscription subject: like a publish subject, but a token may be '*',
// and the last token may be '>'.
[[nodiscard]] Status ValidateSubscribeSubject(std::string_view subject);
// A queue group name: at most kMaxSubjectBytes, no whitespace or control
// bytes (empty means no group).
[[nodiscard]] Status ValidateQueueGroup(std::string_view group);
// Whether subject (a publish subject) matches pattern (a subscribe subject).
bool SubjectMatches(std::string_view pattern, std::string_view subject);

inline constexpr size_t kMaxSubjectBytes = 256;

}  // namespace wisp::triggers

#endif  // WISP_TRIGGERS_BROKER_H_
