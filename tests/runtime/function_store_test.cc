#include "runtime/function_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace wisp::runtime {
namespace {

class FunctionStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/wisp-store-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/wisp.db";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static FunctionRecord Record(const std::string& name, std::vector<std::string> subjects) {
    FunctionRecord r;
    r.name = name;
    r.sha256 = std::string(64, 'a');
    r.size_bytes = 123;
    r.deployed_at = "2026-11-27T00:00:00Z";
    r.subjects = std::move(subjects);
    return r;
  }

  void ExecRaw(const char* sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
    EXPECT_EQ(rc, SQLITE_OK) << (err != nullptr ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
  }

  // The first column of the first row sql gives, as a number (-1: none), in
  // wisp.db or the database at path.
  int64_t QueryInt(const char* sql, const std::string& path = "") {
    sqlite3* db = nullptr;
    int64_t value = -1;
    if (sqlite3_open((path.empty() ? path_ : path).c_str(), &db) == SQLITE_OK) {
      sqlite3_stmt* st = nullptr;
      if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK &&
          sqlite3_step(st) == SQLITE_ROW) {
        value = sqlite3_column_int64(st, 0);
      }
      sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return value;
  }

  // The schema version is the newest: invocation records are kept in
  // blocks in records.db (schema 7), the table of one row per record is
  // gone, and blocks may be in format 1 (schema 8).
  void ExpectNewestSchema() {
    EXPECT_EQ(QueryInt("PRAGMA user_version"), 8);
    EXPECT_EQ(QueryInt("SELECT count(*) FROM sqlite_master WHERE name = 'invocations'"), 0);
    const std::string records = dir_ + "/records.db";
    EXPECT_EQ(QueryInt("SELECT count(*) FROM sqlite_master WHERE name = 'invocation_blocks'",
                       records),
              1);
    EXPECT_EQ(QueryInt("PRAGMA page_size", records), 65536);
  }

  std::string dir_;
  std::string path_;
};

TEST_F(FunctionStoreTest, AFreshDatabaseHasTheNewestSchema) {
  FunctionStore store;
  ASSERT_TRUE(store.Open(path_).ok());
  ExpectNewestSchema();
}

TEST_F(FunctionStoreTest, KeepsSubjectsInOrderAcrossReopen) {
  {
    FunctionStore store;
    ASSERT_TRUE(store.Open(path_).ok());
    ASSERT_TRUE(store.Put(Record("b", {"orders.*", "wisp.x.>"})).ok());
    ASSERT_TRUE(store.Put(Record("a", {})).ok());
    FunctionRecord c = Record("c", {"z", "y", "x"});
    c.version = "1.2.3-rc.1";
    c.is_private = true;
    ASSERT_TRUE(store.Put(c).ok());
  }
  FunctionStore store;
  ASSERT_TRUE(store.Open(path_).ok());
  StatusOr<std::vector<FunctionRecord>> list = store.List();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].name, "a");
  EXPECT_TRUE((*list)[0].subjects.empty());
  EXPECT_EQ((*list)[1].subjects, (std::vector<std::string>{"orders.*", "wisp.x.>"}));
  EXPECT_EQ((*list)[2].subjects, (std::vector<std::string>{"z", "y", "x"}));
  EXPECT_EQ((*list)[2].version, "1.2.3-rc.1");
  EXPECT_TRUE((*list)[2].is_private);
  EXPECT_FALSE((*list)[1].is_private);
}

