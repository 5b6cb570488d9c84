// JetStreamDelivery's pure helpers: which subject pattern covers which, and
// the delivery count in a JetStream ack subject.
#include "runtime/jetstream_delivery.h"

#include <gtest/gtest.h>

namespace wisp::runtime {
namespace {

TEST(JetStreamDeliveryTest, CoversComparesPatternsTokenByToken) {
  struct Case {
    const char* a;
    const char* b;
    bool covers;
  } cases[] = {
      {"orders.new", "orders.new", true},
      {"orders.*", "orders.new", true},
      {"orders.*", "orders.*", true},
      {"orders.>", "orders.new.eu", true},
      {"orders.>", "orders.*", true},
      {"orders.>", "orders.>", true},
      {">", "a.b.c", true},
      {"orders.new", "orders.*", false},
      {"orders.*", "orders.>", false},
      {"orders.*", "orders.new.eu", false},
      {"orders.>", "orders", false},
      {"orders.new", "orders.old", false},
      {"orders", "orders.new", false},
      {"*.new", "orders.new", true},
      {"*.new", "orders.old", false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(JetStreamDelivery::Covers(c.a, c.b), c.covers)
        << "Covers(" << c.a << ", " << c.b << ") should be " << c.covers;
  }
}

TEST(JetStreamDeliveryTest, DeliveryCountReadsTheAckSubject) {
  // $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ts>.<pending>
  EXPECT_EQ(JetStreamDelivery::DeliveryCount("$JS.ACK.WISP_EVENTS.wisp-a-1234abcd.3.17.9.1700000000000000000.0"), 3u);
  // With a domain and an account hash (and a random token) after ACK.
  EXPECT_EQ(JetStreamDelivery::DeliveryCount(
                "$JS.ACK.hub.ACCHASH.WISP_EVENTS.wisp-a-1234abcd.2.17.9.1700000000000000000.0.tok"),
            2u);
  EXPECT_EQ(JetStreamDelivery::DeliveryCount("_INBOX.abc.def"), 0u) << "not an ack subject";
  EXPECT_EQ(JetStreamDelivery::DeliveryCount("$JS.ACK.S.C.x.1.1.1.0"), 0u) << "not a number";
  EXPECT_EQ(JetStreamDelivery::DeliveryCount("$JS.ACK.S.C.1"), 0u) << "too few tokens";
  EXPECT_EQ(JetStreamDelivery::DeliveryCount(""), 0u);
}

}  // namespace
}  // namespace wisp::runtime
