// The in-process broker. Subscriptions live in a token trie (NATS's sublist
// idea without its cache), so a publish costs one hash lookup per subject
// token and per '*' branch, whatever the number of subscriptions. Each
// subscription owns a queue of pending messages; subscriptions with
// something to deliver are listed in ready_.
//
// Why a uv_idle_t and not a uv_async_t: everything happens on the loop
// thread, so no wake-up from another thread is needed. An idle handle is
// started only while there is something to deliver; while active it keeps
// the loop from blocking in poll (its callback runs once per loop turn), and
// when stopped it neither costs a syscall per publish (uv_async_send writes
// an eventfd) nor keeps the loop alive. Each turn delivers at most
// kMaxBatch messages per subscription, so a handler that publishes to
// itself cannot starve I/O.
#include "triggers/embedded_broker.h"

#include <algorithm>
#include <cstdio>
#include <string_view>

#include "runtime/base/check.h"
#include "runtime/base/random.h"

namespace wisp::triggers {
namespace {

constexpr size_t kMaxBatch = 1024;
// A drained pending queue keeps its storage up to this many messages.
constexpr size_t kKeepPendingCapacity = 1024;
// A queue compacts once this many delivered slots lead it (and they are at
// least half of it).
constexpr size_t kCompactAfter = 1024;
constexpr size_t kInboxRandomChars = 22;

// What a message counts against the pending byte limit: data and headers.
size_t MessageBytes(const BrokerMessage& message) {
  size_t bytes = message.data.size();
  for (const auto& [name, value] : message.headers) bytes += name.size() + value.size();
  return bytes;
}


std::string LimitText(size_t limit, const char* unit) {
  return limit == 0 ? std::string("no limit on ") + unit : std::to_string(limit) + " " + unit;
}

// The tokens of a valid subject, one at a time.
class Tokens {
 public:
  explicit Tokens(std::string_view subject) : rest_(subject) {}
  // Whether the last token has been returned.
  bool done() const { return done_; }
  std::string_view Next() {
    size_t dot = rest_.find('.');
    if (dot == std::string_view::npos) {
      done_ = true;
      return rest_;
    }
    std::string_view token = rest_.substr(0, dot);
    rest_.remove_prefix(dot + 1);
    return token;
  }

 private:
  std::string_view rest_;
  bool done_ = false;
};

struct TokenHash {
  using is_transparent = void;
  size_t operator()(std::string_view token) const { return std::hash<std::string_view>{}(token); }
};

template <typename T>
void EraseOne(std::vector<T*>* list, T* item) {
  auto it = std::find(list->begin(), list->end(), item);
  WISP_CHECK(it != list->end());
  list->erase(it);
}

}  // namespace

struct EmbeddedBroker::Group {
  size_t members = 0;
  uint64_t turn = 0;  // round-robin position
};

struct EmbeddedBroker::Subscription {
  size_t pending_count() const { return pending.size() - head; }

  void Push(BrokerMessage&& message, size_t bytes) {
    pending.push_back(std::move(message));
    pending_bytes += bytes;
  }

  BrokerMessage Pop() {
    BrokerMessage message = std::move(pending[head++]);
    pending_bytes -= MessageBytes(message);
    if (head == pending.size()) {
      ClearPending();
    } else if (head >= kCompactAfter && head * 2 >= pending.size()) {
      pending.erase(pending.begin(), pending.begin() + static_cast<ptrdiff_t>(head));
      head = 0;
    }
    return message;
  }

  void ClearPending() {
    if (pending.capacity() > kKeepPendingCapacity) {
      std::vector<BrokerMessage>().swap(pending);
    } else {
      pending.clear();
    }
    head = 0;
    pending_bytes = 0;
  }

  SubscriptionId id = 0;
  std::string subject;
  std::string queue_group;
  Group* group = nullptr;  // groups_'s entry for queue_group; null without one
  MessageHandler handler;
  bool paused = false;
  bool dead = false;      // unsubscribed; freed once no handler can be running
  bool in_ready = false;  // listed in ready_ (or in delivering_, not yet reached)

  std::vector<BrokerMessage> pending;  // waiting: pending[head..]
  size_t head = 0;
  size_t pending_bytes = 0;

  // Slow consumer: a burst of drops starts with a drop and ends when a
  // message is accepted again. Its first loop turn's drops are logged at the
  // end of that turn, the rest when it ends (or the subscription does).
  bool slow = false;
  bool drop_report_listed = false;  // in drop_reports_
  uint64_t unreported_drops = 0;
};

// A trie over pattern tokens: literal children, a '*' child, the
// subscriptions whose pattern ends at this node (here) and those whose
// pattern continues with '>' (rest).
struct EmbeddedBroker::IndexNode {
  bool empty() const { return literal.empty() && !star && here.empty() && rest.empty(); }