TEST_F(FunctionStoreTest, KeepsLimitsAndGivesOlderVersionsTheDefaults) {
  FunctionRecord limited = Record("limited", {});
  limited.limits.memory_bytes = 64ull << 20;
  limited.limits.cpu_ms = 2000;
  limited.limits.open_files = 32;
  limited.limits.processes = 8;
  limited.limits.max_request_bytes = 0;
  limited.limits.max_reply_bytes = 4096;
  limited.limits.max_events = 0;
  {
    FunctionStore store;
    ASSERT_TRUE(store.Open(path_).ok());
    ASSERT_TRUE(store.Put(limited).ok());
    ASSERT_TRUE(store.Put(Record("old", {})).ok());
    ASSERT_TRUE(store.Put(Record("plain", {})).ok());
  }
  // A version stored before limits existed: its config holds timeout_ms = 100 only.
  ExecRaw("UPDATE versions SET config = x'0864' WHERE name = 'old'");
  FunctionStore store;
  ASSERT_TRUE(store.Open(path_).ok());
  StatusOr<std::vector<FunctionRecord>> list = store.List();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 3u);
  EXPECT_TRUE((*list)[0].limits == limited.limits) << "limits changed across the store";
  EXPECT_EQ((*list)[1].timeout_ms, 100u);
  EXPECT_TRUE((*list)[1].limits == FunctionLimits{}) << "an older version lost the defaults";
  EXPECT_TRUE((*list)[2].limits == FunctionLimits{});
}

TEST_F(FunctionStoreTest, RedeployReplacesSubjectsAndRemoveDropsThem) {
  FunctionStore store;
  ASSERT_TRUE(store.Open(path_).ok());
  ASSERT_TRUE(store.Put(Record("f", {"one", "two"})).ok());
  FunctionRecord second = Record("f", {"three"});
  second.version = "0.0.2";
  ASSERT_TRUE(store.Put(second).ok());
  StatusOr<std::vector<FunctionRecord>> list = store.List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].subjects, (std::vector<std::string>{"three"}));

  ASSERT_TRUE(store.Remove("f").ok());
  ASSERT_TRUE(store.Put(Record("f", {})).ok());
  list = store.List();
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE((*list)[0].subjects.empty()) << "subjects of a removed function came back";
  EXPECT_EQ(store.Remove("nothing").code(), Status::Code::kNotFound);
}

TEST_F(FunctionStoreTest, MigratesASchemaOneDatabase) {
  ExecRaw(
      "CREATE TABLE functions (name TEXT PRIMARY KEY, sha256 TEXT NOT NULL,"
      " size_bytes INTEGER NOT NULL, timeout_ms INTEGER NOT NULL, idle_ms INTEGER NOT NULL,"
      " max_workers INTEGER NOT NULL, deployed_at TEXT NOT NULL);"
      "INSERT INTO functions VALUES ('old', 'abc', 1, 1000, 2000, 3, 'then');"
      "PRAGMA user_version = 1;");
  FunctionStore store;
  Status s = store.Open(path_);
  ASSERT_TRUE(s.ok()) << s.ToString();
  StatusOr<std::vector<FunctionRecord>> list = store.List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].name, "old");
  EXPECT_EQ((*list)[0].max_workers, 3u);
  EXPECT_EQ((*list)[0].version, "0.0.1") << "a migrated record gets the first version";
  FunctionRecord next = Record("old", {"after.migration"});
  next.version = "0.0.2";
  ASSERT_TRUE(store.Put(next).ok());
  ExpectNewestSchema();
}

TEST_F(FunctionStoreTest, MigratesASchemaThreeDatabaseIntoOneVersionEach) {
  ExecRaw(
      "CREATE TABLE functions (name TEXT PRIMARY KEY, sha256 TEXT NOT NULL,"
      " size_bytes INTEGER NOT NULL, timeout_ms INTEGER NOT NULL, idle_ms INTEGER NOT NULL,"
      " max_workers INTEGER NOT NULL, deployed_at TEXT NOT NULL,"
      " version TEXT NOT NULL DEFAULT '0.0.1', private INTEGER NOT NULL DEFAULT 0);"
      "CREATE TABLE function_subjects (name TEXT NOT NULL, position INTEGER NOT NULL,"
      " subject TEXT NOT NULL, PRIMARY KEY (name, position));"
      "INSERT INTO functions VALUES ('f', 'abc', 1, 1000, 2000, 3, 'then', '1.4.2', 1);"
      "INSERT INTO function_subjects VALUES ('f', 1, 'b.*'), ('f', 0, 'a');"
      "PRAGMA user_version = 3;");
  FunctionStore store;
  Status s = store.Open(path_);
  ASSERT_TRUE(s.ok()) << s.ToString();
  StatusOr<std::vector<FunctionRecord>> versions = store.Versions("f");
  ASSERT_TRUE(versions.ok()) << versions.status().ToString();
  ASSERT_EQ(versions->size(), 1u);
  const FunctionRecord& v = (*versions)[0];
  EXPECT_EQ(v.version, "1.4.2");
  EXPECT_EQ(v.sha256, "abc");
  EXPECT_EQ(v.timeout_ms, 1000u);
  EXPECT_EQ(v.idle_ms, 2000u);
  EXPECT_EQ(v.max_workers, 3u);
  EXPECT_TRUE(v.is_private);
  EXPECT_EQ(v.subjects, (std::vector<std::string>{"a", "b.*"}));
  ExpectNewestSchema();
}

