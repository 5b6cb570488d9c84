#include "runtime/invocation_log.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "runtime/function_store.h"
#include "runtime/invocation_block.h"

namespace wisp::runtime {
namespace {

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

InvocationRecord Record(const std::string& function, int i, int64_t started_at_us = NowUs()) {
  InvocationRecord r;
  r.id = "inv-" + function + "-" + std::to_string(i);
  r.function = function;
  r.version = "1.0." + std::to_string(i);
  r.trigger = i % 2 == 0 ? "http" : "event";
  r.started_at_us = started_at_us;
  r.duration_us = 1000 + i;
  r.cold = i % 3 == 0;
  r.status = i % 5 == 0 ? 504 : 200;
  if (r.status != 200) {
    r.error_code = "timeout";
    r.error = "it took \"too\" long\n(" + std::to_string(i) + ")";
  }
  return r;
}

LogLine Line(const std::string& function, int i, int64_t at_us = NowUs()) {
  return LogLine{0, function, "inv-" + std::to_string(i), at_us, "line " + std::to_string(i)};
}

// Every field but seq, so a failure shows what was expected and what came.
std::string Describe(const InvocationRecord& r) {
  return r.id + " fn=" + r.function + " v=" + r.version + " trigger=" + r.trigger +
         " started=" + std::to_string(r.started_at_us) + " dur=" + std::to_string(r.duration_us) +
         " cold=" + std::to_string(r.cold) + " status=" + std::to_string(r.status) +
         " code=" + r.error_code + " error=" + r.error;
}

std::vector<std::string> Ids(const std::vector<InvocationRecord>& records) {
  std::vector<std::string> ids;
  for (const InvocationRecord& r : records) ids.push_back(r.id);
  return ids;
}

std::vector<std::string> Texts(const std::vector<LogLine>& lines) {
  std::vector<std::string> texts;
  for (const LogLine& l : lines) texts.push_back(l.line);
  return texts;
}

class InvocationLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/wisp-invlog-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/wisp.db";
    Status s = store_.Open(path_);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<InvocationLog> OpenLog(RetentionOptions retention = {}) {
    auto log = std::make_unique<InvocationLog>();
    Status s = log->Open(path_, retention);
    EXPECT_TRUE(s.ok()) << "Open(" << path_ << "): " << s.ToString();
    return log;
  }

  int64_t CountRows(const char* table) { return Query(std::string("SELECT count(*) FROM ") + table); }

  int64_t CountRecords() {
    return Query("SELECT coalesce(sum(count), 0) FROM records.invocation_blocks");
  }

