#include "runtime/function_store.h"

#include <sqlite3.h>

#include "api.pb.h"
#include "runtime/base/sqlite_statement.h"
#include "runtime/invocation_block.h"

namespace wisp::runtime {
namespace {

// 1: functions. 2: functions.version and function_subjects, the subjects a
// function subscribes to. 3: functions.private. 4: immutable versions (their
// config a serialized api.FunctionConfig), the current version of each
// function, invocation records and log lines. 5: invocations.trace_id.
// 6: no index of invocations by function. 7: invocation records stored in
// blocks, one row per written batch, in records.db
// (runtime/invocation_block.h). 8: blocks may be in format 1, which a wisp
// of schema 7 would misread (and its retention rewrite wrongly); nothing
// else changes, so older binaries only need to be turned away.
constexpr int kSchemaVersion = 8;

constexpr const char* kSchema5Step =
    "ALTER TABLE invocations ADD COLUMN trace_id TEXT NOT NULL DEFAULT '';"
    "PRAGMA user_version = 5;";

// Keeping the index cost the record writer as much as the rows themselves
// (each record inserted in it, then deleted by retention): 2.7 us of CPU a
// record against 1.2 us without. A function's newest records are found by
// walking the table from its newest row, which stops once it has enough;
// only a function with few of the kept records costs a longer walk (about
// 10 ms over 100,000 records).
constexpr const char* kSchema6Step =
    "DROP INDEX IF EXISTS invocations_by_function;"
    "PRAGMA user_version = 6;";

constexpr const char* kSchema4Tables =
    "CREATE TABLE versions ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL,"
    "  version TEXT NOT NULL,"
    "  sha256 TEXT NOT NULL,"
    "  size_bytes INTEGER NOT NULL,"
    "  deployed_at TEXT NOT NULL,"
    "  config BLOB NOT NULL,"
    "  UNIQUE (name, version));"
    "CREATE TABLE current_versions ("
    "  name TEXT PRIMARY KEY,"
    "  seq INTEGER NOT NULL REFERENCES versions(seq));"
    "CREATE TABLE invocations ("
    "  seq INTEGER PRIMARY KEY,"
    "  id TEXT NOT NULL,"
    "  function TEXT NOT NULL,"
    "  version TEXT NOT NULL,"
    "  trigger TEXT NOT NULL,"
    "  started_at_us INTEGER NOT NULL,"
    "  duration_us INTEGER NOT NULL,"
    "  cold INTEGER NOT NULL,"
    "  status INTEGER NOT NULL,"
    "  error_code TEXT NOT NULL,"
    "  error TEXT NOT NULL);"
    "CREATE INDEX invocations_by_function ON invocations (function, seq);"
    "CREATE TABLE logs ("
    "  seq INTEGER PRIMARY KEY,"
    "  function TEXT NOT NULL,"
    "  invocation TEXT NOT NULL,"
    "  at_us INTEGER NOT NULL,"
    "  line TEXT NOT NULL);"
    "CREATE INDEX logs_by_function ON logs (function, seq);";

}  // namespace

void RecordToConfig(const FunctionRecord& r, api::FunctionConfig* out) {
  api::FunctionConfig& config = *out;
  config.set_timeout_ms(static_cast<uint32_t>(r.timeout_ms));
  config.set_idle_ms(static_cast<uint32_t>(r.idle_ms));
  config.set_max_workers(r.max_workers);
  config.set_private_(r.is_private);
  for (const std::string& subject : r.subjects) config.add_subjects(subject);
  for (const auto& [key, value] : r.env) (*config.mutable_env())[key] = value;
  config.set_durable(r.durable);
  config.set_max_attempts(r.max_attempts);
  config.set_backoff_ms(static_cast<uint32_t>(r.backoff_ms));
  config.set_max_backoff_ms(static_cast<uint32_t>(r.max_backoff_ms));
  config.set_dead_letter(r.dead_letter);
  config.set_every_ms(static_cast<uint32_t>(r.every_ms));
  config.set_cron(r.cron);
  config.set_memory_bytes(r.limits.memory_bytes);
  config.set_cpu_ms(r.limits.cpu_ms);
  config.set_open_files(r.limits.open_files);
  config.set_processes(r.limits.processes);
  config.set_max_request_bytes(r.limits.max_request_bytes);
  config.set_max_reply_bytes(r.limits.max_reply_bytes);
  config.set_max_events(r.limits.max_events);
}

void ConfigToRecord(const api::FunctionConfig& config, FunctionRecord* r) {
  r->timeout_ms = config.timeout_ms();
  r->idle_ms = config.idle_ms();
  r->max_workers = config.max_workers();
  r->is_private = config.private_();
  r->subjects.assign(config.subjects().begin(), config.subjects().end());
  r->env.clear();
  for (const auto& [key, value] : config.env()) r->env.emplace(key, value);
  // Versions stored before durable triggers existed keep the defaults.
  r->durable = config.durable();
  if (config.max_attempts() > 0) r->max_attempts = config.max_attempts();
  if (config.backoff_ms() > 0) r->backoff_ms = config.backoff_ms();
  if (config.max_backoff_ms() > 0) r->max_backoff_ms = config.max_backoff_ms();
  r->dead_letter = config.dead_letter();
  r->every_ms = config.every_ms();
  r->cron = config.cron();
  // Versions stored before limits existed keep the defaults.
  r->limits = FunctionLimits{};
  if (config.memory_bytes() > 0) r->limits.memory_bytes = config.memory_bytes();
  r->limits.cpu_ms = config.cpu_ms();
  if (config.open_files() > 0) r->limits.open_files = config.open_files();
  if (config.processes() > 0) r->limits.processes = config.processes();
  if (config.has_max_request_bytes()) r->limits.max_request_bytes = config.max_request_bytes();
  if (config.max_reply_bytes() > 0) r->limits.max_reply_bytes = config.max_reply_bytes();
  if (config.has_max_events()) r->limits.max_events = config.max_events();
}

namespace {

std::string EncodeConfig(const FunctionRecord& r) {
  api::FunctionConfig config;
  RecordToConfig(r, &config);
  return config.SerializeAsString();
}

bool DecodeConfig(const std::string& blob, FunctionRecord* r) {
  api::FunctionConfig config;
  if (!config.ParseFromString(blob)) return false;
  ConfigToRecord(config, r);
  return true;
}

using Statement = SqliteStatement;

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
  int64_t found = 0;
  {  // finalized before any migration: DROP TABLE waits for open statements
    Statement version(db_, "PRAGMA user_version");
    if (!version.ok() || sqlite3_step(version.get()) != SQLITE_ROW) {
      return Error("read schema version");
    }
    found = version.Int(0);
  }
  if (found > kSchemaVersion) {
    return Status::InvalidArgument(path + " was written by a newer wisp (schema " +
                                   std::to_string(found) + ", this wisp knows " +
                                   std::to_string(kSchemaVersion) + "); refusing to touch it");
  }
  if (found == 0) {
    WISP_RETURN_IF_ERROR(Exec(
        (std::string("BEGIN;") + kSchema4Tables + kSchema5Step + kSchema6Step + "COMMIT;")
            .c_str()));
    found = 6;
  }
  // Older databases, step by step (a schema 1 one was made by wisp 0.1).
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
  if (found < 4) WISP_RETURN_IF_ERROR(MigrateTo4());
  if (found < 5) {
    WISP_RETURN_IF_ERROR(Exec((std::string("BEGIN;") + kSchema5Step + "COMMIT;").c_str()));
  }
  if (found < 6) {
    WISP_RETURN_IF_ERROR(Exec((std::string("BEGIN;") + kSchema6Step + "COMMIT;").c_str()));
  }
  if (found < 7) WISP_RETURN_IF_ERROR(MigrateTo7(path));
  if (found < 8) WISP_RETURN_IF_ERROR(Exec("PRAGMA user_version = 8;"));
  return Exec("PRAGMA foreign_keys = ON;");
}

// The rows of table invocations become blocks of up to kMaxBlockRecords in
// records.db, each record keeping its seq (rows deleted in between leave no
// gap). A crash before wisp.db's commit leaves it at schema 6 and maybe
// blocks in records.db: the next migration clears them first.
Status FunctionStore::MigrateTo7(const std::string& path) {
  WISP_RETURN_IF_ERROR(AttachRecordsDb(db_, path));
  // Two transactions, records.db's first and on disk before wisp.db's:
  // sqlite does not commit two WAL databases atomically, and wisp.db at
  // schema 7 with the blocks lost would lose the records for good.
  Status s = Exec("PRAGMA records.synchronous = FULL");
  if (s.ok()) s = MoveInvocationsToRecordsDb();
  if (s.ok()) s = Exec("BEGIN; DROP TABLE invocations; PRAGMA user_version = 7; COMMIT;");
  if (!s.ok() && !sqlite3_get_autocommit(db_)) (void)Exec("ROLLBACK");
  Status detached = Exec("DETACH DATABASE records");
  if (s.ok()) s = detached;
  return s;
}

Status FunctionStore::MoveInvocationsToRecordsDb() {
  WISP_RETURN_IF_ERROR(Exec("BEGIN"));
  auto fail = [this](Status s) {
    (void)Exec("ROLLBACK");
    return s;
  };
  Status s = Exec("DELETE FROM records.invocation_blocks");
  if (!s.ok()) return fail(s);
  {
    Statement rows(db_,
                   "SELECT seq, id, function, version, trigger, started_at_us, duration_us, cold,"
                   " status, error_code, error, trace_id FROM invocations ORDER BY seq");
    Statement insert(db_, kInsertInvocationBlockSql);
    if (!rows.ok() || !insert.ok()) return fail(Error("migrate invocations to blocks"));
    InvocationBlockWriter block;
    int64_t first_seq = 0;
    auto write = [&]() -> Status {
      if (block.count() == 0) return Status::OK();
      BindInvocationBlock(insert.get(), first_seq, block);
      const int rc = insert.Step();
      sqlite3_reset(insert.get());
      if (rc != SQLITE_DONE) return Error("write an invocation block");
      block.Clear();
      return Status::OK();
    };
    int rc;
    while ((rc = rows.Step()) == SQLITE_ROW) {
      // Seqs must stay consecutive within a block: a gap starts a new one.
      if (block.count() > 0 &&
          (block.count() == kMaxBlockRecords ||
           rows.Int(0) != first_seq + static_cast<int64_t>(block.count()))) {
        s = write();
        if (!s.ok()) return fail(s);
      }
      if (block.count() == 0) first_seq = rows.Int(0);
      InvocationRecord r;
      r.id = rows.Text(1);
      r.function = rows.Text(2);
      r.version = rows.Text(3);
      r.trigger = rows.Text(4);
      r.started_at_us = rows.Int(5);
      r.duration_us = rows.Int(6);
      r.cold = rows.Int(7) != 0;
      r.status = static_cast<int>(rows.Int(8));
      r.error_code = rows.Text(9);
      r.error = rows.Text(10);
      r.trace_id.assign(rows.Text(11));
      block.Add(r);
    }
    if (rc != SQLITE_DONE) return fail(Error("read invocations to migrate"));
    s = write();
    if (!s.ok()) return fail(s);
  }
  return Exec("COMMIT");
}

// Each schema-3 function becomes one version, current, with its config.
Status FunctionStore::MigrateTo4() {
  WISP_RETURN_IF_ERROR(Exec("BEGIN"));
  auto fail = [this](Status s) {
    (void)Exec("ROLLBACK");
    return s;
  };
  Status s = Exec(kSchema4Tables);
  if (!s.ok()) return fail(s);
  std::vector<FunctionRecord> old;
  {
    Statement st(db_,
                 "SELECT name, sha256, size_bytes, timeout_ms, idle_ms, max_workers, deployed_at,"
                 " version, private FROM functions ORDER BY name");
    if (!st.ok()) return fail(Error("read schema 3 functions"));
    while (sqlite3_step(st.get()) == SQLITE_ROW) {
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
      old.push_back(std::move(r));
    }
    Statement subjects(db_, "SELECT subject FROM function_subjects WHERE name = ?1 ORDER BY position");
    if (!subjects.ok()) return fail(Error("read schema 3 subjects"));
    for (FunctionRecord& r : old) {
      sqlite3_reset(subjects.get());
      subjects.BindText(1, r.name);
      while (sqlite3_step(subjects.get()) == SQLITE_ROW) r.subjects.push_back(subjects.Text(0));
    }
  }
  for (const FunctionRecord& r : old) {
    s = PutLocked(r);
    if (!s.ok()) return fail(s.WithContext("migrate " + r.name));
  }
  s = Exec("DROP TABLE function_subjects; DROP TABLE functions; PRAGMA user_version = 4;");
  if (!s.ok()) return fail(s);
  return Exec("COMMIT");
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
               "INSERT INTO versions (name, version, sha256, size_bytes, deployed_at, config)"
               " VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  if (!st.ok()) return Error("prepare insert");
  st.BindText(1, r.name);
  st.BindText(2, r.version);
  st.BindText(3, r.sha256);
  st.BindInt(4, static_cast<int64_t>(r.size_bytes));
  st.BindText(5, r.deployed_at);
  st.BindBlob(6, EncodeConfig(r));
  const int rc = sqlite3_step(st.get());
  if (rc == SQLITE_CONSTRAINT) {
    return Status::AlreadyExists(r.name + " already has a version " + r.version +
                                 "; versions are immutable, deploy under a new one");
  }
  if (rc != SQLITE_DONE) return Error(("store function " + r.name).c_str());
  Statement current(db_, "INSERT OR REPLACE INTO current_versions (name, seq) VALUES (?1, ?2)");
  if (!current.ok()) return Error("prepare current");
  current.BindText(1, r.name);
  current.BindInt(2, sqlite3_last_insert_rowid(db_));
  if (sqlite3_step(current.get()) != SQLITE_DONE) return Error("store current version");
  return Status::OK();
}

Status FunctionStore::SetCurrent(const std::string& name, const std::string& version) {
  Statement st(db_,
               "INSERT OR REPLACE INTO current_versions (name, seq)"
               " SELECT name, seq FROM versions WHERE name = ?1 AND version = ?2");
  if (!st.ok()) return Error("prepare set current");
  st.BindText(1, name);
  st.BindText(2, version);
  if (sqlite3_step(st.get()) != SQLITE_DONE) return Error("set current version");
  if (sqlite3_changes(db_) == 0) return Status::NotFound(name + " has no version " + version);
  return Status::OK();
}

Status FunctionStore::Remove(const std::string& name) {
  WISP_RETURN_IF_ERROR(Exec("BEGIN"));
  Statement current(db_, "DELETE FROM current_versions WHERE name = ?1");
  Statement versions(db_, "DELETE FROM versions WHERE name = ?1");
  if (!current.ok() || !versions.ok()) {
    (void)Exec("ROLLBACK");
    return Error("prepare delete");
  }
  current.BindText(1, name);
  versions.BindText(1, name);
  if (sqlite3_step(current.get()) != SQLITE_DONE) {
    Status s = Error(("remove function " + name).c_str());
    (void)Exec("ROLLBACK");
    return s;
  }
  const bool existed = sqlite3_changes(db_) > 0;
  if (sqlite3_step(versions.get()) != SQLITE_DONE) {
    Status s = Error(("remove versions of " + name).c_str());
    (void)Exec("ROLLBACK");
    return s;
  }
  WISP_RETURN_IF_ERROR(Exec("COMMIT"));
  if (!existed) return Status::NotFound("no function named " + name);
  return Status::OK();
}

StatusOr<std::vector<FunctionRecord>> FunctionStore::Select(const std::string& where,
                                                            const std::string& name) {
  Statement st(db_, ("SELECT v.name, v.version, v.sha256, v.size_bytes, v.deployed_at, v.config"
                     " FROM versions v " + where).c_str());
  if (!st.ok()) return Error("prepare select");
  if (!name.empty()) st.BindText(1, name);
  std::vector<FunctionRecord> out;
  int rc;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
    FunctionRecord r;
    r.name = st.Text(0);
    r.version = st.Text(1);
    r.sha256 = st.Text(2);
    r.size_bytes = static_cast<uint64_t>(st.Int(3));
    r.deployed_at = st.Text(4);
    if (!DecodeConfig(st.Blob(5), &r)) {
      return Status::Corruption("the stored config of " + r.name + " " + r.version +
                                " cannot be read");
    }
    out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return Error("select versions");
  return out;
}

StatusOr<std::vector<FunctionRecord>> FunctionStore::List() {
  return Select("JOIN current_versions c ON c.seq = v.seq ORDER BY v.name", "");
}

StatusOr<std::vector<FunctionRecord>> FunctionStore::Versions(const std::string& name) {
  return Select("WHERE v.name = ?1 ORDER BY v.seq", name);
}

StatusOr<std::vector<std::string>> FunctionStore::PruneVersions(const std::string& name,
                                                                size_t keep) {
  Statement st(db_,
               "SELECT seq, sha256 FROM versions WHERE name = ?1"
               " AND seq NOT IN (SELECT seq FROM current_versions WHERE name = ?1)"
               " ORDER BY seq DESC");
  if (!st.ok()) return Error("prepare prune");
  st.BindText(1, name);
  std::vector<std::pair<int64_t, std::string>> old;
  size_t seen = 1;  // the current version
  while (sqlite3_step(st.get()) == SQLITE_ROW) {
    if (++seen > keep) old.emplace_back(st.Int(0), st.Text(1));
  }
  std::vector<std::string> artifacts;
  for (const auto& [seq, sha256] : old) {
    Statement del(db_, "DELETE FROM versions WHERE seq = ?1");
    if (!del.ok()) return Error("prepare prune delete");
    del.BindInt(1, seq);
    if (sqlite3_step(del.get()) != SQLITE_DONE) return Error("prune versions");
    artifacts.push_back(sha256);
  }
  return artifacts;
}

StatusOr<int> FunctionStore::CountArtifactUses(const std::string& sha256) {
  Statement st(db_, "SELECT COUNT(*) FROM versions WHERE sha256 = ?1");
  if (!st.ok()) return Error("prepare count");
  st.BindText(1, sha256);
  if (sqlite3_step(st.get()) != SQLITE_ROW) return Error("count artifact uses");
  return static_cast<int>(st.Int(0));
}

}  // namespace wisp::runtime
