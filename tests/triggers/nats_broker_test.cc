// NatsBroker against a real nats-server (NatsServerProcess) on a real libuv
// loop run by the test thread, plus a plain nats.c client with its own
// threads for the other side of the wire.
#include "triggers/nats_broker.h"

#include <gtest/gtest.h>
#include <nats/nats.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/support/nats_server.h"

namespace wisp::triggers {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using wisp::testing::NatsServerOptions;
using wisp::testing::NatsServerProcess;

std::string DescribeHeaders(const Headers& headers) {
  std::string out;
  for (const auto& [name, value] : headers) out += name + "=" + value + ";";
  return out;
}

std::string DescribeMessage(const BrokerMessage& m) {
  return "{subject=" + m.subject + " reply=" + m.reply + " headers=" + DescribeHeaders(m.headers) +
         " data=" + m.data + "}";
}

// A client with nats.c's own threads and blocking calls, as another process
// would connect.
class PlainClient {
 public:
  ~PlainClient() {
    for (natsSubscription* sub : subs_) natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc_);
  }

  ::testing::AssertionResult Connect(const std::string& url) {
    natsOptions* options = nullptr;
    natsOptions_Create(&options);
    natsOptions_SetURL(options, url.c_str());
    natsOptions_SetMaxReconnect(options, -1);
    natsOptions_SetReconnectWait(options, 100);
    natsStatus s = natsConnection_Connect(&nc_, options);
    natsOptions_Destroy(options);
    if (s == NATS_OK) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "plain client connect to " << url << ": " << natsStatus_GetText(s);
  }

  // Collects every message on subject; waits until the server knows.
  void Subscribe(const std::string& subject) {
    natsSubscription* sub = nullptr;
    ASSERT_EQ(natsConnection_Subscribe(&sub, nc_, subject.c_str(), OnMessage, this), NATS_OK);
    subs_.push_back(sub);
    ASSERT_EQ(natsConnection_Flush(nc_), NATS_OK);
  }

  // Answers every request on subject with "echo: <data>".
  void Respond(const std::string& subject) {
    natsSubscription* sub = nullptr;
    ASSERT_EQ(natsConnection_Subscribe(&sub, nc_, subject.c_str(), OnRequest, this), NATS_OK);
    subs_.push_back(sub);
    ASSERT_EQ(natsConnection_Flush(nc_), NATS_OK);
  }

  // Publishes and waits until the server has it.
  natsStatus Publish(const BrokerMessage& m) {
    natsMsg* msg = nullptr;
    natsStatus s =
        natsMsg_Create(&msg, m.subject.c_str(), m.reply.empty() ? nullptr : m.reply.c_str(),
                       m.data.data(), static_cast<int>(m.data.size()));
    for (const auto& [name, value] : m.headers) {
      if (s == NATS_OK) s = natsMsgHeader_Add(msg, name.c_str(), value.c_str());
    }
    if (s == NATS_OK) s = natsConnection_PublishMsg(nc_, msg);
    natsMsg_Destroy(msg);
    if (s == NATS_OK) s = natsConnection_Flush(nc_);
    return s;
  }

  std::vector<BrokerMessage> Received() {
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }

  natsConnection* connection() { return nc_; }

 private:
  static BrokerMessage Copy(natsMsg* msg) {
    BrokerMessage m;
    m.subject = natsMsg_GetSubject(msg);
    if (natsMsg_GetReply(msg) != nullptr) m.reply = natsMsg_GetReply(msg);
    m.data.assign(natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
    const char** keys = nullptr;
    int key_count = 0;
    if (natsMsgHeader_Keys(msg, &keys, &key_count) == NATS_OK) {
      std::vector<std::string> names(keys, keys + key_count);
      free(static_cast<void*>(keys));
      std::sort(names.begin(), names.end());
      for (const std::string& name : names) {
        const char** values = nullptr;
        int count = 0;
        if (natsMsgHeader_Values(msg, name.c_str(), &values, &count) != NATS_OK) continue;
        for (int i = 0; i < count; ++i) m.headers.emplace_back(name, values[i]);
        free(static_cast<void*>(values));
      }
    }
    return m;
  }

  static void OnMessage(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    auto* self = static_cast<PlainClient*>(closure);
    BrokerMessage copy = Copy(msg);
    natsMsg_Destroy(msg);
    std::lock_guard<std::mutex> lock(self->mu_);
    self->received_.push_back(std::move(copy));
  }

  static void OnRequest(natsConnection* nc, natsSubscription*, natsMsg* msg, void*) {
    std::string answer = "echo: " + std::string(natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
    if (natsMsg_GetReply(msg) != nullptr) {
      natsConnection_Publish(nc, natsMsg_GetReply(msg), answer.data(),
                             static_cast<int>(answer.size()));
    }
    natsMsg_Destroy(msg);
  }

  natsConnection* nc_ = nullptr;
  std::vector<natsSubscription*> subs_;
  std::mutex mu_;
  std::vector<BrokerMessage> received_;
};

// What a subscription received, in order.
struct Inbox {
  MessageHandler Handler() {
    return [this](BrokerMessage m) { messages.push_back(std::move(m)); };
  }
  std::vector<std::string> Data() const {
    std::vector<std::string> out;
    for (const auto& m : messages) out.push_back(m.data);
    return out;
  }
  std::vector<BrokerMessage> messages;
};

std::vector<std::string> Numbers(int from, int to) {
  std::vector<std::string> out;
  for (int i = from; i < to; ++i) out.push_back(std::to_string(i));
  return out;
}

class NatsBrokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    uv_timer_init(&loop_, &tick_);
    ASSERT_TRUE(server_.Start());
  }

