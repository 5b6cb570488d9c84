#include "runtime/wal_checkpointer.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

namespace wisp::runtime {
namespace {

class WalCheckpointerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/wisp-wal-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/db.sqlite";
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db_), SQLITE_OK);
    Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; CREATE TABLE t (x BLOB);");
  }
  void TearDown() override {
    sqlite3_close_v2(db_);
    std::filesystem::remove_all(dir_);
  }

  void Exec(const char* sql) {
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db_, sql, nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
    sqlite3_free(err);
  }

  // Commits n rows of about a page each, one transaction per row (each
  // adds two or three pages to the log: the row's and the tree's).
  void CommitPages(int n) {
    for (int i = 0; i < n; ++i) Exec("INSERT INTO t VALUES (zeroblob(4000))");
  }

  // The connection's automatic checkpoint size; 0 when commits never
  // checkpoint (a WAL hook of its own replaced them).
  int64_t AutoCheckpointPages() {
    sqlite3_stmt* st = nullptr;
    int64_t pages = -1;
    if (sqlite3_prepare_v2(db_, "PRAGMA wal_autocheckpoint", -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      pages = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return pages;
  }

  uintmax_t DatabaseBytes() const { return std::filesystem::file_size(path_); }

  std::string dir_, path_;
  sqlite3* db_ = nullptr;
};

TEST_F(WalCheckpointerTest, ItsThreadCopiesTheLogIntoTheDatabaseNotTheCommits) {
  ASSERT_EQ(AutoCheckpointPages(), 1000) << "sqlite's default before";
  WalCheckpointer checkpointer;
  ASSERT_TRUE(checkpointer.Start(db_, path_).ok());
  EXPECT_EQ(AutoCheckpointPages(), 0) << "commits on the connection would still checkpoint";
  const uintmax_t before = DatabaseBytes();
  // Below the size: no checkpoint anywhere, the rows are only in the log.
  CommitPages(WalCheckpointer::kCheckpointPages / 5);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(checkpointer.checkpoints(), 0u);
  EXPECT_EQ(DatabaseBytes(), before) << "a commit checkpointed the log itself";
  // Past it: the checkpointer's thread copies the log in.
  CommitPages(WalCheckpointer::kCheckpointPages);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (checkpointer.checkpoints() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GE(checkpointer.checkpoints(), 1u) << "no checkpoint after the log grew past the size";
  EXPECT_GT(DatabaseBytes(), before + 4000u * WalCheckpointer::kCheckpointPages / 5)
      << "the rows never reached the database file";
  checkpointer.Stop();
  checkpointer.Stop();  // idempotent
}

TEST_F(WalCheckpointerTest, StopGivesTheConnectionItsAutomaticCheckpointsBack) {
  WalCheckpointer checkpointer;
  ASSERT_TRUE(checkpointer.Start(db_, path_).ok());
  checkpointer.Stop();
  EXPECT_EQ(AutoCheckpointPages(), WalCheckpointer::kCheckpointPages);
  const uintmax_t before = DatabaseBytes();
  CommitPages(WalCheckpointer::kCheckpointPages + 10);
  EXPECT_EQ(checkpointer.checkpoints(), 0u);
  EXPECT_GT(DatabaseBytes(), before) << "without the checkpointer, commits should checkpoint";
}

TEST_F(WalCheckpointerTest, AMissingFileFailsToStart) {
  WalCheckpointer checkpointer;
  Status s = checkpointer.Start(db_, dir_ + "/no/such/dir/db.sqlite");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("to checkpoint it"), std::string::npos) << s.ToString();
}

}  // namespace
}  // namespace wisp::runtime
