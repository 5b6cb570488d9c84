// A prepared sqlite statement finalized on scope exit, with typed binds and
// column reads; or one borrowed from a SqliteStatementCache, prepared once
// per connection and only reset on scope exit. Not thread-safe: use it on
// the thread that owns its connection.
#ifndef WISP_RUNTIME_BASE_SQLITE_STATEMENT_H_
#define WISP_RUNTIME_BASE_SQLITE_STATEMENT_H_

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

namespace wisp {

// The statements a connection runs again and again, each prepared on its
// first use (parsing and planning cost more than running the small ones).
// Keyed by the SQL text's address: pass string literals. Clear before the
// connection closes. Same thread rules as the connection.
class SqliteStatementCache {
 public:
  explicit SqliteStatementCache(sqlite3** db) : db_(db) {}
  ~SqliteStatementCache() { Clear(); }
  SqliteStatementCache(const SqliteStatementCache&) = delete;
  SqliteStatementCache& operator=(const SqliteStatementCache&) = delete;

  // Finalizes every cached statement.
  void Clear() {
    for (auto& [sql, entry] : entries_) sqlite3_finalize(entry.stmt);
    entries_.clear();
  }

 private:
  friend class SqliteStatement;
  struct Entry {
    sqlite3_stmt* stmt = nullptr;
    bool borrowed = false;
  };
  sqlite3** db_;  // the connection, read at each use (it may be reopened)
  std::unordered_map<const char*, Entry> entries_;
};

class SqliteStatement {
 public:
  SqliteStatement(sqlite3* db, const char* sql) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  // Borrows sql's statement from cache, preparing it the first time; one
  // already borrowed (a nested use) is prepared anew and finalized as usual.
  SqliteStatement(SqliteStatementCache& cache, const char* sql) {
    auto [it, inserted] = cache.entries_.try_emplace(sql);
    if (it->second.borrowed) {
      rc_ = sqlite3_prepare_v2(*cache.db_, sql, -1, &stmt_, nullptr);
      return;
    }
    if (inserted) {
      rc_ = sqlite3_prepare_v3(*cache.db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &it->second.stmt,
                               nullptr);
      if (rc_ != SQLITE_OK) {
        sqlite3_finalize(it->second.stmt);
        cache.entries_.erase(it);
        return;
      }
    }
    rc_ = SQLITE_OK;
    stmt_ = it->second.stmt;
    it->second.borrowed = true;
    borrowed_ = &it->second;
  }
  ~SqliteStatement() {
    if (borrowed_ == nullptr) {
      sqlite3_finalize(stmt_);
      return;
    }
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    borrowed_->borrowed = false;
  }
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;

  // Whether preparing succeeded (else sqlite3_errmsg of the connection says why).
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return stmt_; }
  // sqlite3_step: SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(stmt_); }

  void BindText(int i, std::string_view s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
  }
  void BindInt(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void BindBlob(int i, std::string_view s) {
    sqlite3_bind_blob(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
  }
  // Column i of the current row, valid until the next Step or reset.
  std::string_view BlobView(int i) {
    const void* p = sqlite3_column_blob(stmt_, i);
    return p == nullptr ? std::string_view()
                        : std::string_view(static_cast<const char*>(p),
                                           static_cast<size_t>(sqlite3_column_bytes(stmt_, i)));
  }
  std::string Blob(int i) { return std::string(BlobView(i)); }
  // The whole text, a NUL inside included.
  std::string Text(int i) {
    const unsigned char* p = sqlite3_column_text(stmt_, i);
    return p == nullptr ? std::string()
                        : std::string(reinterpret_cast<const char*>(p),
                                      static_cast<size_t>(sqlite3_column_bytes(stmt_, i)));
  }
  int64_t Int(int i) { return sqlite3_column_int64(stmt_, i); }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
  SqliteStatementCache::Entry* borrowed_ = nullptr;  // set when borrowed from a cache
};

}  // namespace wisp

#endif  // WISP_RUNTIME_BASE_SQLITE_STATEMENT_H_