  // The first column of the first row of sql, as a number (-1: none), on
  // wisp.db with records.db attached as records.
  int64_t Query(const std::string& sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    const std::string attach = "ATTACH DATABASE '" + dir_ + "/records.db' AS records";
    EXPECT_EQ(sqlite3_exec(db, attach.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    int64_t n = -1;
    if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
  }

  void Exec(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    const std::string attach = "ATTACH DATABASE '" + dir_ + "/records.db' AS records";
    ASSERT_EQ(sqlite3_exec(db, attach.c_str(), nullptr, nullptr, &err), SQLITE_OK) << err;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << (err != nullptr ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
  }

  std::string dir_;
  std::string path_;
  FunctionStore store_;
};

TEST_F(InvocationLogTest, ReadsBackNewestFirstWithEveryField) {
  auto log = OpenLog();
  std::vector<InvocationRecord> added;
  for (int i = 0; i < 6; ++i) added.push_back(Record(i % 2 == 0 ? "even" : "odd", i));
  for (const InvocationRecord& r : added) log->Add(r);
  Status flushed = log->Flush();
  ASSERT_TRUE(flushed.ok()) << flushed.ToString();
  EXPECT_EQ(log->written(), 6u);

  auto all = log->Invocations("", 100);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 6u) << "expected all 6 records back";
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(Describe((*all)[i]), Describe(added[5 - i])) << "position " << i << " (newest first)";
    if (i > 0) {
      EXPECT_LT((*all)[i].seq, (*all)[i - 1].seq) << "seqs must fall, newest first";
    }
  }

  auto odd = log->Invocations("odd", 100);
  ASSERT_TRUE(odd.ok()) << odd.status().ToString();
  EXPECT_EQ(Ids(*odd), (std::vector<std::string>{"inv-odd-5", "inv-odd-3", "inv-odd-1"}));

  auto two = log->Invocations("", 2);
  ASSERT_TRUE(two.ok()) << two.status().ToString();
  EXPECT_EQ(Ids(*two), (std::vector<std::string>{"inv-odd-5", "inv-even-4"}));

  auto clamped = log->Invocations("even", 0);
  ASSERT_TRUE(clamped.ok()) << clamped.status().ToString();
  EXPECT_EQ(Ids(*clamped), (std::vector<std::string>{"inv-even-4"})) << "limit 0 means 1";

  // The functions column names each function whole: a prefix matches none.
  EXPECT_EQ(Query("SELECT count(*) FROM records.invocation_blocks WHERE instr(functions, '" +
                  FunctionsKey("od") + "') > 0"),
            0);
  EXPECT_GE(Query("SELECT count(*) FROM records.invocation_blocks WHERE instr(functions, '" +
                  FunctionsKey("odd") + "') > 0"),
            1);
  auto prefix = log->Invocations("od", 10);
  ASSERT_TRUE(prefix.ok()) << prefix.status().ToString();
  EXPECT_TRUE(prefix->empty()) << "a name's prefix matched " << prefix->size() << " records";

  auto none = log->Invocations("missing", 10);
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->empty()) << "got " << none->size() << " records of a function never added";
}

TEST_F(InvocationLogTest, AHugeErrorIsCutOnACharacterBoundary) {
  auto log = OpenLog();
  InvocationRecord r = Record("big", 5);
  // 'é' is two bytes: the cut at kMaxRecordedErrorBytes falls inside one.
  r.error = "x";
  while (r.error.size() < 100000) r.error += "\xc3\xa9";
  log->Add(r);
  ASSERT_TRUE(log->Flush().ok());
  auto got = log->Invocations("big", 10);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), 1u);
  const std::string& error = (*got)[0].error;
  const std::string suffix = "... (" + std::to_string(r.error.size()) + " bytes in all)";
  ASSERT_GT(error.size(), suffix.size());
  EXPECT_EQ(error.substr(error.size() - suffix.size()), suffix);
  const std::string kept = error.substr(0, error.size() - suffix.size());
  EXPECT_EQ(kept.size(), kMaxRecordedErrorBytes - 1) << "expected the cut before the split character";
  EXPECT_EQ(kept, r.error.substr(0, kept.size()));
}

TEST_F(InvocationLogTest, LogsTailThenFollow) {
  auto log = OpenLog();
  for (int i = 0; i < 10; ++i) log->AddLog(Line("f", i));
  log->AddLog(Line("other", 99));
  ASSERT_TRUE(log->Flush().ok());

  auto tail = log->Logs("f", -1, 3);
  ASSERT_TRUE(tail.ok()) << tail.status().ToString();
  EXPECT_EQ(Texts(*tail), (std::vector<std::string>{"line 7", "line 8", "line 9"}))
      << "a tail is the newest lines, oldest first";
  ASSERT_EQ(tail->size(), 3u);
  EXPECT_EQ(tail->back().invocation, "inv-9");
  EXPECT_EQ(tail->back().function, "f");
  const int64_t last_seen = tail->back().seq;

  auto nothing_new = log->Logs("f", last_seen, 100);
  ASSERT_TRUE(nothing_new.ok()) << nothing_new.status().ToString();
  EXPECT_TRUE(nothing_new->empty()) << "got " << nothing_new->size() << " lines, none added";

  for (int i = 10; i < 13; ++i) log->AddLog(Line("f", i));
  ASSERT_TRUE(log->Flush().ok());
  auto follow = log->Logs("f", last_seen, 100);
  ASSERT_TRUE(follow.ok()) << follow.status().ToString();
  EXPECT_EQ(Texts(*follow), (std::vector<std::string>{"line 10", "line 11", "line 12"}))
      << "following returns only the lines after the last seq seen";

  auto first_page = log->Logs("f", 0, 4);
  ASSERT_TRUE(first_page.ok()) << first_page.status().ToString();
  EXPECT_EQ(Texts(*first_page), (std::vector<std::string>{"line 0", "line 1", "line 2", "line 3"}));
}

TEST_F(InvocationLogTest, ReopenKeepsWhatWasCommitted) {
  {
    auto log = OpenLog();
    log->Add(Record("f", 1));
    log->AddLog(Line("f", 1));
    log->Close();  // commits what waits
    EXPECT_EQ(log->written(), 2u);
    log->Add(Record("f", 2));  // after Close: dropped
    EXPECT_EQ(log->dropped(), 1u);
  }
  FunctionStore store;
  ASSERT_TRUE(store.Open(path_).ok());
  auto log = OpenLog();
  auto records = log->Invocations("f", 10);
  ASSERT_TRUE(records.ok()) << records.status().ToString();
  EXPECT_EQ(Ids(*records), (std::vector<std::string>{"inv-f-1"}));
  auto lines = log->Logs("f", -1, 10);
  ASSERT_TRUE(lines.ok()) << lines.status().ToString();
  EXPECT_EQ(Texts(*lines), (std::vector<std::string>{"line 1"}));
}