  void Insert(std::string_view pattern, Subscription* sub) {
    IndexNode* node = this;
    for (Tokens tokens(pattern);;) {
      std::string_view token = tokens.Next();
      if (token == ">") {  // validated: always the last token
        node->rest.push_back(sub);
        return;
      }
      node = node->Child(token);
      if (tokens.done()) {
        node->here.push_back(sub);
        return;
      }
    }
  }

  IndexNode* Child(std::string_view token) {
    std::unique_ptr<IndexNode>* slot = &star;
    if (token != "*") {
      auto it = literal.find(token);
      if (it == literal.end()) it = literal.emplace(std::string(token), nullptr).first;
      slot = &it->second;
    }
    if (*slot == nullptr) *slot = std::make_unique<IndexNode>();
    return slot->get();
  }

  // Removes sub, inserted under the pattern whose remaining tokens are
  // tokens, pruning nodes left empty. Returns whether this node is empty.
  bool Remove(Tokens tokens, Subscription* sub) {
    std::string_view token = tokens.Next();
    if (token == ">") {
      EraseOne(&rest, sub);
      return empty();
    }
    auto it = literal.end();
    IndexNode* child = star.get();
    if (token != "*") {
      it = literal.find(token);
      WISP_CHECK(it != literal.end());
      child = it->second.get();
    }
    WISP_CHECK(child != nullptr);
    bool child_empty;
    if (tokens.done()) {
      EraseOne(&child->here, sub);
      child_empty = child->empty();
    } else {
      child_empty = child->Remove(tokens, sub);
    }
    if (child_empty) {
      if (token == "*") {
        star.reset();
      } else {
        literal.erase(it);
      }
    }
    return empty();
  }

  // Appends the subscriptions matching subject's tokens from pos on.
  void Match(std::string_view subject, size_t pos, std::vector<Subscription*>* out) const {
    out->insert(out->end(), rest.begin(), rest.end());  // '>': one or more tokens from pos
    size_t end = subject.find('.', pos);
    const bool last = end == std::string_view::npos;
    if (last) end = subject.size();
    auto visit = [&](const IndexNode& child) {
      if (last) {
        out->insert(out->end(), child.here.begin(), child.here.end());
      } else {
        child.Match(subject, end + 1, out);
      }
    };
    if (auto it = literal.find(subject.substr(pos, end - pos)); it != literal.end()) {
      visit(*it->second);
    }
    if (star != nullptr) visit(*star);
  }

  std::unordered_map<std::string, std::unique_ptr<IndexNode>, TokenHash, std::equal_to<>> literal;
  std::unique_ptr<IndexNode> star;
  std::vector<Subscription*> here;
  std::vector<Subscription*> rest;
};

EmbeddedBroker::EmbeddedBroker(uv_loop_t* loop, EmbeddedBrokerOptions options)
    : loop_(loop),
      options_(options),
      index_(std::make_unique<IndexNode>()) {
  WISP_CHECK(uv_idle_init(loop_, &idle_) == 0);
  idle_.data = this;
}

EmbeddedBroker::~EmbeddedBroker() { WISP_CHECK(state_ == State::kClosed); }

Status EmbeddedBroker::Publish(BrokerMessage message) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  if (state_ != State::kRunning) return Status::Unavailable("embedded broker is closed");
  WISP_RETURN_IF_ERROR(ValidatePublishSubject(message.subject));
  if (message.data.size() > kEmbeddedMaxPayload) {
    return Status::ResourceExhausted("payload of " + std::to_string(message.data.size()) +
                                     " bytes is over the broker's limit of " +
                                     std::to_string(kEmbeddedMaxPayload));
  }
  if (!message.reply.empty()) {
    Status status = ValidatePublishSubject(message.reply);
    if (!status.ok()) return status.WithContext("reply");
  }
  ++stats_.published;
  matches_.clear();
  index_->Match(message.subject, 0, &matches_);
  if (matches_.empty()) {
    // Like nats-server: a request nobody can receive gets an empty reply
    // with status 503 ("no responders") at once instead of a timeout.
    if (!message.reply.empty()) {
      BrokerMessage no_responders;
      no_responders.subject = std::move(message.reply);
      no_responders.headers.emplace_back("Status", "503");
      return Publish(std::move(no_responders));
    }
    return Status::OK();
  }
  ChooseTargets();
  const size_t bytes = MessageBytes(message);
  for (size_t i = 0; i + 1 < targets_.size(); ++i) {
    Enqueue(targets_[i], BrokerMessage(message), bytes);  // a copy for all but the last
  }
  Enqueue(targets_.back(), std::move(message), bytes);
  return Status::OK();
}