  void TearDown() override {
    if (broker_ != nullptr && !closed_) CloseBroker();
    broker_.reset();
    uv_close(reinterpret_cast<uv_handle_t*>(&tick_), nullptr);
    // Everything of the broker (and of nats.c's adapter) must be closed now.
    auto deadline = Clock::now() + std::chrono::seconds(5);
    while (uv_loop_alive(&loop_) && Clock::now() < deadline) uv_run(&loop_, UV_RUN_NOWAIT);
    if (uv_loop_alive(&loop_)) {
      uv_walk(
          &loop_,
          [](uv_handle_t* handle, void*) {
            ADD_FAILURE() << "handle left open: " << uv_handle_type_name(handle->type)
                          << (uv_is_closing(handle) ? " (closing)" : "");
          },
          nullptr);
      return;  // leaks the loop rather than crash on it
    }
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "uv_loop_close: handles still open";
  }

  std::unique_ptr<NatsBroker> Connect(const std::string& url, NatsBrokerOptions options = {}) {
    auto broker = NatsBroker::Connect(&loop_, url, options);
    EXPECT_TRUE(broker.ok()) << broker.status().ToString();
    return broker.ok() ? std::move(broker).value() : nullptr;
  }

  // Connects broker_ to the test's server and runs the loop until connected.
  void ConnectBroker(NatsBrokerOptions options = {}) {
    broker_ = Connect(server_.url(), options);
    ASSERT_NE(broker_, nullptr);
    ASSERT_TRUE(RunUntil([&] { return broker_->IsConnected(); }))
        << "broker did not connect to " << server_.url();
  }

  // Runs the loop until done() or timeout; returns done().
  bool RunUntil(const std::function<bool()>& done, milliseconds timeout = milliseconds(4000)) {
    uv_timer_start(
        &tick_, [](uv_timer_t*) {}, 2, 2);
    auto deadline = Clock::now() + timeout;
    while (!done() && Clock::now() < deadline) uv_run(&loop_, UV_RUN_ONCE);
    uv_timer_stop(&tick_);
    return done();
  }

  void RunFor(milliseconds duration) {
    auto until = Clock::now() + duration;
    RunUntil([&] { return Clock::now() >= until; }, duration + milliseconds(100));
  }

  // Closes broker_ and runs the loop until on_closed.
  void CloseBroker() {
    broker_->Close([this] { closed_ = true; });
    ASSERT_TRUE(RunUntil([&] { return closed_; })) << "on_closed did not run";
  }

  SubscriptionId Subscribe(const std::string& subject, Inbox* inbox,
                           const std::string& group = "") {
    auto id = broker_->Subscribe(subject, group, inbox->Handler());
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    return id.ok() ? id.value() : 0;
  }

  void Publish(const std::string& subject, const std::string& data, Headers headers = {},
               const std::string& reply = "") {
    BrokerMessage m{subject, reply, std::move(headers), data};
    Status s = broker_->Publish(std::move(m));
    EXPECT_TRUE(s.ok()) << "publish to " << subject << ": " << s.ToString();
  }

  // Publishes from broker_ until inbox has a message (subscriptions reach the
  // server asynchronously, so a first publish may precede them).
  bool ProbeUntilDelivered(const std::string& subject, Inbox* inbox) {
    auto deadline = Clock::now() + milliseconds(4000);
    while (Clock::now() < deadline) {
      Publish(subject, "probe");
      if (RunUntil([&] { return !inbox->messages.empty(); }, milliseconds(50))) return true;
    }
    return false;
  }