TEST_F(InvocationLogTest, RetentionByCountTrimsTheOldest) {
  RetentionOptions retention;
  retention.max_invocations = 4;
  retention.max_log_lines = 3;
  auto log = OpenLog(retention);
  for (int i = 0; i < 10; ++i) log->Add(Record(i < 5 ? "a" : "b", i));
  for (int i = 0; i < 7; ++i) log->AddLog(Line("a", i));
  ASSERT_TRUE(log->Flush().ok());
  Status s = log->ApplyRetention();
  ASSERT_TRUE(s.ok()) << s.ToString();

  auto records = log->Invocations("", 100);
  ASSERT_TRUE(records.ok()) << records.status().ToString();
  EXPECT_EQ(Ids(*records), (std::vector<std::string>{"inv-b-9", "inv-b-8", "inv-b-7", "inv-b-6"}));
  auto lines = log->Logs("a", -1, 100);
  ASSERT_TRUE(lines.ok()) << lines.status().ToString();
  EXPECT_EQ(Texts(*lines), (std::vector<std::string>{"line 4", "line 5", "line 6"}));
}

TEST_F(InvocationLogTest, RetentionByCountCutsInsideABlock) {
  RetentionOptions retention;
  retention.max_invocations = 13;
  auto log = OpenLog(retention);
  for (int block = 0; block < 2; ++block) {  // a flush between: two blocks of ten
    for (int i = 0; i < 10; ++i) log->Add(Record("f", block * 10 + i));
    ASSERT_TRUE(log->Flush().ok());
  }
  ASSERT_TRUE(log->ApplyRetention().ok());
  EXPECT_EQ(CountRecords(), 13);
  auto records = log->Invocations("f", 100);
  ASSERT_TRUE(records.ok()) << records.status().ToString();
  ASSERT_EQ(records->size(), 13u);
  EXPECT_EQ(records->front().id, "inv-f-19");
  EXPECT_EQ(records->back().id, "inv-f-7") << "the oldest kept: the block's last three stay";
  for (size_t i = 1; i < records->size(); ++i) {
    EXPECT_LT((*records)[i].seq, (*records)[i - 1].seq) << "seqs must fall, newest first";
  }
  const int64_t newest_seq = records->front().seq;
  log->Add(Record("f", 20));
  ASSERT_TRUE(log->Flush().ok());
  auto after = log->Invocations("f", 1);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  ASSERT_EQ(Ids(*after), (std::vector<std::string>{"inv-f-20"}));
  EXPECT_GT(after->front().seq, newest_seq) << "a new record's seq repeats an old one";
}

TEST_F(InvocationLogTest, RetentionByAgeKeepsTheNewestRecord) {
  RetentionOptions retention;
  retention.max_age_s = 60;
  auto log = OpenLog(retention);
  const int64_t old_us = NowUs() - int64_t{3600} * 1000000;
  for (int i = 0; i < 3; ++i) log->Add(Record("f", i, old_us));
  ASSERT_TRUE(log->Flush().ok());
  log->Add(Record("f", 3, old_us));
  ASSERT_TRUE(log->Flush().ok());
  ASSERT_TRUE(log->ApplyRetention().ok());
  auto records = log->Invocations("f", 100);
  ASSERT_TRUE(records.ok()) << records.status().ToString();
  EXPECT_EQ(Ids(*records), (std::vector<std::string>{"inv-f-3"}));
  EXPECT_EQ(CountRows("records.invocation_blocks"), 1) << "the emptied block must go";
}

TEST_F(InvocationLogTest, AnUnreadableBlockIsSkippedThenDeletedNotACrash) {
  RetentionOptions retention;
  retention.max_invocations = 1;
  auto log = OpenLog(retention);
  log->Add(Record("f", 1));
  log->Add(Record("f", 2));
  ASSERT_TRUE(log->Flush().ok());
  // Two blocks nobody can read: one that does not parse, one whose row
  // counts more records than it holds (a blob cut at a record's end).
  Exec("INSERT INTO records.invocation_blocks SELECT 1000, 2, oldest_us, newest_us, functions,"
       " x'0aff01' FROM records.invocation_blocks LIMIT 1;"
       "INSERT INTO records.invocation_blocks SELECT 2000, count + 1, oldest_us, newest_us,"
       " functions, records FROM records.invocation_blocks WHERE seq < 1000 LIMIT 1;");
  auto records = log->Invocations("f", 10);
  ASSERT_TRUE(records.ok()) << records.status().ToString();
  EXPECT_EQ(Ids(*records).size(), 2u) << "the readable records are still listed";
  EXPECT_EQ(records->front().id, "inv-f-2");
  // Keeping one record cuts inside the newest block, which cannot be read:
  // it goes, and retention finishes.
  Status s = log->ApplyRetention();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(CountRows("records.invocation_blocks"), 0);
  log->Add(Record("f", 3));
  ASSERT_TRUE(log->Flush().ok());
  auto after = log->Invocations("f", 10);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(Ids(*after), (std::vector<std::string>{"inv-f-3"}));
}

