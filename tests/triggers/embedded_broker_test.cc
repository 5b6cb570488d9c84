#include "triggers/embedded_broker.h"

#include <gtest/gtest.h>
#include <uv.h>

#include <cctype>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace wisp::triggers {
namespace {

class EmbeddedBrokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(0, uv_loop_init(&loop_));
    broker_ = std::make_unique<EmbeddedBroker>(&loop_);
  }

  void TearDown() override {
    broker_->Close(nullptr);  // ignored if the test closed it already
    Run();
    broker_.reset();
    EXPECT_EQ(0, uv_loop_close(&loop_)) << "a handle outlived the broker";
  }

  // Replaces the broker with one made with options.
  void Restart(EmbeddedBrokerOptions options) {
    broker_->Close(nullptr);
    Run();
    broker_ = std::make_unique<EmbeddedBroker>(&loop_, options);
  }

  // Runs the loop until nothing is left to deliver.
  void Run() { uv_run(&loop_, UV_RUN_DEFAULT); }

  SubscriptionId Subscribe(const std::string& subject, const std::string& group,
                           MessageHandler handler) {
    StatusOr<SubscriptionId> id = broker_->Subscribe(subject, group, std::move(handler));
    EXPECT_TRUE(id.ok()) << "subscribe to '" << subject << "': " << id.status().ToString();
    return id.ok() ? *id : 0;
  }

  // Subscribes, collecting the messages into *into.
  SubscriptionId Collect(const std::string& subject, const std::string& group,
                         std::vector<BrokerMessage>* into) {
    return Subscribe(subject, group,
                     [into](BrokerMessage message) { into->push_back(std::move(message)); });
  }

  void Publish(const std::string& subject, const std::string& data) {
    BrokerMessage message;
    message.subject = subject;
    message.data = data;
    Status status = broker_->Publish(std::move(message));
    EXPECT_TRUE(status.ok()) << "publish to '" << subject << "': " << status.ToString();
  }

  static std::vector<std::string> Data(const std::vector<BrokerMessage>& messages) {
    std::vector<std::string> data;
    for (const BrokerMessage& message : messages) data.push_back(message.data);
    return data;
  }

  static std::vector<std::string> Numbers(int from, int to) {
    std::vector<std::string> numbers;
    for (int i = from; i < to; ++i) numbers.push_back(std::to_string(i));
    return numbers;
  }

  uv_loop_t loop_;
  std::unique_ptr<EmbeddedBroker> broker_;
};

TEST_F(EmbeddedBrokerTest, DeliversOnALaterLoopCallbackNeverInsidePublish) {
  bool in_publish = false;
  int calls = 0;
  Subscribe("orders.created", "", [&](BrokerMessage message) {
    EXPECT_FALSE(in_publish) << "handler ran inside Publish";
    EXPECT_EQ("orders.created", message.subject);
    EXPECT_EQ("payload", message.data);
    ++calls;
  });
  in_publish = true;
  Publish("orders.created", "payload");
  in_publish = false;
  EXPECT_EQ(0, calls) << "expected no delivery before the loop runs";
  Run();
  EXPECT_EQ(1, calls);
  BrokerStats stats = broker_->stats();
  EXPECT_EQ(1u, stats.published);
  EXPECT_EQ(1u, stats.delivered);
  EXPECT_EQ(0u, stats.slow_consumer_dropped);
}

TEST_F(EmbeddedBrokerTest, HeadersAndReplyArePreserved) {
  std::vector<BrokerMessage> got;
  Collect("svc.echo", "", &got);
  BrokerMessage message;
  message.subject = "svc.echo";
  message.reply = "_INBOX.abc.7";
  message.headers = {{"ce-id", "42"}, {"ce-type", "t"}, {"ce-id", "dup"}};
  message.data = std::string("bin\0ary", 7);
  ASSERT_TRUE(broker_->Publish(message).ok());
  Run();
  ASSERT_EQ(1u, got.size());
  EXPECT_EQ(message.subject, got[0].subject);
  EXPECT_EQ(message.reply, got[0].reply);
  EXPECT_EQ(message.headers, got[0].headers);
  EXPECT_EQ(message.data, got[0].data);
}