// matches_ -> targets_: every subscription without a group, and one member
// of each group.
void EmbeddedBroker::ChooseTargets() {
  targets_.clear();
  grouped_.clear();
  for (Subscription* sub : matches_) (sub->group == nullptr ? targets_ : grouped_).push_back(sub);
  if (grouped_.empty()) return;
  std::sort(grouped_.begin(), grouped_.end(), [](const Subscription* a, const Subscription* b) {
    if (a->group != b->group) return std::less<const Group*>{}(a->group, b->group);
    return a->id < b->id;
  });
  Subscription* const* data = grouped_.data();
  for (size_t begin = 0; begin < grouped_.size();) {
    size_t end = begin + 1;
    while (end < grouped_.size() && grouped_[end]->group == grouped_[begin]->group) ++end;
    targets_.push_back(PickMember(data + begin, data + end));
    begin = end;
  }
}

// Round-robin over the unpaused members, or over all when all are paused.
EmbeddedBroker::Subscription* EmbeddedBroker::PickMember(Subscription* const* begin,
                                                         Subscription* const* end) {
  const uint64_t turn = (*begin)->group->turn++;
  const auto unpaused = static_cast<size_t>(
      std::count_if(begin, end, [](const Subscription* sub) { return !sub->paused; }));
  if (unpaused == 0) return begin[turn % static_cast<size_t>(end - begin)];
  size_t pick = turn % unpaused;
  for (Subscription* const* it = begin;; ++it) {
    if (!(*it)->paused && pick-- == 0) return *it;
  }
}

void EmbeddedBroker::Enqueue(Subscription* sub, BrokerMessage&& message, size_t bytes) {
  const size_t max_messages = options_.pending_messages_limit;
  const size_t max_bytes = options_.pending_bytes_limit;
  if ((max_messages != 0 && sub->pending_count() >= max_messages) ||
      (max_bytes != 0 && sub->pending_bytes + bytes > max_bytes)) {
    ++stats_.slow_consumer_dropped;
    ++sub->unreported_drops;
    if (!sub->slow) {
      sub->slow = true;
      sub->drop_report_listed = true;
      drop_reports_.push_back(sub);
      uv_idle_start(&idle_, OnIdle);
    }
    return;
  }
  if (sub->slow) {
    sub->slow = false;
    if (!sub->drop_report_listed) ReportDrops(sub);
  }
  sub->Push(std::move(message), bytes);
  if (!sub->paused) MarkReady(sub);
}

void EmbeddedBroker::MarkReady(Subscription* sub) {
  if (sub->in_ready) return;
  sub->in_ready = true;
  ready_.push_back(sub);
  uv_idle_start(&idle_, OnIdle);
}

void EmbeddedBroker::OnIdle(uv_idle_t* idle) {
  auto* broker = static_cast<EmbeddedBroker*>(idle->data);
  WISP_ASSERT_LOOP_THREAD(broker->loop_thread_);
  broker->DeliverReady();
}

void EmbeddedBroker::DeliverReady() {
  delivering_now_ = true;
  delivering_.swap(ready_);
  for (Subscription* sub : delivering_) {
    if (state_ != State::kRunning) break;
    sub->in_ready = false;
    if (!sub->dead) DeliverBatch(sub);
  }
  delivering_.clear();
  delivering_now_ = false;
  if (!retired_.empty()) {
    std::erase_if(ready_, [](const Subscription* sub) { return sub->dead; });
    auto retired = std::move(retired_);
    retired_.clear();
  }
  for (Subscription* sub : drop_reports_) {
    sub->drop_report_listed = false;
    ReportDrops(sub);
  }
  drop_reports_.clear();
  if (state_ == State::kRunning && ready_.empty()) uv_idle_stop(&idle_);
}

void EmbeddedBroker::DeliverBatch(Subscription* sub) {
  size_t budget = std::min(sub->pending_count(), kMaxBatch);
  for (; budget > 0 && !sub->paused && !sub->dead && state_ == State::kRunning; --budget) {
    BrokerMessage message = sub->Pop();
    ++stats_.delivered;
    sub->handler(std::move(message));
  }
  if (!sub->dead && !sub->paused && state_ == State::kRunning && sub->pending_count() > 0) {
    MarkReady(sub);
  }
}

