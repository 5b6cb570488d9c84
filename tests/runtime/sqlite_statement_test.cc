#include "runtime/base/sqlite_statement.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

namespace wisp {
namespace {

class SqliteStatementCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(sqlite3_open(":memory:", &db_), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db_, "CREATE TABLE t (x INTEGER)", nullptr, nullptr, nullptr),
              SQLITE_OK);
  }
  void TearDown() override {
    cache_.Clear();
    EXPECT_EQ(sqlite3_close(db_), SQLITE_OK) << "a statement was left unfinalized";
  }

  sqlite3* db_ = nullptr;
  SqliteStatementCache cache_{&db_};
};

constexpr const char* kInsert = "INSERT INTO t VALUES (?1)";
constexpr const char* kCount = "SELECT count(*), sum(x) FROM t";

TEST_F(SqliteStatementCacheTest, PreparesOnceAndResetsBetweenUses) {
  sqlite3_stmt* first = nullptr;
  for (int i = 1; i <= 3; ++i) {
    SqliteStatement insert(cache_, kInsert);
    ASSERT_TRUE(insert.ok());
    if (first == nullptr) first = insert.get();
    EXPECT_EQ(insert.get(), first) << "use " << i << " prepared the statement again";
    insert.BindInt(1, i);
    EXPECT_EQ(insert.Step(), SQLITE_DONE);
  }
  {
    // Bindings do not outlive a use: unbound, ?1 is NULL.
    SqliteStatement insert(cache_, kInsert);
    EXPECT_EQ(insert.Step(), SQLITE_DONE);
  }
  SqliteStatement count(cache_, kCount);
  ASSERT_EQ(count.Step(), SQLITE_ROW);
  EXPECT_EQ(count.Int(0), 4);
  EXPECT_EQ(count.Int(1), 6);
}

TEST_F(SqliteStatementCacheTest, ANestedUseGetsItsOwnStatement) {
  SqliteStatement outer(cache_, kCount);
  SqliteStatement inner(cache_, kCount);
  ASSERT_TRUE(outer.ok());
  ASSERT_TRUE(inner.ok());
  EXPECT_NE(outer.get(), inner.get());
  EXPECT_EQ(outer.Step(), SQLITE_ROW);
  EXPECT_EQ(inner.Step(), SQLITE_ROW);
}

TEST_F(SqliteStatementCacheTest, BadSqlIsNotCached) {
  {
    SqliteStatement bad(cache_, "SELEC nonsense");
    EXPECT_FALSE(bad.ok());
  }
  SqliteStatement again(cache_, "SELEC nonsense");
  EXPECT_FALSE(again.ok()) << "a failed prepare must fail again, not return a cached null";
}

}  // namespace
}  // namespace wisp