  // Subscribes sentinel to "sentinel" and probes it: once it gets a message,
  // every subscription made before it is active at the server (one
  // connection keeps its order).
  bool SentinelReady(Inbox* sentinel) {
    Subscribe("sentinel", sentinel);
    bool ready = ProbeUntilDelivered("sentinel", sentinel);
    EXPECT_TRUE(ready) << "the sentinel subscription never got a message";
    return ready;
  }

  // A broker retrying every 50 ms, inbox subscribed to "survives" and active.
  void ConnectWithFastReconnect(Inbox* inbox) {
    NatsBrokerOptions options;
    options.reconnect_wait_ms = 50;
    ConnectBroker(options);
    ASSERT_NE(broker_, nullptr);
    Subscribe("survives", inbox);
    ASSERT_TRUE(ProbeUntilDelivered("survives", inbox));
  }

  uv_loop_t loop_;
  uv_timer_t tick_;  // wakes uv_run(UV_RUN_ONCE) so RunUntil can check
  NatsServerProcess server_;
  std::unique_ptr<NatsBroker> broker_;
  bool closed_ = false;
};

TEST_F(NatsBrokerTest, PublishSubscribeKeepsHeadersReplyAndData) {
  ConnectBroker();
  Inbox inbox;
  Subscribe("orders.created", &inbox);
  ASSERT_TRUE(ProbeUntilDelivered("orders.created", &inbox));
  inbox.messages.clear();

  std::string binary("a\0b\r\nc", 6);
  Publish("orders.created", binary, {{"X-B", "b"}, {"X-A", "1"}, {"X-A", "2"}, {"ce-id", "e-1"}},
          "reply.to.me");
  ASSERT_TRUE(RunUntil([&] { return !inbox.messages.empty(); })) << "no message arrived";
  ASSERT_EQ(inbox.messages.size(), 1u);
  const BrokerMessage& m = inbox.messages[0];
  EXPECT_EQ(m.subject, "orders.created");
  EXPECT_EQ(m.reply, "reply.to.me");
  EXPECT_EQ(m.data, binary);
  // Grouped by name in byte order, the values of a name in the order sent.
  EXPECT_EQ(DescribeHeaders(m.headers), "X-A=1;X-A=2;X-B=b;ce-id=e-1;");
  BrokerStats stats = broker_->stats();
  EXPECT_GE(stats.published, 2u);
  EXPECT_GE(stats.delivered, 2u);
  EXPECT_EQ(stats.slow_consumer_dropped, 0u);
}

TEST_F(NatsBrokerTest, WildcardsMatchLikeNats) {
  ConnectBroker();
  Inbox star, tail, exact, sentinel;
  Subscribe("a.*.c", &star);
  Subscribe("a.>", &tail);
  Subscribe("a.b", &exact);
  ASSERT_TRUE(SentinelReady(&sentinel));

  for (const char* subject : {"a.b", "a.x.c", "a.b.c.d", "a", "b.x.c"}) Publish(subject, subject);
  Publish("sentinel", "end");
  ASSERT_TRUE(RunUntil([&] { return sentinel.messages.size() == 2; }));
  RunFor(milliseconds(20));
  EXPECT_EQ(star.Data(), (std::vector<std::string>{"a.x.c"}));
  EXPECT_EQ(tail.Data(), (std::vector<std::string>{"a.b", "a.x.c", "a.b.c.d"}));
  EXPECT_EQ(exact.Data(), (std::vector<std::string>{"a.b"}));
}

TEST_F(NatsBrokerTest, QueueGroupMembersShareMessages) {
  ConnectBroker();
  Inbox first, second, everyone;
  Subscribe("jobs", &first, "workers");
  Subscribe("jobs", &second, "workers");
  Subscribe("jobs", &everyone);
  ASSERT_TRUE(ProbeUntilDelivered("jobs", &everyone));
  RunFor(milliseconds(20));
  first.messages.clear();
  second.messages.clear();
  everyone.messages.clear();

  constexpr int kCount = 2000;
  for (int i = 0; i < kCount; ++i) Publish("jobs", std::to_string(i));
  ASSERT_TRUE(RunUntil([&] {
    return first.messages.size() + second.messages.size() >= kCount &&
           everyone.messages.size() >= kCount;
  })) << "group got "
      << first.messages.size() << " + " << second.messages.size() << ", plain subscriber "
      << everyone.messages.size() << ", expected " << kCount;
  RunFor(milliseconds(50));  // nothing more may come

  std::multiset<std::string> seen;  // late probes aside
  for (const auto& d : first.Data())
    if (d != "probe") seen.insert(d);
  for (const auto& d : second.Data())
    if (d != "probe") seen.insert(d);
  EXPECT_EQ(seen.size(), static_cast<size_t>(kCount)) << "each message exactly once";
  for (int i = 0; i < kCount; ++i) {
    ASSERT_EQ(seen.count(std::to_string(i)), 1u) << "message " << i;
  }
  EXPECT_GT(first.messages.size(), 0u);
  EXPECT_GT(second.messages.size(), 0u);
  EXPECT_EQ(everyone.Data(), Numbers(0, kCount)) << "in publish order";
}