TEST_F(EmbeddedBrokerTest, ARequestNobodyReceivesGetsNoResponders) {
  std::vector<BrokerMessage> replies;
  Collect("_INBOX.me.*", "", &replies);
  BrokerMessage request;
  request.subject = "nobody.listens";
  request.reply = "_INBOX.me.1";
  ASSERT_TRUE(broker_->Publish(std::move(request)).ok());
  Publish("nobody.listens", "no reply wanted, none sent");
  Run();
  ASSERT_EQ(1u, replies.size()) << "expected one no-responders reply";
  EXPECT_EQ("_INBOX.me.1", replies[0].subject);
  EXPECT_EQ((Headers{{"Status", "503"}}), replies[0].headers);
  EXPECT_TRUE(replies[0].data.empty());
}

TEST_F(EmbeddedBrokerTest, WildcardsRouteAsInNats) {
  std::vector<BrokerMessage> star, tail, all, literal;
  Collect("orders.*", "", &star);
  Collect("orders.>", "", &tail);
  Collect(">", "", &all);
  Collect("orders.created", "", &literal);
  Publish("orders.created", "1");
  Publish("orders.eu.created", "2");
  Publish("orders", "3");
  Publish("Orders.created", "4");
  Run();
  EXPECT_EQ((std::vector<std::string>{"1"}), Data(star));
  EXPECT_EQ((std::vector<std::string>{"1", "2"}), Data(tail));
  EXPECT_EQ((std::vector<std::string>{"1", "2", "3", "4"}), Data(all));
  EXPECT_EQ((std::vector<std::string>{"1"}), Data(literal));
  EXPECT_EQ(4u, broker_->stats().published);
  EXPECT_EQ(8u, broker_->stats().delivered);
}

TEST_F(EmbeddedBrokerTest, QueueGroupDeliversEachMessageOnceAndShares) {
  std::vector<BrokerMessage> first, second, plain;
  Collect("work.*", "wisp.fn", &first);
  Collect("work.*", "wisp.fn", &second);
  Collect("work.*", "", &plain);
  for (int i = 0; i < 1000; ++i) Publish("work.item", std::to_string(i));
  Run();
  std::multiset<std::string> grouped;
  for (const BrokerMessage& m : first) grouped.insert(m.data);
  for (const BrokerMessage& m : second) grouped.insert(m.data);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_EQ(1u, grouped.count(std::to_string(i)))
        << "message " << i << ": expected exactly one delivery within the group";
  }
  EXPECT_EQ(1000u, grouped.size());
  EXPECT_GT(first.size(), 0u) << "first member got nothing";
  EXPECT_GT(second.size(), 0u) << "second member got nothing";
  EXPECT_EQ(Numbers(0, 1000), Data(plain)) << "the subscriber without a group gets all, in order";
}

TEST_F(EmbeddedBrokerTest, QueueGroupSpansDifferentPatterns) {
  std::vector<BrokerMessage> wildcard, literal;
  Collect("jobs.*", "g", &wildcard);
  Collect("jobs.run", "g", &literal);
  for (int i = 0; i < 10; ++i) Publish("jobs.run", std::to_string(i));
  Publish("jobs.other", "x");  // only the wildcard member matches
  Run();
  EXPECT_EQ(11u, wildcard.size() + literal.size()) << "each message once across the group";
  EXPECT_GT(literal.size(), 0u);
  EXPECT_EQ("x", wildcard.back().data);
}

TEST_F(EmbeddedBrokerTest, QueueGroupPrefersUnpausedMembers) {
  std::vector<BrokerMessage> paused, active;
  SubscriptionId paused_id = Collect("q", "g", &paused);
  Collect("q", "g", &active);
  broker_->SetPaused(paused_id, true);
  for (int i = 0; i < 10; ++i) Publish("q", std::to_string(i));
  Run();
  EXPECT_EQ(Numbers(0, 10), Data(active));
  broker_->SetPaused(paused_id, false);
  Run();
  EXPECT_TRUE(paused.empty()) << "the paused member was given " << paused.size() << " messages";
}

TEST_F(EmbeddedBrokerTest, QueueGroupWithAllMembersPausedHoldsMessages) {
  std::vector<BrokerMessage> a, b;
  SubscriptionId a_id = Collect("q", "g", &a);
  SubscriptionId b_id = Collect("q", "g", &b);
  broker_->SetPaused(a_id, true);
  broker_->SetPaused(b_id, true);
  for (int i = 0; i < 10; ++i) Publish("q", std::to_string(i));
  Run();
  EXPECT_EQ(0u, a.size() + b.size()) << "paused members must not receive";
  broker_->SetPaused(a_id, false);
  broker_->SetPaused(b_id, false);
  Run();
  EXPECT_EQ(10u, a.size() + b.size());
  EXPECT_EQ(0u, broker_->stats().slow_consumer_dropped);
}

