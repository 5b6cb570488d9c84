// HTTP calls passed between the nodes of a cluster (wisp up --cluster): a
// node whose queue for a function is full forwards the call, over NATS
// request-reply, to a node with room, instead of answering 503.
//
// Which nodes have room is told by the subscriptions themselves: a node
// subscribes to wisp.fwd.<cluster>.<name> (queue group "fwd") only while its
// queue for the function is less than half full, checked every kOfferSyncMs.
// A forwarded call goes to one of those nodes; when none subscribes, NATS
// answers "no responders" at once and the caller gets 503 no_capacity. A full
// node is never among them, so a call never comes back to the node that
// forwarded it, and a forwarded call is never forwarded again.
//
// On the wire: the request is a proto::Invoke (the method, path, query,
// headers and body of the HTTP call), the reply a proto::ForwardedOutcome.
// A call whose Invoke exceeds the broker's largest payload is not forwarded.
// The node that runs the call records it (invocation records, logs, emitted
// events); the node that took the HTTP request only answers it.
//
// Ownership: borrows the loop, broker and requests (they outlive it); owns
// its timer (freed in its close callback). Threading: the loop thread only.
#ifndef WISP_RUNTIME_CALL_FORWARDING_H_
#define WISP_RUNTIME_CALL_FORWARDING_H_

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "runtime/base/loop_thread.h"
#include "runtime/base/status.h"
#include "runtime/broker_requests.h"
#include "runtime/dispatcher.h"
#include "triggers/broker.h"
#include "worker.pb.h"

namespace wisp::runtime {

struct ForwardingCounters {
  uint64_t forwarded = 0;    // calls sent to another node
  uint64_t unplaced = 0;     // calls no node had room for (503 no_capacity)
  uint64_t taken = 0;        // calls taken from other nodes and run here
  uint64_t refused = 0;      // forwarded requests refused here (malformed, full, unknown)
};

class CallForwarding {
 public:
  struct Hooks {
    // name's dispatcher here, or nullptr when it is not deployed.
    std::function<Dispatcher*(const std::string& name)> dispatcher;
    // Every function deployed here.
    std::function<std::vector<std::string>()> names;
    // Runs a call taken from another node the way a local HTTP call runs
    // (records, emitted events); done runs once, on the loop thread.
    std::function<void(const std::string& name, proto::Invoke invoke, InvocationDone done)> run;
  };

  // cluster and node name this node (node is reported in replies);
  // max_request_bytes is the largest body a call may carry.
  CallForwarding(uv_loop_t* loop, triggers::Broker* broker, BrokerRequests* requests,
                 std::string cluster, std::string node, size_t max_request_bytes, Hooks hooks);
  ~CallForwarding();  // Close first
  CallForwarding(const CallForwarding&) = delete;
  CallForwarding& operator=(const CallForwarding&) = delete;

  // Starts offering room. Never fails today; Status for symmetry with the
  // other cluster parts.
  [[nodiscard]] Status Start();

  // Sends invoke (an HTTP call of name) to a node with room. Once this
  // returns OK, done runs once, on the loop thread, never inside Forward,
  // with the outcome there and that node's name, or 503 no_capacity when no
  // node has room, 504 when the node did not answer within timeout_ms.
  // InvalidArgument, and done never runs, when the call is too large to
  // forward.
  using ForwardDone = std::function<void(InvocationOutcome outcome, std::string node)>;
  [[nodiscard]] Status Forward(const std::string& name, const proto::Invoke& invoke,
                               uint64_t timeout_ms, ForwardDone done);

  // Stops offering (unsubscribes) and closes the timer; on_closed runs from
  // its close callback. Calls being run here for other nodes still answer.
  void Close(std::function<void()> on_closed);

  const ForwardingCounters& counters() const { return counters_; }
  // The functions this node offers room for now, by name.
  std::vector<std::string> Offering() const;
  const std::string& node() const { return node_; }

  static constexpr uint64_t kOfferSyncMs = 20;

 private:
  std::string Subject(const std::string& name) const;
  void SyncOffers();
  void OnRequest(const std::string& name, triggers::BrokerMessage message);
  void Answer(const std::string& reply, const InvocationOutcome& outcome);
  static void TimerCb(uv_timer_t* timer);

  uv_loop_t* loop_;
  triggers::Broker* broker_;
  BrokerRequests* requests_;
  const std::string cluster_;
  const std::string node_;
  const size_t max_request_bytes_;
  Hooks hooks_;
  LoopThread loop_thread_;
  std::map<std::string, triggers::SubscriptionId> offers_;  // by function name
  ForwardingCounters counters_;
  uv_timer_t* timer_;  // owned; freed in its close callback
  bool closed_ = false;
};

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_CALL_FORWARDING_H_