TEST_F(NatsBrokerTest, InteroperatesWithAPlainNatsClient) {
  ConnectBroker();
  PlainClient plain;
  ASSERT_TRUE(plain.Connect(server_.url()));
  plain.Subscribe("from.broker");

  // Broker -> plain client.
  Publish("from.broker", "hello plain", {{"ce-type", "t"}, {"ce-type", "u"}}, "back.here");
  ASSERT_TRUE(RunUntil([&] { return !plain.Received().empty(); }))
      << "the plain client got nothing";
  BrokerMessage got = plain.Received()[0];
  EXPECT_EQ(DescribeMessage(got),
            DescribeMessage(
                {"from.broker", "back.here", {{"ce-type", "t"}, {"ce-type", "u"}}, "hello plain"}));

  // Plain client -> broker.
  Inbox inbox;
  Subscribe("to.broker.*", &inbox);
  auto deadline = Clock::now() + milliseconds(4000);
  while (inbox.messages.empty() && Clock::now() < deadline) {
    ASSERT_EQ(plain.Publish({"to.broker.x", "r.1", {{"k", "v"}}, "hello broker"}), NATS_OK);
    RunUntil([&] { return !inbox.messages.empty(); }, milliseconds(50));
  }
  ASSERT_FALSE(inbox.messages.empty()) << "the broker got nothing from the plain client";
  EXPECT_EQ(DescribeMessage(inbox.messages[0]),
            DescribeMessage({"to.broker.x", "r.1", {{"k", "v"}}, "hello broker"}));
}

TEST_F(NatsBrokerTest, PausedSubscriptionHoldsMessagesAndResumeDeliversInOrder) {
  ConnectBroker();
  PlainClient plain;
  ASSERT_TRUE(plain.Connect(server_.url()));
  Inbox inbox;
  SubscriptionId id = 0;
  // Pauses itself on the first message: what was already handed to the loop
  // is held there, the rest waits in nats.c.
  auto handler = [&](BrokerMessage m) {
    if (inbox.messages.empty()) broker_->SetPaused(id, true);
    inbox.messages.push_back(std::move(m));
  };
  auto subscribed = broker_->Subscribe("work", "", handler);
  ASSERT_TRUE(subscribed.ok()) << subscribed.status().ToString();
  id = subscribed.value();
  Inbox sentinel;
  ASSERT_TRUE(SentinelReady(&sentinel));

  for (int i = 0; i < 300; ++i) {
    ASSERT_EQ(plain.Publish({"work", "", {}, std::to_string(i)}), NATS_OK);
  }
  ASSERT_TRUE(RunUntil([&] { return !inbox.messages.empty(); }));
  RunFor(milliseconds(200));
  EXPECT_EQ(inbox.messages.size(), 1u) << "a paused subscription got messages";

  broker_->SetPaused(id, false);
  ASSERT_TRUE(RunUntil([&] { return inbox.messages.size() >= 300; }))
      << "after resume got " << inbox.messages.size() << " of 300";
  EXPECT_EQ(inbox.Data(), Numbers(0, 300)) << "not in publish order";
  EXPECT_EQ(broker_->stats().slow_consumer_dropped, 0u);

  // Pausing before anything arrives holds everything in nats.c.
  broker_->SetPaused(id, true);
  for (int i = 300; i < 350; ++i) Publish("work", std::to_string(i));
  RunFor(milliseconds(150));
  EXPECT_EQ(inbox.messages.size(), 300u);
  broker_->SetPaused(id, false);
  ASSERT_TRUE(RunUntil([&] { return inbox.messages.size() >= 350; }));
  EXPECT_EQ(inbox.Data(), Numbers(0, 350));
}

