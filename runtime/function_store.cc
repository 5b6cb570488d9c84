#include "runtime/function_store.h"

#include <sqlite3.h>

namespace wisp::runtime {
namespace {

// 1: functions. 2: functions.version and function_subjects, the subjects a
// function subscribes to. 3: functions.private.
constexpr int kSchemaVersion = 3;

// Finalizes a statement on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr); }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return stmt_; }
  void BindText(int i, const std::string& s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
  }
  void BindInt(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  std::string Text(int i) {
    const unsigned char* p = sqlite3_column_text(stmt_, i);
    return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p));
  }
  int64_t Int(int i) { return sqlite3_column_int64(stmt_, i); }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

}  // namespace

FunctionStore::~FunctionStore() {
  if (db_ != nullptr) sqlite3_close_v2(db_);
}

Status FunctionStore::Error(const char* what) const {
  return Status::IOError(std::string(what) + ": " + sqlite3_errmsg(db_));
}

Status FunctionStore::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    Status s = Status::IOError(std::string("sqlite: ") + (err != nullptr ? err : "error"));
    sqlite3_free(err);
    return s;
  }
  return Status::OK();
}

Status FunctionStore::Open(const std::string& path) {
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                      nullptr) != SQLITE_OK) {
    return Error(("open " + path).c_str());
  }
  sqlite3_busy_timeout(db_, 5000);
  Status s = Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
  if (!s.ok()) return Status::Corruption(path + " is not a usable wisp database: " + s.message());
  Statement version(db_, "PRAGMA user_version");
  if (!version.ok() || sqlite3_step(version.get()) != SQLITE_ROW) return Error("read schema version");
  const int64_t found = version.Int(0);
  if (found > kSchemaVersion) {
    return Status::InvalidArgument(path + " was written by a newer wisp (schema " +
                                   std::to_string(found) + ", this wisp knows " +
                                   std::to_string(kSchemaVersion) + "); refusing to touch it");
  }
  if (found == 0) {
    WISP_RETURN_IF_ERROR(Exec(
        "BEGIN;"
        "CREATE TABLE IF NOT EXISTS functions ("
        "  name TEXT PRIMARY KEY,"
        "  sha256 TEXT NOT NULL,"
        "  size_bytes INTEGER NOT NULL,"
        "  timeout_ms INTEGER NOT NULL,"
        "  idle_ms INTEGER NOT NULL,"
        "  max_workers INTEGER NOT NULL,"
        "  deployed_at TEXT NOT NULL);"
        "PRAGMA user_version = 1;"
        "COMMIT;"));
  }
  if (found < 2) {
    WISP_RETURN_IF_ERROR(Exec(
        "BEGIN;"
        "ALTER TABLE functions ADD COLUMN version TEXT NOT NULL DEFAULT '0.0.1';"
        "CREATE TABLE IF NOT EXISTS function_subjects ("
        "  name TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,"
        "  position INTEGER NOT NULL,"
        "  subject TEXT NOT NULL,"
        "  PRIMARY KEY (name, position));"
        "PRAGMA user_version = 2;"
        "COMMIT;"));
  }
  if (found < 3) {
    WISP_RETURN_IF_ERROR(Exec(
        "BEGIN;"
        "ALTER TABLE functions ADD COLUMN private INTEGER NOT NULL DEFAULT 0;"
        "PRAGMA user_version = 3;"
        "COMMIT;"));
  }
  return Exec("PRAGMA foreign_keys = ON;");
}

Status FunctionStore::Put(const FunctionRecord& r) {
  // One transaction: a record is never seen with half its subjects.
  WISP_RETURN_IF_ERROR(Exec("BEGIN"));
  Status s = PutLocked(r);
  if (!s.ok()) {
    (void)Exec("ROLLBACK");
    return s;
  }
  return Exec("COMMIT");
}

