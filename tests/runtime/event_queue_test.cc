#include "runtime/event_queue.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "runtime/durable_delivery.h"

namespace wisp::runtime {
namespace {

triggers::BrokerMessage Message(const std::string& subject, const std::string& data) {
  triggers::BrokerMessage m;
  m.subject = subject;
  m.data = data;
  m.headers = {{"ce-id", "id-" + data}, {"x-binary", std::string("a\0b", 3)}};
  return m;
}

class EventQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/wisp-event-queue-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/events.db";
    uv_loop_init(&loop_);
  }
  void TearDown() override {
    uv_run(&loop_, UV_RUN_DEFAULT);  // lets closed handles go
    EXPECT_EQ(uv_loop_close(&loop_), 0);
    std::filesystem::remove_all(dir_);
  }
  // Runs one loop iteration: the group commit happens before the loop waits.
  void Iterate() { uv_run(&loop_, UV_RUN_NOWAIT); }

  uv_loop_t loop_;
  std::string dir_, path_;
};

TEST_F(EventQueueTest, DeliversInOrderAndForgetsWhatIsAcknowledged) {
  EventQueue q(&loop_);
  ASSERT_TRUE(q.Open(path_).ok());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(q.Enqueue("f", Message("a.b", std::to_string(i)), 1000).ok());
  }
  ASSERT_TRUE(q.Enqueue("g", Message("a.b", "other"), 1000).ok());
  StatusOr<std::vector<QueuedEvent>> due = q.Due("f", 1000, 10);
  ASSERT_TRUE(due.ok()) << due.status().ToString();
  ASSERT_EQ(due->size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ((*due)[i].message.data, std::to_string(i));
    EXPECT_EQ((*due)[i].message.subject, "a.b");
    EXPECT_EQ((*due)[i].deliveries, 0u);
    ASSERT_EQ((*due)[i].message.headers.size(), 2u);
    EXPECT_EQ((*due)[i].message.headers[1].second, std::string("a\0b", 3));
  }
  ASSERT_TRUE(q.MarkDelivered((*due)[0].id).ok());
  ASSERT_TRUE(q.Ack((*due)[1].id).ok());
  StatusOr<std::vector<QueuedEvent>> rest = q.Due("f", 1000, 10);
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->size(), 1u) << "leased and acknowledged events are not due";
  EXPECT_EQ((*rest)[0].message.data, "2");
  EXPECT_EQ(*q.Depth("f"), 2u);
  EXPECT_EQ(*q.Depth(""), 3u);
  q.Close();
}

TEST_F(EventQueueTest, RetriesWaitForTheirTime) {
  EventQueue q(&loop_);
  ASSERT_TRUE(q.Open(path_).ok());
  ASSERT_TRUE(q.Enqueue("f", Message("s", "x"), 1000).ok());
  const int64_t id = (*q.Due("f", 1000, 1))[0].id;
  ASSERT_TRUE(q.MarkDelivered(id).ok());
  EXPECT_EQ(*q.NextDue("f"), -1) << "a leased event is not waiting";
  ASSERT_TRUE(q.Retry(id, 5000).ok());
  EXPECT_EQ(*q.NextDue("f"), 5000);
  EXPECT_TRUE(q.Due("f", 4999, 10)->empty());
  StatusOr<std::vector<QueuedEvent>> due = q.Due("f", 5000, 10);
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].deliveries, 1u) << "the next attempt is the second";
  q.Close();
}

TEST_F(EventQueueTest, AfterCommitRunsOnceTheGroupIsDurable) {
  EventQueue q(&loop_);
  ASSERT_TRUE(q.Open(path_).ok());
  bool ran_at_once = false;
  q.AfterCommit([&](Status s) { ran_at_once = s.ok(); });
  EXPECT_TRUE(ran_at_once) << "with nothing written, the callback runs at once";

  ASSERT_TRUE(q.Enqueue("f", Message("s", "x"), 1000).ok());
  int committed = 0;
  q.AfterCommit([&](Status s) {
    EXPECT_TRUE(s.ok()) << s.ToString();
    // Another connection sees the row only once it is committed.
    sqlite3* other = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &other), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(other, "SELECT COUNT(*) FROM queue", -1, &st, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    committed = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(other);
  });
  EXPECT_EQ(committed, 0) << "the callback must wait for the commit";
  Iterate();
  EXPECT_EQ(committed, 1);
  q.Close();
}