TEST_F(NatsBrokerTest, PausedBeyondPendingLimitDropsAsSlowConsumer) {
  NatsBrokerOptions options;
  options.pending_msgs_limit = 10;
  ConnectBroker(options);
  Inbox inbox;
  SubscriptionId id = Subscribe("flood", &inbox);
  Inbox sentinel;
  ASSERT_TRUE(SentinelReady(&sentinel));

  broker_->SetPaused(id, true);
  constexpr int kCount = 100;
  for (int i = 0; i < kCount; ++i) Publish("flood", std::to_string(i));
  Publish("sentinel", "after the flood");
  ASSERT_TRUE(RunUntil([&] { return sentinel.messages.size() >= 2; }));
  RunFor(milliseconds(50));
  EXPECT_TRUE(inbox.messages.empty());
  broker_->SetPaused(id, false);

  auto accounted = [&] { return inbox.messages.size() + broker_->stats().slow_consumer_dropped; };
  ASSERT_TRUE(RunUntil([&] { return accounted() >= kCount; }))
      << "delivered " << inbox.messages.size() << " + dropped "
      << broker_->stats().slow_consumer_dropped << ", expected " << kCount;
  RunFor(milliseconds(50));
  EXPECT_EQ(accounted(), static_cast<size_t>(kCount));
  EXPECT_GT(broker_->stats().slow_consumer_dropped, 0u);
  // nats.c keeps up to the limit, plus the one its delivery thread holds.
  EXPECT_LE(inbox.messages.size(), 11u);
  EXPECT_GE(inbox.messages.size(), 10u);
  EXPECT_TRUE(std::is_sorted(inbox.messages.begin(), inbox.messages.end(),
                             [](const BrokerMessage& a, const BrokerMessage& b) {
                               return std::stoi(a.data) < std::stoi(b.data);
                             }));
  // Survives Unsubscribe.
  uint64_t dropped = broker_->stats().slow_consumer_dropped;
  broker_->Unsubscribe(id);
  EXPECT_EQ(broker_->stats().slow_consumer_dropped, dropped);
}

TEST_F(NatsBrokerTest, UnsubscribeStopsDelivery) {
  ConnectBroker();
  Inbox kept, dropped, paused, sentinel;
  Subscribe("news", &kept);
  SubscriptionId dropped_id = Subscribe("news", &dropped);
  SubscriptionId paused_id = Subscribe("news", &paused);
  ASSERT_TRUE(SentinelReady(&sentinel));
  Publish("news", "before");
  ASSERT_TRUE(
      RunUntil([&] { return dropped.messages.size() == 1 && paused.messages.size() == 1; }));

  // A paused subscription's delivery thread is blocked: Unsubscribe wakes it.
  broker_->SetPaused(paused_id, true);
  for (int i = 0; i < 20; ++i) Publish("news", "while paused");
  ASSERT_TRUE(RunUntil([&] { return kept.messages.size() == 21; }));
  broker_->Unsubscribe(paused_id);
  broker_->Unsubscribe(dropped_id);
  broker_->Unsubscribe(dropped_id);  // unknown ids are ignored
  broker_->SetPaused(dropped_id, false);
  size_t dropped_before = dropped.messages.size();

  Publish("news", "after");
  Publish("sentinel", "end");
  ASSERT_TRUE(
      RunUntil([&] { return sentinel.messages.size() == 2 && kept.messages.size() == 22; }));
  RunFor(milliseconds(30));
  EXPECT_EQ(dropped.messages.size(), dropped_before) << "delivered after Unsubscribe";
  EXPECT_EQ(paused.messages.size(), 1u) << "delivered after Unsubscribe (or while paused)";
}