TEST_F(EmbeddedBrokerTest, PauseHoldsMessagesAndResumeDeliversThemInOrder) {
  std::vector<BrokerMessage> got;
  SubscriptionId id = Collect("events", "", &got);
  broker_->SetPaused(id, true);
  for (int i = 0; i < 100; ++i) Publish("events", std::to_string(i));
  Run();
  EXPECT_TRUE(got.empty()) << "got " << got.size() << " messages while paused";
  broker_->SetPaused(id, false);
  EXPECT_TRUE(got.empty()) << "SetPaused(false) delivered synchronously";
  Run();
  EXPECT_EQ(Numbers(0, 100), Data(got));
}

TEST_F(EmbeddedBrokerTest, PauseFromInsideHandlerStopsDeliveryAtOnce) {
  std::vector<std::string> got;
  SubscriptionId id = 0;
  id = Subscribe("events", "", [&](BrokerMessage message) {
    got.push_back(message.data);
    if (got.size() == 3) broker_->SetPaused(id, true);
  });
  for (int i = 0; i < 10; ++i) Publish("events", std::to_string(i));
  Run();
  EXPECT_EQ(Numbers(0, 3), got);
  broker_->SetPaused(id, false);
  Run();
  EXPECT_EQ(Numbers(0, 10), got);
}

TEST_F(EmbeddedBrokerTest, ManyMessagesArriveInOrderAcrossLoopTurns) {
  std::vector<BrokerMessage> got;
  Collect("bulk", "", &got);
  for (int i = 0; i < 5000; ++i) Publish("bulk", std::to_string(i));
  Run();
  EXPECT_EQ(Numbers(0, 5000), Data(got));
}

TEST_F(EmbeddedBrokerTest, PendingMessageLimitDropsAreCountedAndLogged) {
  Restart({.pending_messages_limit = 10, .pending_bytes_limit = 0});
  std::vector<BrokerMessage> got;
  SubscriptionId id = Collect("orders.*", "wisp.fn", &got);
  broker_->SetPaused(id, true);
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 15; ++i) Publish("orders.new", std::to_string(i));
  Run();
  std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(5u, broker_->stats().slow_consumer_dropped);
  EXPECT_EQ(
      "wisp: embedded broker: slow consumer on 'orders.*' (queue wisp.fn): dropped 5 messages "
      "over its pending limits (10 messages, no limit on bytes)\n",
      log);
  broker_->SetPaused(id, false);
  Run();
  EXPECT_EQ(Numbers(0, 10), Data(got)) << "the first 10 are kept, the rest dropped";
}

TEST_F(EmbeddedBrokerTest, PendingByteLimitDropsAndBurstEndIsLogged) {
  Restart({.pending_messages_limit = 0, .pending_bytes_limit = 100});
  std::vector<BrokerMessage> got;
  SubscriptionId id = Collect("big", "", &got);
  broker_->SetPaused(id, true);
  ::testing::internal::CaptureStderr();
  Publish("big", std::string(40, 'a'));
  Publish("big", std::string(40, 'b'));
  Publish("big", std::string(40, 'c'));  // 120 > 100: dropped
  Run();                                 // logs the first turn of the burst
  Publish("big", std::string(40, 'd'));  // still in the burst
  Publish("big", std::string(10, 'e'));  // fits: ends the burst, logs the rest
  std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(
      "wisp: embedded broker: slow consumer on 'big': dropped 1 message over its pending "
      "limits (no limit on messages, 100 bytes)\n"
      "wisp: embedded broker: slow consumer on 'big': dropped 1 message over its pending "
      "limits (no limit on messages, 100 bytes)\n",
      log);
  EXPECT_EQ(2u, broker_->stats().slow_consumer_dropped);
  broker_->SetPaused(id, false);
  Run();
  EXPECT_EQ(
      (std::vector<std::string>{std::string(40, 'a'), std::string(40, 'b'), std::string(10, 'e')}),
      Data(got));
}

TEST_F(EmbeddedBrokerTest, UnsubscribeOwnSubscriptionInsideHandler) {
  auto alive = std::make_shared<int>(0);
  int calls = 0;
  SubscriptionId id = 0;
  id = Subscribe("once", "", [&, alive](BrokerMessage) {
    ++calls;
    broker_->Unsubscribe(id);
    broker_->Unsubscribe(id);  // unknown now: ignored
  });
  for (int i = 0; i < 3; ++i) Publish("once", "x");
  Run();
  EXPECT_EQ(1, calls) << "the handler ran after its own Unsubscribe";
  EXPECT_EQ(1, alive.use_count()) << "the handler was not destroyed after Unsubscribe";
}

