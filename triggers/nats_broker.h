// NatsBroker: the Broker interface over a real NATS server, through nats.c
// on the controller's libuv loop (nats.c's libuv adapter drives the socket).
//
// Delivery: nats.c calls message handlers on its own threads (one per
// subscription). Each message is handed to the loop through one
// mutex-protected queue and a uv_async_t; the loop looks the subscription up
// by id and runs its handler there. Messages of subscriptions that were
// unsubscribed in the meantime are discarded.
//
// Flow control: while a subscription is paused, its nats.c delivery thread
// waits before handing over, so messages pile up in nats.c's own pending
// buffer, whose limits (NatsBrokerOptions) make nats.c drop the excess as a
// slow consumer; the drops are counted in stats().slow_consumer_dropped. The
// same wait caps how many messages of one subscription are queued towards the
// loop, so a slow loop also ends in nats.c's slow-consumer policy rather than
// in unbounded memory.
//
// Connection: reconnects forever; a server that is not up yet when Connect
// runs is retried in the background (publishes are buffered meanwhile).
// Connection events are logged to stderr as "wisp: nats: ...".
//
// Threading: every method runs on the loop thread (the thread that called
// Connect, which must be the thread running uv_run). No method waits for
// the network except Connect itself, with nats.c caveats while no server is
// reachable: nats.c's reconnect thread holds the connection lock during a
// TCP connect, so any call can wait up to connect_timeout_ms then (only for
// hosts that drop packets; a refused connect is immediate), and Close joins
// that thread, which can take up to reconnect_wait_ms plus nats.c's jitter.
#ifndef WISP_TRIGGERS_NATS_BROKER_H_
#define WISP_TRIGGERS_NATS_BROKER_H_

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "runtime/base/status.h"
#include "triggers/broker.h"

namespace wisp::triggers {

struct NatsBrokerOptions {
  std::string name = "wisp";          // the connection name the server shows
  int64_t reconnect_wait_ms = 250;    // between rounds of reconnect attempts
  int64_t connect_timeout_ms = 2000;  // per TCP connect + handshake
  // nats.c's per-subscription pending limits (flow control above). > 0.
  int pending_msgs_limit = 65536;
  int pending_bytes_limit = 64 * 1024 * 1024;
};

class NatsBroker final : public Broker {
 public:
  // Connects to urls (comma-separated, "nats://host:port,..."). Must be
  // called on the loop thread, before or while uv_run runs there; loop is
  // borrowed and must outlive the broker. Blocks for the initial connect
  // attempt only. When no server answers yet, succeeds anyway (logged) and
  // keeps retrying in the background. InvalidArgument for empty or malformed
  // urls or bad options; other nats.c failures map to Unavailable/Internal.
  // The caller owns the broker; it must be closed (Close, then its callback)
  // before it is destroyed.
  static StatusOr<std::unique_ptr<NatsBroker>> Connect(uv_loop_t* loop, const std::string& urls,
                                                       NatsBrokerOptions options);

  // After Close's callback: frees everything. If Close never completed,
  // closes the connection synchronously (blocking; logged) as a last resort.
  ~NatsBroker() override;
  NatsBroker(const NatsBroker&) = delete;
  NatsBroker& operator=(const NatsBroker&) = delete;

  // See Broker. Publish copies the message into nats.c's write buffer; it is
  // sent when the loop next runs (or after a reconnect, from nats.c's
  // reconnect buffer). Header names must be non-empty printable ASCII
  // without ':'; values must not contain CR or LF (else InvalidArgument).
  // ResourceExhausted when nats.c's reconnect buffer is full.
  [[nodiscard]] Status Publish(BrokerMessage message) override;
  // See Broker. Headers arrive grouped by name (names in byte order), each
  // name's values in the order sent. A message published with a reply
  // subject that no subscriber takes comes back on the reply subject empty,
  // with the header "Status: 503" (NATS's no-responders answer). Unavailable
  // after Close.
  [[nodiscard]] StatusOr<SubscriptionId> Subscribe(const std::string& subject,
                                                   const std::string& queue_group,
                                                   MessageHandler handler) override;
  void Unsubscribe(SubscriptionId id) override;
  void SetPaused(SubscriptionId id, bool paused) override;
  // "_INBOX.<nuid>", from natsInbox_Create.
  std::string NewInbox() override;
  // The URL connected to, or the configured urls while not connected.
  std::string Describe() const override;
  // slow_consumer_dropped is nats.c's per-subscription dropped counter,
  // summed over live and past subscriptions (exact, unlike counting the
  // NATS_SLOW_CONSUMER events, which nats.c raises once per episode).
  // The server's max_payload once connected, else NATS's default, 1 MiB.
  size_t max_payload() const override;
  BrokerStats stats() const override;
  // Unsubscribes everything (waking paused delivery threads), lets the loop
  // write out what is still buffered (up to 500 ms), then closes the
  // connection on the loop. on_closed runs on the loop once nats.c reports
  // the connection closed and every handle of the broker is closed; the
  // adapter's own handles close in the same loop turn, so uv_run can return
  // right after. A second Close is ignored.
  void Close(std::function<void()> on_closed) override;

  // Whether the connection is currently established (not connecting or
  // reconnecting). Loop thread.
  bool IsConnected() const;

 private:
  struct Impl;
  explicit NatsBroker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace wisp::triggers

#endif  // WISP_TRIGGERS_NATS_BROKER_H_