TEST_F(NatsBrokerTest, RequestReplyOverAnInbox) {
  ConnectBroker();
  // A responder on the broker, answering on the message's reply subject.
  Inbox requests;
  auto responder = broker_->Subscribe("svc.echo", "q", [&](BrokerMessage m) {
    requests.messages.push_back(m);
    if (!m.reply.empty()) {
      Status s = broker_->Publish({m.reply, "", {{"served-by", "broker"}}, "echo: " + m.data});
      EXPECT_TRUE(s.ok()) << s.ToString();
    }
  });
  ASSERT_TRUE(responder.ok());

  std::string inbox_prefix = broker_->NewInbox();
  EXPECT_EQ(inbox_prefix.rfind("_INBOX.", 0), 0u) << inbox_prefix;
  EXPECT_NE(inbox_prefix, broker_->NewInbox());
  Inbox replies;
  Subscribe(inbox_prefix + ".*", &replies);
  auto deadline = Clock::now() + milliseconds(4000);
  while (replies.messages.empty() && Clock::now() < deadline) {
    Publish("svc.echo", "ping", {}, inbox_prefix + ".1");
    RunUntil([&] { return !replies.messages.empty(); }, milliseconds(50));
  }
  ASSERT_FALSE(replies.messages.empty()) << "no reply on " << inbox_prefix << ".*";
  EXPECT_EQ(DescribeMessage(replies.messages[0]),
            DescribeMessage({inbox_prefix + ".1", "", {{"served-by", "broker"}}, "echo: ping"}));

  // A plain client's blocking request, answered by the broker's responder.
  PlainClient plain;
  ASSERT_TRUE(plain.Connect(server_.url()));
  auto reply = std::async(std::launch::async, [&] {
    natsMsg* msg = nullptr;
    natsStatus s = natsConnection_RequestString(&msg, plain.connection(), "svc.echo", "hi", 3000);
    std::string data = s == NATS_OK ? std::string(natsMsg_GetData(msg)) : natsStatus_GetText(s);
    natsMsg_Destroy(msg);
    return data;
  });
  ASSERT_TRUE(RunUntil(
      [&] { return reply.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }));
  EXPECT_EQ(reply.get(), "echo: hi");

  // And the broker's request answered by the plain client.
  plain.Respond("plain.echo");
  replies.messages.clear();
  Publish("plain.echo", "yo", {}, inbox_prefix + ".2");
  ASSERT_TRUE(RunUntil([&] { return !replies.messages.empty(); }));
  EXPECT_EQ(replies.messages[0].data, "echo: yo");
  EXPECT_EQ(replies.messages[0].subject, inbox_prefix + ".2");

  // No responder: the server answers with a 503 status, which nats.c
  // presents as a "Status" header.
  replies.messages.clear();
  Publish("nobody.listens", "anyone?", {}, inbox_prefix + ".3");
  ASSERT_TRUE(RunUntil([&] { return !replies.messages.empty(); }));
  EXPECT_EQ(DescribeMessage(replies.messages[0]),
            DescribeMessage({inbox_prefix + ".3", "", {{"Status", "503"}}, ""}));
}

TEST_F(NatsBrokerTest, ReconnectsAfterServerRestart) {
  Inbox inbox;
  ASSERT_NO_FATAL_FAILURE(ConnectWithFastReconnect(&inbox));
  std::string url = server_.url();

  ASSERT_TRUE(server_.Restart());  // SIGTERM, then a new server on the port
  ASSERT_EQ(server_.url(), url);
  inbox.messages.clear();
  ASSERT_TRUE(ProbeUntilDelivered("survives", &inbox)) << "no delivery after a restart";
  EXPECT_TRUE(broker_->IsConnected());
  EXPECT_EQ(broker_->Describe(), url);
}

TEST_F(NatsBrokerTest, ReconnectsAfterServerIsKilled) {
  Inbox inbox;
  ASSERT_NO_FATAL_FAILURE(ConnectWithFastReconnect(&inbox));

  server_.Kill();
  ASSERT_TRUE(RunUntil([&] { return !broker_->IsConnected(); })) << "loss not noticed";
  Publish("survives", "buffered while away");  // nats.c's reconnect buffer
  inbox.messages.clear();
  ASSERT_TRUE(server_.Start());
  ASSERT_TRUE(RunUntil([&] { return broker_->IsConnected(); })) << "did not reconnect";
  ASSERT_TRUE(RunUntil([&] { return !inbox.messages.empty(); }))
      << "the buffered message was not delivered";
  EXPECT_EQ(inbox.messages[0].data, "buffered while away");
}

// The sockets this process has open, by descriptor number.
std::set<int> OpenSockets() {
  std::set<int> fds;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    std::error_code link_ec;
    const std::string target = std::filesystem::read_symlink(entry.path(), link_ec).string();
    if (!link_ec && target.rfind("socket:", 0) == 0) fds.insert(std::stoi(entry.path().filename()));
  }
  return fds;
}