TEST_F(InvocationLogTest, AMissingRecordsDbIsMadeAgain) {
  {
    auto log = OpenLog();
    log->Add(Record("f", 1));
    log->Close();
  }
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::filesystem::remove(dir_ + "/records.db" + suffix);
  }
  auto log = OpenLog();
  auto none = log->Invocations("f", 10);
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->empty());
  log->Add(Record("f", 2));
  ASSERT_TRUE(log->Flush().ok());
  auto records = log->Invocations("f", 10);
  ASSERT_TRUE(records.ok()) << records.status().ToString();
  EXPECT_EQ(Ids(*records), (std::vector<std::string>{"inv-f-2"}));
  EXPECT_EQ(Query("PRAGMA records.page_size"), 65536) << "a new records.db has large pages";
}

TEST_F(InvocationLogTest, MigratesSchemaSixRowsIntoBlocks) {
  // A schema 6 database: one row per record, seqs 1..2999 then 5000..6999;
  // and a block in records.db, as a migration that crashed before its
  // commit would leave.
  Exec("INSERT INTO records.invocation_blocks VALUES (1, 1, 0, 0, '\nx\n', x'');"
       "CREATE TABLE invocations (seq INTEGER PRIMARY KEY, id TEXT NOT NULL,"
       " function TEXT NOT NULL, version TEXT NOT NULL, trigger TEXT NOT NULL,"
       " started_at_us INTEGER NOT NULL, duration_us INTEGER NOT NULL, cold INTEGER NOT NULL,"
       " status INTEGER NOT NULL, error_code TEXT NOT NULL, error TEXT NOT NULL,"
       " trace_id TEXT NOT NULL DEFAULT '');"
       "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6999)"
       " INSERT INTO invocations SELECT i, 'inv-' || i, CASE WHEN i % 7 = 0 THEN 'seven'"
       " ELSE 'other' END, '1.0.0', 'http', 1000 + i, i, i % 2, 200, '', '', 'abc'"
       " FROM n WHERE i < 3000 OR i >= 5000;"
       "PRAGMA user_version = 6;");
  FunctionStore store;
  Status s = store.Open(path_);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Query("PRAGMA user_version"), 8);
  EXPECT_EQ(Query("SELECT count(*) FROM sqlite_master WHERE name = 'invocations'"), 0);
  EXPECT_EQ(CountRecords(), 4999);
  EXPECT_EQ(Query("PRAGMA records.page_size"), 65536);
  RetentionOptions retention;
  retention.max_age_s = 0;  // the rows started in 1970
  auto log = OpenLog(retention);
  auto newest = log->Invocations("", 3);
  ASSERT_TRUE(newest.ok()) << newest.status().ToString();
  EXPECT_EQ(Ids(*newest), (std::vector<std::string>{"inv-6999", "inv-6998", "inv-6997"}));
  EXPECT_EQ(newest->front().seq, 6999) << "a migrated record keeps its seq";
  const InvocationRecord& r = newest->front();
  EXPECT_EQ(r.function + " " + r.version + " " + r.trigger + " " + std::to_string(r.started_at_us) +
                " " + std::to_string(r.duration_us) + " " + std::to_string(r.cold) + " " +
                std::to_string(r.status) + " " + std::string(r.trace_id.view()),
            "other 1.0.0 http 7999 6999 1 200 abc");
  auto sevens = log->Invocations("seven", 1000);
  ASSERT_TRUE(sevens.ok()) << sevens.status().ToString();
  EXPECT_EQ(sevens->size(), 713u) << "records of 'seven' after the migration (428 + 285)";
  EXPECT_EQ(sevens->back().id, "inv-7");
  log->Add(Record("f", 1));
  ASSERT_TRUE(log->Flush().ok());
  auto added = log->Invocations("f", 1);
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  ASSERT_EQ(added->size(), 1u);
  EXPECT_EQ(added->front().seq, 7000) << "the next record follows the migrated ones";
}