TEST_F(EmbeddedBrokerTest, UnsubscribeAnotherSubscriptionInsideHandler) {
  int first_calls = 0;
  int second_calls = 0;
  SubscriptionId second = 0;
  Subscribe("x", "", [&](BrokerMessage) {
    if (++first_calls == 1) broker_->Unsubscribe(second);
  });
  second = Subscribe("x", "", [&](BrokerMessage) { ++second_calls; });
  for (int i = 0; i < 3; ++i) Publish("x", "m");
  Run();
  EXPECT_EQ(3, first_calls);
  EXPECT_EQ(0, second_calls) << "delivered to a subscription after its Unsubscribe";
  Publish("x", "again");
  Run();
  EXPECT_EQ(4, first_calls);
  EXPECT_EQ(0, second_calls);
}

TEST_F(EmbeddedBrokerTest, UnsubscribeDiscardsPendingMessages) {
  std::vector<BrokerMessage> got;
  SubscriptionId id = Collect("p", "", &got);
  broker_->SetPaused(id, true);
  Publish("p", "lost");
  broker_->Unsubscribe(id);
  broker_->SetPaused(id, false);  // unknown: ignored
  broker_->Unsubscribe(12345);    // never existed: ignored
  Run();
  EXPECT_TRUE(got.empty());
}

TEST_F(EmbeddedBrokerTest, PublishInsideHandlerIsDeliveredLater) {
  bool in_ping = false;
  std::vector<std::string> order;
  Subscribe("ping", "", [&](BrokerMessage message) {
    in_ping = true;
    order.push_back("ping " + message.data);
    BrokerMessage pong;
    pong.subject = message.reply;
    pong.data = "pong";
    EXPECT_TRUE(broker_->Publish(std::move(pong)).ok());
    in_ping = false;
  });
  Subscribe("reply.1", "", [&](BrokerMessage message) {
    EXPECT_FALSE(in_ping) << "delivered inside the ping handler's Publish";
    order.push_back("reply " + message.data);
  });
  BrokerMessage ping;
  ping.subject = "ping";
  ping.reply = "reply.1";
  ping.data = "1";
  ASSERT_TRUE(broker_->Publish(std::move(ping)).ok());
  Run();
  EXPECT_EQ((std::vector<std::string>{"ping 1", "reply pong"}), order);
}

TEST_F(EmbeddedBrokerTest, CloseInsideHandlerStopsDelivery) {
  int calls = 0;
  int closed = 0;
  Subscribe("c", "", [&](BrokerMessage) {
    ++calls;
    broker_->Close([&] { ++closed; });
    EXPECT_EQ(0, closed) << "on_closed ran inside Close";
  });
  Subscribe("c", "", [&](BrokerMessage) { ++calls; });
  for (int i = 0; i < 3; ++i) Publish("c", "m");
  Run();
  EXPECT_EQ(1, calls) << "delivered after Close";
  EXPECT_EQ(1, closed);
  Status status = broker_->Publish(BrokerMessage{"c", "", {}, "late"});
  EXPECT_EQ(Status::Code::kUnavailable, status.code()) << status.ToString();
}

TEST_F(EmbeddedBrokerTest, CloseThenPublishAndSubscribeFail) {
  std::vector<BrokerMessage> got;
  Collect("a", "", &got);
  Publish("a", "pending");
  int closed = 0;
  broker_->Close([&] { ++closed; });
  EXPECT_EQ(0, closed) << "on_closed must run from the close callback, not inside Close";
  Status status = broker_->Publish(BrokerMessage{"a", "", {}, "x"});
  EXPECT_EQ(Status::Code::kUnavailable, status.code()) << status.ToString();
  EXPECT_EQ("embedded broker is closed", status.message());
  StatusOr<SubscriptionId> sub = broker_->Subscribe("a", "", [](BrokerMessage) {});
  EXPECT_EQ(Status::Code::kUnavailable, sub.status().code()) << sub.status().ToString();
  Run();
  EXPECT_EQ(1, closed);
  EXPECT_TRUE(got.empty()) << "pending messages were delivered after Close";
}