Status FunctionStore::PutLocked(const FunctionRecord& r) {
  Statement st(db_,
               "INSERT OR REPLACE INTO functions (name, sha256, size_bytes, timeout_ms, idle_ms,"
               " max_workers, deployed_at, version, private)"
               " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
  if (!st.ok()) return Error("prepare insert");
  st.BindText(1, r.name);
  st.BindText(2, r.sha256);
  st.BindInt(3, static_cast<int64_t>(r.size_bytes));
  st.BindInt(4, static_cast<int64_t>(r.timeout_ms));
  st.BindInt(5, static_cast<int64_t>(r.idle_ms));
  st.BindInt(6, r.max_workers);
  st.BindText(7, r.deployed_at);
  st.BindText(8, r.version);
  st.BindInt(9, r.is_private ? 1 : 0);
  if (sqlite3_step(st.get()) != SQLITE_DONE) return Error(("store function " + r.name).c_str());
  Statement clear(db_, "DELETE FROM function_subjects WHERE name = ?1");
  if (!clear.ok()) return Error("prepare subject delete");
  clear.BindText(1, r.name);
  if (sqlite3_step(clear.get()) != SQLITE_DONE) return Error("clear subjects");
  for (size_t i = 0; i < r.subjects.size(); ++i) {
    Statement add(db_, "INSERT INTO function_subjects (name, position, subject) VALUES (?1, ?2, ?3)");
    if (!add.ok()) return Error("prepare subject insert");
    add.BindText(1, r.name);
    add.BindInt(2, static_cast<int64_t>(i));
    add.BindText(3, r.subjects[i]);
    if (sqlite3_step(add.get()) != SQLITE_DONE) return Error("store subjects");
  }
  return Status::OK();
}

Status FunctionStore::Remove(const std::string& name) {
  Statement st(db_, "DELETE FROM functions WHERE name = ?1");
  if (!st.ok()) return Error("prepare delete");
  st.BindText(1, name);
  if (sqlite3_step(st.get()) != SQLITE_DONE) return Error(("remove function " + name).c_str());
  if (sqlite3_changes(db_) == 0) return Status::NotFound("no function named " + name);
  return Status::OK();
}

StatusOr<std::vector<FunctionRecord>> FunctionStore::List() {
  Statement st(db_,
               "SELECT name, sha256, size_bytes, timeout_ms, idle_ms, max_workers, deployed_at,"
               " version, private FROM functions ORDER BY name");
  if (!st.ok()) return Error("prepare list");
  std::vector<FunctionRecord> out;
  int rc;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
    FunctionRecord r;
    r.name = st.Text(0);
    r.sha256 = st.Text(1);
    r.size_bytes = static_cast<uint64_t>(st.Int(2));
    r.timeout_ms = static_cast<uint64_t>(st.Int(3));
    r.idle_ms = static_cast<uint64_t>(st.Int(4));
    r.max_workers = static_cast<uint32_t>(st.Int(5));
    r.deployed_at = st.Text(6);
    r.version = st.Text(7);
    r.is_private = st.Int(8) != 0;
    out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return Error("list functions");
  Statement subjects(db_, "SELECT name, subject FROM function_subjects ORDER BY name, position");
  if (!subjects.ok()) return Error("prepare subject list");
  size_t i = 0;
  while ((rc = sqlite3_step(subjects.get())) == SQLITE_ROW) {
    const std::string name = subjects.Text(0);
    while (i < out.size() && out[i].name < name) ++i;
    if (i < out.size() && out[i].name == name) out[i].subjects.push_back(subjects.Text(1));
  }
  if (rc != SQLITE_DONE) return Error("list subjects");
  return out;
}

StatusOr<int> FunctionStore::CountArtifactUses(const std::string& sha256) {
  Statement st(db_, "SELECT COUNT(*) FROM functions WHERE sha256 = ?1");
  if (!st.ok()) return Error("prepare count");
  st.BindText(1, sha256);
  if (sqlite3_step(st.get()) != SQLITE_ROW) return Error("count artifact uses");
  return static_cast<int>(st.Int(0));
}

}  // namespace wisp::runtime