// A socket the loop reads, opened while the broker reconnects, on the
// descriptor number the lost connection had: once the broker is back, the
// loop still hears it. (The adapter closes its poll handle on the lost
// connection's number at the reconnect; had it watched that number itself,
// epoll would forget the new socket, as a worker's channel once did.)
TEST_F(NatsBrokerTest, ASocketOpenedWhileReconnectingStillWakesTheLoop) {
  NatsBrokerOptions options;
  options.reconnect_wait_ms = 300;
  ASSERT_NO_FATAL_FAILURE(ConnectBroker(options));
  const std::set<int> before = OpenSockets();
  server_.Kill();
  ASSERT_TRUE(RunUntil([&] { return !broker_->IsConnected(); })) << "loss not noticed";

  struct Watched {
    uv_pipe_t pipe;
    int other_end = -1;
    bool heard = false;
  };
  std::vector<std::unique_ptr<Watched>> watched;
  bool reused = false;
  const auto deadline = Clock::now() + milliseconds(2000);
  while (!reused && Clock::now() < deadline && watched.size() < 64) {
    int pair[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    auto w = std::make_unique<Watched>();
    w->other_end = pair[1];
    uv_pipe_init(&loop_, &w->pipe, 0);
    ASSERT_EQ(uv_pipe_open(&w->pipe, pair[0]), 0);
    w->pipe.data = w.get();
    ASSERT_EQ(uv_read_start(
                  reinterpret_cast<uv_stream_t*>(&w->pipe),
                  [](uv_handle_t*, size_t, uv_buf_t* buf) {
                    static char byte[16];
                    *buf = uv_buf_init(byte, sizeof(byte));
                  },
                  [](uv_stream_t* stream, ssize_t n, const uv_buf_t*) {
                    if (n > 0) static_cast<Watched*>(stream->data)->heard = true;
                  }),
              0);
    reused = before.count(pair[0]) != 0 || before.count(pair[1]) != 0;
    watched.push_back(std::move(w));
    if (!reused) RunFor(milliseconds(5));
  }
  EXPECT_TRUE(reused) << "no new socket took the lost connection's number: nothing was checked";

  ASSERT_TRUE(server_.Start());
  ASSERT_TRUE(RunUntil([&] { return broker_->IsConnected(); })) << "did not reconnect";
  RunFor(milliseconds(100));  // the adapter moves to the new connection
  for (auto& w : watched) ASSERT_EQ(write(w->other_end, "x", 1), 1);
  RunUntil([&] {
    return std::all_of(watched.begin(), watched.end(), [](const auto& w) { return w->heard; });
  }, milliseconds(1000));
  for (auto& w : watched) {
    EXPECT_TRUE(w->heard) << "the loop never heard the socket on descriptor "
                          << w->pipe.io_watcher.fd << " (of " << watched.size() << " opened)";
  }
  for (auto& w : watched) {
    close(w->other_end);
    uv_close(reinterpret_cast<uv_handle_t*>(&w->pipe), nullptr);
  }
  RunFor(milliseconds(10));
}

TEST_F(NatsBrokerTest, ConnectsToAServerThatStartsLater) {
  NatsServerProcess later(
      NatsServerOptions{.jetstream = false, .port = NatsServerProcess::PickFreePort()});
  NatsBrokerOptions options;
  options.reconnect_wait_ms = 50;
  broker_ = Connect(later.url(), options);
  ASSERT_NE(broker_, nullptr);
  EXPECT_FALSE(broker_->IsConnected());
  EXPECT_EQ(broker_->Describe(), later.url()) << "the configured URL while not connected";
  Inbox inbox;
  Subscribe("early", &inbox);
  Publish("early", "sent before the server existed");
  RunFor(milliseconds(100));

  ASSERT_TRUE(later.Start());
  ASSERT_TRUE(RunUntil([&] { return broker_->IsConnected(); })) << "never connected";
  ASSERT_TRUE(RunUntil([&] { return !inbox.messages.empty(); }));
  EXPECT_EQ(inbox.messages[0].data, "sent before the server existed");
}

TEST_F(NatsBrokerTest, CloseRunsOnClosedAndTheLoopEnds) {
  ConnectBroker();
  PlainClient plain;
  ASSERT_TRUE(plain.Connect(server_.url()));
  plain.Subscribe("last.words");
  Inbox inbox;
  SubscriptionId paused = Subscribe("held", &inbox);
  Inbox sentinel;
  ASSERT_TRUE(SentinelReady(&sentinel));
  broker_->SetPaused(paused, true);
  for (int i = 0; i < 10; ++i) Publish("held", "x");  // a delivery thread blocks
  Publish("sentinel", "y");
  ASSERT_TRUE(RunUntil([&] { return sentinel.messages.size() == 2; }));

  Publish("last.words", "flushed by Close");
  int calls = 0;
  broker_->Close([&] { ++calls; });
  broker_->Close([&] { calls += 100; });  // ignored
  Status after = broker_->Publish({"last.words", "", {}, "too late"});
  EXPECT_EQ(after.code(), Status::Code::kUnavailable) << after.ToString();
  EXPECT_FALSE(broker_->Subscribe("x", "", [](BrokerMessage) {}).ok());

  uv_close(reinterpret_cast<uv_handle_t*>(&tick_), nullptr);
  auto start = Clock::now();
  uv_run(&loop_, UV_RUN_DEFAULT);  // returns only when no handle is left
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(inbox.messages.empty());
  broker_.reset();
  EXPECT_EQ(uv_loop_close(&loop_), 0);
  uv_loop_init(&loop_);  // for TearDown
  uv_timer_init(&loop_, &tick_);
  closed_ = true;

  auto deadline = Clock::now() + milliseconds(2000);
  while (plain.Received().empty() && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_EQ(plain.Received().size(), 1u) << "a publish just before Close was lost";
  EXPECT_EQ(plain.Received()[0].data, "flushed by Close");
}

TEST_F(NatsBrokerTest, CloseWhileNeverConnected) {
  broker_ = Connect("nats://127.0.0.1:" + std::to_string(NatsServerProcess::PickFreePort()));
  ASSERT_NE(broker_, nullptr);
  Inbox inbox;
  Subscribe("nobody.home", &inbox);
  CloseBroker();
  EXPECT_TRUE(closed_);
}

TEST_F(NatsBrokerTest, DestroyWithoutCloseDoesNotCrash) {
  ConnectBroker();
  Inbox inbox;
  SubscriptionId id = Subscribe("abandoned", &inbox);
  broker_->SetPaused(id, true);
  Publish("abandoned", "x");
  RunFor(milliseconds(50));
  broker_.reset();  // TearDown checks that the loop ends with nothing open
}

TEST_F(NatsBrokerTest, RejectsMalformedInput) {
  ConnectBroker();
  for (const char* subject : {"", "a..b", "a.*", "a.>", "a b", ".a", "a."}) {
    Status s = broker_->Publish({subject, "", {}, "x"});
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << "publish to '" << subject << "'";
  }
  EXPECT_EQ(broker_->Publish({"ok", "bad reply", {}, ""}).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(broker_->Publish({"ok", "", {{"bad name", "v"}}, ""}).code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(broker_->Publish({"ok", "", {{"k:", "v"}}, ""}).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(broker_->Publish({"ok", "", {{"k", "a\r\nb"}}, ""}).code(),
            Status::Code::kInvalidArgument);
  for (const char* subject : {"", "a..b", "a.>.b", "a b", "a.b*"}) {
    auto s = broker_->Subscribe(subject, "", [](BrokerMessage) {});
    EXPECT_EQ(s.status().code(), Status::Code::kInvalidArgument)
        << "subscribe to '" << subject << "'";
  }
  EXPECT_EQ(broker_->Subscribe("ok", "bad group", [](BrokerMessage) {}).status().code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(broker_->stats().published, 0u);

  auto no_urls = NatsBroker::Connect(&loop_, " , ", {});
  EXPECT_EQ(no_urls.status().code(), Status::Code::kInvalidArgument);
  auto bad_port = NatsBroker::Connect(&loop_, "nats://127.0.0.1:notaport", {});
  EXPECT_EQ(bad_port.status().code(), Status::Code::kInvalidArgument)
      << bad_port.status().ToString();
}

// The support class other suites rely on: JetStream mode, same port on
// Restart, a clear failure when the binary is missing.
TEST(NatsBrokerSupportTest, ServerProcessStartsJetStreamAndRestartsOnItsPort) {
  NatsServerProcess server(NatsServerOptions{.jetstream = true, .port = 0});
  ASSERT_TRUE(server.Start());
  int port = server.port();
  ASSERT_GT(port, 0);
  auto account_info = [&]() -> std::string {
    PlainClient plain;
    if (!plain.Connect(server.url())) return "no connection";
    natsMsg* reply = nullptr;
    natsStatus s =
        natsConnection_RequestString(&reply, plain.connection(), "$JS.API.INFO", "", 2000);
    std::string data = s == NATS_OK ? natsMsg_GetData(reply) : natsStatus_GetText(s);
    natsMsg_Destroy(reply);
    return data;
  };
  EXPECT_NE(account_info().find("account_info_response"), std::string::npos)
      << "JetStream does not answer";
  ASSERT_TRUE(server.Restart());
  EXPECT_EQ(server.port(), port);
  EXPECT_NE(account_info().find("account_info_response"), std::string::npos);
  server.Kill();
  EXPECT_FALSE(server.running());

  setenv("WISP_NATS_SERVER", "/nonexistent/nats-server", 1);
  NatsServerProcess missing;
  ::testing::AssertionResult started = missing.Start();
  unsetenv("WISP_NATS_SERVER");
  EXPECT_FALSE(started);
  EXPECT_NE(std::string(started.message()).find("not installed"), std::string::npos)
      << started.message();
}

}  // namespace
}  // namespace wisp::triggers