TEST_F(EventQueueTest, EventsInFlightAtACrashAreDeliveredAgainAndCounted) {
  {
    EventQueue q(&loop_);
    ASSERT_TRUE(q.Open(path_).ok());
    ASSERT_TRUE(q.Enqueue("f", Message("s", "a"), 1000).ok());
    ASSERT_TRUE(q.Enqueue("f", Message("s", "b"), 1000).ok());
    ASSERT_TRUE(q.MarkDelivered((*q.Due("f", 1000, 1))[0].id).ok());
    q.Close();  // committed with one event leased, as a crash would leave it
  }
  EventQueue q(&loop_);
  ASSERT_TRUE(q.Open(path_).ok());
  EXPECT_EQ(q.redelivered(), 1u);
  StatusOr<std::vector<QueuedEvent>> due = q.Due("f", 1000, 10);
  ASSERT_EQ(due->size(), 2u) << "the leased event is deliverable again";
  EXPECT_EQ((*due)[0].deliveries, 1u);
  q.Close();
}

TEST_F(EventQueueTest, DuplicateIdsWithinTheWindow) {
  EventQueue q(&loop_);
  ASSERT_TRUE(q.Open(path_).ok());
  EXPECT_FALSE(*q.SeenBefore("a", 1000));
  EXPECT_TRUE(*q.SeenBefore("a", 2000));
  EXPECT_FALSE(*q.SeenBefore("b", 2000));
  EXPECT_FALSE(*q.SeenBefore("", 2000)) << "events without an id are never duplicates";
  EXPECT_FALSE(*q.SeenBefore("", 2000));
  EXPECT_FALSE(*q.SeenBefore("a", 1001 + EventQueue::kDedupWindowMs))
      << "past the window an id is new again";
  EXPECT_TRUE(*q.SeenBefore("a", 1002 + EventQueue::kDedupWindowMs));
  q.Close();
}

TEST_F(EventQueueTest, DeadLettersAndReplay) {
  EventQueue q(&loop_);
  ASSERT_TRUE(q.Open(path_).ok());
  ASSERT_TRUE(q.Enqueue("f", Message("s", "bad"), 1000).ok());
  ASSERT_TRUE(q.Enqueue("f", Message("s", "worse"), 1000).ok());
  StatusOr<std::vector<QueuedEvent>> waiting = q.Due("f", 1000, 10);
  ASSERT_TRUE(waiting.ok());
  for (const QueuedEvent& e : *waiting) {
    ASSERT_TRUE(q.MoveToDeadLetters(e.id, 3, "timeout", "took too long", 2000).ok());
  }
  EXPECT_EQ(*q.Depth("f"), 0u);
  StatusOr<std::vector<DeadLetter>> letters = q.DeadLetters("f", 10);
  ASSERT_TRUE(letters.ok());
  ASSERT_EQ(letters->size(), 2u);
  EXPECT_EQ((*letters)[0].message.data, "bad");
  EXPECT_EQ((*letters)[0].attempts, 3u);
  EXPECT_EQ((*letters)[0].error_code, "timeout");
  EXPECT_EQ((*letters)[0].at_ms, 2000);
  EXPECT_EQ(q.Replay("f", 999, 3000).status().code(), Status::Code::kNotFound);
  EXPECT_EQ(*q.Replay("g", 0, 3000), 0u) << "another function's letters are not touched";
  EXPECT_EQ(*q.Replay("f", (*letters)[1].id, 3000), 1u);
  EXPECT_EQ(*q.DeadLetterCount("f"), 1u);
  StatusOr<std::vector<QueuedEvent>> due = q.Due("f", 3000, 10);
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].message.data, "worse");
  EXPECT_EQ((*due)[0].deliveries, 0u) << "a replayed event starts over";
  EXPECT_EQ(*q.RemoveFunction("f"), 1u);
  EXPECT_EQ(*q.DeadLetterCount("f"), 0u);
  q.Close();
}

TEST_F(EventQueueTest, RefusesADatabaseFromANewerWisp) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  EventQueue q(&loop_);
  Status s = q.Open(path_);
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("newer wisp"), std::string::npos) << s.message();
  q.Close();
}

TEST(BackoffTest, DoublesUpToTheCapWithJitterBelowTheFullDelay) {
  DeliveryPolicy policy;
  policy.backoff_ms = 100;
  policy.max_backoff_ms = 1000;
  EXPECT_EQ(DurableDelivery::BackoffMs(policy, 1, 1.0), 100u);
  EXPECT_EQ(DurableDelivery::BackoffMs(policy, 1, 0.0), 75u);
  EXPECT_EQ(DurableDelivery::BackoffMs(policy, 2, 1.0), 200u);
  EXPECT_EQ(DurableDelivery::BackoffMs(policy, 3, 1.0), 400u);
  EXPECT_EQ(DurableDelivery::BackoffMs(policy, 5, 1.0), 1000u) << "capped";
  EXPECT_EQ(DurableDelivery::BackoffMs(policy, 90, 1.0), 1000u) << "no overflow";
}

}  // namespace
}  // namespace wisp::runtime