TEST_F(FunctionStoreTest, VersionsAreImmutableAndRollbackSwitchesTheCurrentOne) {
  FunctionStore store;
  ASSERT_TRUE(store.Open(path_).ok());
  FunctionRecord v1 = Record("f", {"one"});
  v1.env = {{"GREETING", "hi"}};
  ASSERT_TRUE(store.Put(v1).ok());
  FunctionRecord v2 = Record("f", {"two"});
  v2.version = "0.0.2";
  v2.sha256 = std::string(64, 'b');
  ASSERT_TRUE(store.Put(v2).ok());
  FunctionRecord again = Record("f", {});
  Status s = store.Put(again);
  EXPECT_EQ(s.code(), Status::Code::kAlreadyExists) << "a second 0.0.1 was accepted: " << s.ToString();

  StatusOr<std::vector<FunctionRecord>> list = store.List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].version, "0.0.2");
  ASSERT_TRUE(store.SetCurrent("f", "0.0.1").ok());
  EXPECT_EQ(store.SetCurrent("f", "9.9.9").code(), Status::Code::kNotFound);
  {
    FunctionStore reopened;
    ASSERT_TRUE(reopened.Open(path_).ok());
    list = reopened.List();
    ASSERT_TRUE(list.ok());
    ASSERT_EQ(list->size(), 1u);
    EXPECT_EQ((*list)[0].version, "0.0.1") << "the rollback did not survive a reopen";
    EXPECT_EQ((*list)[0].subjects, (std::vector<std::string>{"one"}));
    EXPECT_EQ((*list)[0].env, (std::map<std::string, std::string>{{"GREETING", "hi"}}));
  }
  StatusOr<int> uses = store.CountArtifactUses(std::string(64, 'b'));
  ASSERT_TRUE(uses.ok());
  EXPECT_EQ(*uses, 1) << "a non-current version still names its artifact";
}

TEST_F(FunctionStoreTest, PruneKeepsTheNewestVersionsAndTheCurrentOne) {
  FunctionStore store;
  ASSERT_TRUE(store.Open(path_).ok());
  for (int i = 1; i <= 5; ++i) {
    FunctionRecord r = Record("f", {});
    r.version = "1.0." + std::to_string(i);
    r.sha256 = std::string(64, static_cast<char>('0' + i));
    ASSERT_TRUE(store.Put(r).ok());
  }
  ASSERT_TRUE(store.SetCurrent("f", "1.0.1").ok());
  StatusOr<std::vector<std::string>> pruned = store.PruneVersions("f", 3);
  ASSERT_TRUE(pruned.ok()) << pruned.status().ToString();
  EXPECT_EQ(*pruned, (std::vector<std::string>{std::string(64, '3'), std::string(64, '2')}));
  StatusOr<std::vector<FunctionRecord>> versions = store.Versions("f");
  ASSERT_TRUE(versions.ok());
  std::vector<std::string> left;
  for (const FunctionRecord& v : *versions) left.push_back(v.version);
  EXPECT_EQ(left, (std::vector<std::string>{"1.0.1", "1.0.4", "1.0.5"}));
  ASSERT_TRUE(store.Remove("f").ok());
  versions = store.Versions("f");
  ASSERT_TRUE(versions.ok());
  EXPECT_TRUE(versions->empty()) << "versions outlived their function";
}

TEST_F(FunctionStoreTest, RefusesADatabaseFromANewerWisp) {
  ExecRaw("PRAGMA user_version = 99;");
  FunctionStore store;
  Status s = store.Open(path_);
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("newer wisp"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace wisp::runtime