TEST_F(InvocationLogTest, RetentionByAgeDeletesOnlyOldRows) {
  RetentionOptions retention;
  retention.max_age_s = 3600;
  auto log = OpenLog(retention);
  const int64_t old_us = NowUs() - int64_t{2} * 3600 * 1000000;  // two hours ago
  const int64_t fresh_us = NowUs() - int64_t{600} * 1000000;     // ten minutes ago
  for (int i = 0; i < 8; ++i) {
    const bool old = i % 2 == 0;  // interleaved, the newest row fresh
    log->Add(Record("f", i, old ? old_us : fresh_us));
    log->AddLog(Line("f", i, old ? old_us : fresh_us));
  }
  ASSERT_TRUE(log->Flush().ok());
  Status s = log->ApplyRetention();
  ASSERT_TRUE(s.ok()) << s.ToString();

  auto records = log->Invocations("f", 100);
  ASSERT_TRUE(records.ok()) << records.status().ToString();
  EXPECT_EQ(Ids(*records), (std::vector<std::string>{"inv-f-7", "inv-f-5", "inv-f-3", "inv-f-1"}))
      << "only the records started within max_age_s stay";
  auto lines = log->Logs("f", -1, 100);
  ASSERT_TRUE(lines.ok()) << lines.status().ToString();
  EXPECT_EQ(Texts(*lines), (std::vector<std::string>{"line 1", "line 3", "line 5", "line 7"}));
}

TEST_F(InvocationLogTest, RetentionKeepsTheNewestRowSoSeqsNeverRepeat) {
  RetentionOptions retention;
  retention.max_age_s = 60;
  auto log = OpenLog(retention);
  const int64_t old_us = NowUs() - int64_t{3600} * 1000000;
  for (int i = 0; i < 3; ++i) log->AddLog(Line("f", i, old_us));
  ASSERT_TRUE(log->Flush().ok());
  ASSERT_TRUE(log->ApplyRetention().ok());
  auto lines = log->Logs("f", -1, 100);
  ASSERT_TRUE(lines.ok()) << lines.status().ToString();
  ASSERT_EQ(Texts(*lines), (std::vector<std::string>{"line 2"}));
  const int64_t last_seen = lines->back().seq;
  log->AddLog(Line("f", 3));
  ASSERT_TRUE(log->Flush().ok());
  auto follow = log->Logs("f", last_seen, 100);
  ASSERT_TRUE(follow.ok()) << follow.status().ToString();
  EXPECT_EQ(Texts(*follow), (std::vector<std::string>{"line 3"}));
}

TEST_F(InvocationLogTest, FourThreadsAddTwentyThousandRecords) {
  auto log = OpenLog();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&log, t] {
      for (int i = 0; i < 5000; ++i) log->Add(Record("t" + std::to_string(t), i));
    });
  }
  for (std::thread& t : threads) t.join();
  Status s = log->Flush();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(log->dropped(), 0u);
  EXPECT_EQ(log->written(), 20000u);
  EXPECT_EQ(CountRecords(), 20000) << "records in the invocation blocks";
  // Batches, not records, make rows.
  EXPECT_LE(CountRows("records.invocation_blocks"), 2000) << "rows for 20,000 records";
}

TEST_F(InvocationLogTest, DropsWhenTooManyWaitAndBeforeOpen) {
  InvocationLog log(/*max_pending=*/0);
  log.Add(Record("f", 0));  // not open yet
  EXPECT_EQ(log.dropped(), 1u);
  ASSERT_TRUE(log.Open(path_, {}).ok());
  for (int i = 0; i < 10; ++i) log.AddLog(Line("f", i));
  ASSERT_TRUE(log.Flush().ok());
  EXPECT_EQ(log.dropped(), 11u);
  EXPECT_EQ(log.written(), 0u);
  EXPECT_EQ(CountRows("logs"), 0);
}

TEST_F(InvocationLogTest, OpenFailsWithoutTheSchema) {
  InvocationLog log;
  Status s = log.Open(dir_ + "/empty.db", {});
  EXPECT_FALSE(s.ok()) << "a missing database must not open";
  const std::string path = dir_ + "/bare.db";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_close(db);
  InvocationLog bare;
  s = bare.Open(path, {});
  EXPECT_EQ(s.code(), Status::Code::kIOError) << s.ToString();
  EXPECT_NE(s.message().find("logs"), std::string::npos) << s.ToString();
  auto read = bare.Invocations("", 1);
  EXPECT_EQ(read.status().code(), Status::Code::kUnavailable) << read.status().ToString();
}

}  // namespace
}  // namespace wisp::runtime