void EmbeddedBroker::ReportDrops(Subscription* sub) {
  if (sub->unreported_drops == 0) return;
  std::string where = "'" + sub->subject + "'";
  if (!sub->queue_group.empty()) where += " (queue " + sub->queue_group + ")";
  std::fprintf(stderr,
               "wisp: embedded broker: slow consumer on %s: dropped %llu message%s over its "
               "pending limits (%s, %s)\n",
               where.c_str(), static_cast<unsigned long long>(sub->unreported_drops),
               sub->unreported_drops == 1 ? "" : "s",
               LimitText(options_.pending_messages_limit, "messages").c_str(),
               LimitText(options_.pending_bytes_limit, "bytes").c_str());
  sub->unreported_drops = 0;
}

StatusOr<SubscriptionId> EmbeddedBroker::Subscribe(const std::string& subject,
                                                   const std::string& queue_group,
                                                   MessageHandler handler) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  if (state_ != State::kRunning) return Status::Unavailable("embedded broker is closed");
  WISP_RETURN_IF_ERROR(ValidateSubscribeSubject(subject));
  WISP_RETURN_IF_ERROR(ValidateQueueGroup(queue_group));
  if (!handler) return Status::InvalidArgument("subscription to '" + subject + "' has no handler");
  auto sub = std::make_unique<Subscription>();
  sub->id = next_id_++;
  sub->subject = subject;
  sub->queue_group = queue_group;
  sub->handler = std::move(handler);
  if (!queue_group.empty()) {
    std::unique_ptr<Group>& group = groups_[queue_group];
    if (group == nullptr) group = std::make_unique<Group>();
    ++group->members;
    sub->group = group.get();
  }
  index_->Insert(subject, sub.get());
  const SubscriptionId id = sub->id;
  subscriptions_.emplace(id, std::move(sub));
  return id;
}

void EmbeddedBroker::Unsubscribe(SubscriptionId id) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  auto it = subscriptions_.find(id);
  if (it == subscriptions_.end()) return;
  std::unique_ptr<Subscription> sub = std::move(it->second);
  subscriptions_.erase(it);
  Retire(std::move(sub));
}

// Takes sub out of routing and delivery; frees it now, or after
// DeliverReady if a handler is running.
void EmbeddedBroker::Retire(std::unique_ptr<Subscription> sub) {
  sub->dead = true;
  ReportDrops(sub.get());
  if (sub->drop_report_listed) std::erase(drop_reports_, sub.get());
  sub->ClearPending();
  index_->Remove(Tokens(sub->subject), sub.get());
  if (sub->group != nullptr && --sub->group->members == 0) groups_.erase(sub->queue_group);
  sub->group = nullptr;
  if (delivering_now_) {
    retired_.push_back(std::move(sub));
  } else if (sub->in_ready) {
    std::erase(ready_, sub.get());
  }
}

void EmbeddedBroker::SetPaused(SubscriptionId id, bool paused) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  auto it = subscriptions_.find(id);
  if (it == subscriptions_.end()) return;
  Subscription* sub = it->second.get();
  sub->paused = paused;
  if (!paused && sub->pending_count() > 0) MarkReady(sub);
}

std::string EmbeddedBroker::NewInbox() {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  return "_INBOX." + RandomAlphanumeric(kInboxRandomChars);
}

BrokerStats EmbeddedBroker::stats() const {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  return stats_;
}

void EmbeddedBroker::Close(std::function<void()> on_closed) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  if (state_ != State::kRunning) return;
  state_ = State::kClosing;
  on_closed_ = std::move(on_closed);
  for (Subscription* sub : ready_) sub->in_ready = false;
  ready_.clear();
  auto subscriptions = std::move(subscriptions_);
  subscriptions_.clear();
  for (auto& entry : subscriptions) Retire(std::move(entry.second));
  uv_close(reinterpret_cast<uv_handle_t*>(&idle_), OnClosed);
}

void EmbeddedBroker::OnClosed(uv_handle_t* handle) {
  auto* broker = static_cast<EmbeddedBroker*>(handle->data);
  WISP_ASSERT_LOOP_THREAD(broker->loop_thread_);
  broker->state_ = State::kClosed;
  auto on_closed = std::move(broker->on_closed_);
  if (on_closed) on_closed();  // may destroy the broker
}

}  // namespace wisp::triggers
