#include "runtime/broker_requests.h"

#include <algorithm>
#include <charconv>

#include "runtime/base/uv_timer.h"
#include "triggers/cloudevents.h"

namespace wisp::runtime {

BrokerRequests::BrokerRequests(uv_loop_t* loop, triggers::Broker* broker)
    : loop_(loop), broker_(broker), timer_(new uv_timer_t) {
  uv_timer_init(loop_, timer_);
  timer_->data = this;
}

BrokerRequests::~BrokerRequests() { WISP_CHECK(closed_ && timer_ == nullptr); }

Status BrokerRequests::Start() {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  inbox_ = broker_->NewInbox();
  StatusOr<triggers::SubscriptionId> id = broker_->Subscribe(
      inbox_ + ".*", "", [this](triggers::BrokerMessage reply) { OnReply(std::move(reply)); });
  if (!id.ok()) return id.status().WithContext("subscribe the reply inbox");
  subscription_ = *id;
  return Status::OK();
}

uint64_t BrokerRequests::Send(triggers::BrokerMessage message, uint64_t wait_ms, Pending pending) {
  const uint64_t token = next_token_++;
  message.reply = inbox_ + "." + std::to_string(token);
  pending.deadline_ms = uv_now(loop_) + wait_ms;
  Status s = closed_ ? Status::Unavailable("the controller is shutting down")
                     : broker_->Publish(std::move(message));
  if (!s.ok()) {
    pending.deadline_ms = 0;  // reported by the timer, right away
    pending.failure = s;
  }
  pending_.emplace(token, std::move(pending));
  Rearm();
  return token;
}

void BrokerRequests::Request(triggers::BrokerMessage message, uint64_t timeout_ms, ReplyDone done) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  Pending pending;
  pending.reply_done = std::move(done);
  Send(std::move(message), timeout_ms, std::move(pending));
}

void BrokerRequests::Gather(triggers::BrokerMessage message, uint64_t window_ms, GatherDone done) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  Pending pending;
  pending.gather_done = std::move(done);
  Send(std::move(message), window_ms, std::move(pending));
}

void BrokerRequests::OnReply(triggers::BrokerMessage reply) {
  const size_t dot = reply.subject.rfind('.');
  uint64_t token = 0;
  const char* first = reply.subject.data() + dot + 1;
  const char* last = reply.subject.data() + reply.subject.size();
  if (dot == std::string::npos || std::from_chars(first, last, token).ec != std::errc()) return;
  auto it = pending_.find(token);
  if (it == pending_.end() || !it->second.failure.ok()) return;  // late or already failed
  if (it->second.gather_done) {
    // Anyone may answer: bound what a flood of answers can hold.
    Pending& p = it->second;
    if (p.gathered.size() < kMaxGathered && p.gathered_bytes + reply.data.size() <= kMaxGatheredBytes) {
      p.gathered_bytes += reply.data.size();
      p.gathered.push_back(std::move(reply));
    }
    return;
  }
  ReplyDone done = std::move(it->second.reply_done);
  pending_.erase(it);
  const std::string* status = triggers::FindHeader(reply.headers, "status");
  if (status != nullptr && *status == "503" && reply.data.empty()) {
    done(Status::NotFound("no responders"), std::move(reply));
    return;
  }
  done(Status::OK(), std::move(reply));
}

void BrokerRequests::Expire() {
  const uint64_t now = uv_now(loop_);
  std::vector<Pending> expired;
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.deadline_ms <= now) {
      expired.push_back(std::move(it->second));
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  for (Pending& p : expired) {
    if (p.gather_done) {
      p.gather_done(std::move(p.gathered));
    } else if (!p.failure.ok()) {
      p.reply_done(p.failure, {});
    } else {
      p.reply_done(Status::Timeout("no reply in time"), {});
    }
  }
  Rearm();
}

void BrokerRequests::Rearm() {
  if (timer_ == nullptr || pending_.empty()) return;
  uint64_t earliest = UINT64_MAX;
  for (const auto& [token, p] : pending_) earliest = std::min(earliest, p.deadline_ms);
  const uint64_t now = uv_now(loop_);
  uv_timer_start(timer_, TimerCb, earliest > now ? earliest - now : 0, 0);
}

void BrokerRequests::TimerCb(uv_timer_t* timer) { static_cast<BrokerRequests*>(timer->data)->Expire(); }

void BrokerRequests::Close(std::function<void()> on_closed) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  closed_ = true;
  if (subscription_ != 0) broker_->Unsubscribe(subscription_);
  std::map<uint64_t, Pending> pending = std::move(pending_);
  pending_.clear();
  for (auto& [token, p] : pending) {
    if (p.gather_done) {
      p.gather_done(std::move(p.gathered));
    } else {
      p.reply_done(Status::Unavailable("the controller is shutting down"), {});
    }
  }
  CloseOwnedTimer(timer_, [this, done = std::move(on_closed)] {
    timer_ = nullptr;
    if (done) done();
  });
}

}  // namespace wisp::runtime