TEST_F(EmbeddedBrokerTest, RefusesMalformedInput) {
  Status status = broker_->Publish(BrokerMessage{"a.*", "", {}, ""});
  EXPECT_EQ("subject 'a.*' has wildcard token '*'; a publish subject must be literal",
            status.message());
  status = broker_->Publish(BrokerMessage{"a", "bad reply", {}, ""});
  EXPECT_EQ("reply: subject 'bad reply' has a whitespace or control byte (0x20) at offset 3",
            status.message());
  StatusOr<SubscriptionId> sub = broker_->Subscribe("a..b", "", [](BrokerMessage) {});
  EXPECT_EQ("subject 'a..b' has an empty token at offset 2", sub.status().message());
  sub = broker_->Subscribe("a", "my group", [](BrokerMessage) {});
  EXPECT_EQ("queue group 'my...' has a whitespace or control byte (0x20) at offset 2",
            sub.status().message());
  sub = broker_->Subscribe("a", "", nullptr);
  EXPECT_EQ("subscription to 'a' has no handler", sub.status().message());
  EXPECT_EQ(0u, broker_->stats().published);
}

TEST_F(EmbeddedBrokerTest, NewInboxIsUniqueAndWellFormed) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string inbox = broker_->NewInbox();
    ASSERT_EQ(29u, inbox.size()) << "expected \"_INBOX.\" and 22 characters, got " << inbox;
    EXPECT_EQ("_INBOX.", inbox.substr(0, 7)) << inbox;
    for (char c : inbox.substr(7)) {
      EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c))) << "non-alphanumeric in " << inbox;
    }
    EXPECT_TRUE(ValidatePublishSubject(inbox + ".reply").ok()) << inbox;
    EXPECT_TRUE(seen.insert(inbox).second) << "duplicate inbox " << inbox;
  }
  EXPECT_EQ("embedded", broker_->Describe());
}

// The subscription index against SubjectMatches, through rounds of random
// subscribes and unsubscribes (which prune the index).
TEST_F(EmbeddedBrokerTest, RoutingAgreesWithSubjectMatches) {
  std::mt19937 random(7);
  const char* const kTokens[] = {"a", "b", "*", ">"};
  auto random_pattern = [&] {
    std::string pattern;
    const size_t length = 1 + random() % 4;
    for (size_t i = 0; i < length; ++i) {
      if (i > 0) pattern += ".";
      pattern += kTokens[random() % (i + 1 == length ? 4 : 3)];  // '>' only last
    }
    return pattern;
  };
  std::vector<std::string> subjects;
  for (const std::string x : {"a", "b"}) {
    subjects.push_back(x);
    for (const std::string y : {"a", "b"}) {
      subjects.push_back(x + "." + y);
      for (const std::string z : {"a", "b"}) subjects.push_back(x + "." + y + "." + z);
    }
  }
  std::map<SubscriptionId, std::string> live;  // id -> pattern
  std::map<SubscriptionId, std::multiset<std::string>> got;
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 30; ++i) {
      auto self = std::make_shared<SubscriptionId>(0);
      std::string pattern = random_pattern();
      *self = Subscribe(
          pattern, "", [&got, self](BrokerMessage message) { got[*self].insert(message.subject); });
      live[*self] = pattern;
    }
    for (int i = 0; i < 30; ++i) {  // ids are 1, 2, ...: some gone already, some twice
      SubscriptionId id = 1 + random() % (30 * (round + 1));
      broker_->Unsubscribe(id);
      live.erase(id);
    }
  }
  ASSERT_FALSE(live.empty());
  for (const std::string& subject : subjects) Publish(subject, "");
  Run();
  for (const auto& [id, pattern] : live) {
    std::multiset<std::string> expected;
    for (const std::string& subject : subjects) {
      if (SubjectMatches(pattern, subject)) expected.insert(subject);
    }
    EXPECT_EQ(expected, got[id]) << "subscription " << id << " on '" << pattern << "'";
  }
  for (const auto& [id, received] : got) {
    EXPECT_TRUE(live.count(id) == 1 || received.empty())
        << "unsubscribed " << id << " received " << received.size() << " messages";
  }
}

TEST_F(EmbeddedBrokerTest, InboxWildcardReceivesReplies) {
  std::string inbox = broker_->NewInbox();
  std::vector<BrokerMessage> got;
  Collect(inbox + ".>", "", &got);
  Publish(inbox + ".1", "a");
  Publish(inbox, "not a reply");  // '>' needs one more token
  Publish(broker_->NewInbox() + ".1", "other inbox");
  Run();
  EXPECT_EQ((std::vector<std::string>{"a"}), Data(got));
}

}  // namespace
}  // namespace wisp::triggers
