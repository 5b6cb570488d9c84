// Requests the controller itself makes over the broker, without blocking
// the loop: one wildcard subscription on "<inbox>.*" receives every reply,
// each request has its own token under it and a deadline.
//
//   Request: the first reply wins; NotFound ("no responders") when the
//            broker reports that nobody listens, Timeout at the deadline.
//   Gather:  every reply until the window closes ($SRV discovery).
//
// Ownership: borrows the loop and the broker; owns its timer (freed in its
// close callback). Threading: the loop thread only.
#ifndef WISP_RUNTIME_BROKER_REQUESTS_H_
#define WISP_RUNTIME_BROKER_REQUESTS_H_

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "runtime/base/loop_thread.h"
#include "runtime/base/status.h"
#include "triggers/broker.h"

namespace wisp::runtime {

class BrokerRequests {
 public:
  using ReplyDone = std::function<void(Status status, triggers::BrokerMessage reply)>;
  using GatherDone = std::function<void(std::vector<triggers::BrokerMessage> replies)>;

  BrokerRequests(uv_loop_t* loop, triggers::Broker* broker);
  ~BrokerRequests();  // Close first
  BrokerRequests(const BrokerRequests&) = delete;
  BrokerRequests& operator=(const BrokerRequests&) = delete;

  // Subscribes the reply inbox. Fails when the broker refuses it.
  [[nodiscard]] Status Start();

  // Publishes message with a reply subject; done runs exactly once, on the
  // loop thread, never inside Request.
  void Request(triggers::BrokerMessage message, uint64_t timeout_ms, ReplyDone done);
  // Publishes message and collects replies for window_ms (at most
  // kMaxGathered of them, kMaxGatheredBytes in all); done runs once.
  void Gather(triggers::BrokerMessage message, uint64_t window_ms, GatherDone done);

  static constexpr size_t kMaxGathered = 1000;
  static constexpr size_t kMaxGatheredBytes = 8 * 1024 * 1024;

  // Fails pending requests with Unavailable, unsubscribes and closes the
  // timer; on_closed runs from its close callback.
  void Close(std::function<void()> on_closed);

 private:
  struct Pending {
    uint64_t deadline_ms = 0;
    ReplyDone reply_done;    // for Request
    GatherDone gather_done;  // for Gather
    std::vector<triggers::BrokerMessage> gathered;
    size_t gathered_bytes = 0;
    Status failure;  // publishing failed: reported at once
  };

  uint64_t Send(triggers::BrokerMessage message, uint64_t wait_ms, Pending pending);
  void OnReply(triggers::BrokerMessage reply);
  void Expire();
  void Rearm();
  static void TimerCb(uv_timer_t* timer);

  uv_loop_t* loop_;
  triggers::Broker* broker_;
  LoopThread loop_thread_;
  std::string inbox_;
  triggers::SubscriptionId subscription_ = 0;
  std::map<uint64_t, Pending> pending_;
  uint64_t next_token_ = 1;
  uv_timer_t* timer_;  // owned; freed in its close callback
  bool closed_ = false;
};

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_BROKER_REQUESTS_H_
