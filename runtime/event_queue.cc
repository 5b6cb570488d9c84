#include "runtime/event_queue.h"

#include <sqlite3.h>

#include <cstdio>

#include "runtime/base/sqlite_statement.h"
#include "worker.pb.h"

namespace wisp::runtime {
namespace {

constexpr int kSchemaVersion = 1;
constexpr uint64_t kPruneEvery = 1000;  // writes between prunes of `seen`
constexpr int kMaxCommitRounds = 8;     // commits per prepare callback

constexpr const char* kSchema =
    "CREATE TABLE IF NOT EXISTS queue ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  function TEXT NOT NULL,"
    "  event BLOB NOT NULL,"  // a serialized proto::Event
    "  deliveries INTEGER NOT NULL DEFAULT 0,"
    "  leased INTEGER NOT NULL DEFAULT 0,"
    "  next_at_ms INTEGER NOT NULL,"
    "  enqueued_at_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS queue_waiting ON queue (function, leased, id);"
    "CREATE TABLE IF NOT EXISTS dead_letters ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  function TEXT NOT NULL,"
    "  event BLOB NOT NULL,"
    "  attempts INTEGER NOT NULL,"
    "  error_code TEXT NOT NULL,"
    "  error TEXT NOT NULL,"
    "  at_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS dead_letters_function ON dead_letters (function, id);"
    "CREATE TABLE IF NOT EXISTS seen ("
    "  id TEXT PRIMARY KEY,"
    "  at_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS seen_at ON seen (at_ms);";

std::string EncodeEvent(const triggers::BrokerMessage& message) {
  proto::Event event;
  event.set_subject(message.subject);
  event.set_data(message.data);
  for (const auto& [name, value] : message.headers) {
    proto::Header* h = event.add_headers();
    h->set_name(name);
    h->set_value(value);
  }
  return event.SerializeAsString();
}

bool DecodeEvent(const std::string& blob, triggers::BrokerMessage* message) {
  proto::Event event;
  if (!event.ParseFromString(blob)) return false;
  message->subject = std::move(*event.mutable_subject());
  message->data = std::move(*event.mutable_data());
  message->headers.clear();
  for (proto::Header& h : *event.mutable_headers()) {
    message->headers.emplace_back(std::move(*h.mutable_name()), std::move(*h.mutable_value()));
  }
  return true;
}

}  // namespace

EventQueue::EventQueue(uv_loop_t* loop) : loop_(loop), prepare_(new uv_prepare_t) {
  uv_prepare_init(loop_, prepare_);
  prepare_->data = this;
}

EventQueue::~EventQueue() { WISP_CHECK(prepare_ == nullptr && db_ == nullptr); }

Status EventQueue::Error(const char* what) const {
  return Status::IOError(std::string("events database: ") + what + ": " + sqlite3_errmsg(db_));
}

Status EventQueue::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    Status s = Status::IOError(std::string("events database: ") + (err != nullptr ? err : "error"));
    sqlite3_free(err);
    return s;
  }
  return Status::OK();
}

Status EventQueue::RunCached(const char* sql) {
  SqliteStatement st(statements_, sql);
  if (!st.ok() || st.Step() != SQLITE_DONE) {
    return Status::IOError(std::string("events database: ") + sqlite3_errmsg(db_));
  }
  return Status::OK();
}

Status EventQueue::Open(const std::string& path) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  if (db_ != nullptr) return Status::InvalidArgument("the event queue is open already");
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                      nullptr) != SQLITE_OK) {
    Status s = Error(("open " + path).c_str());
    sqlite3_close_v2(db_);
    db_ = nullptr;
    return s;
  }
  sqlite3_busy_timeout(db_, 5000);
  Status s = Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
  int version = 0;
  if (s.ok()) {
    SqliteStatement st(db_, "PRAGMA user_version");
    if (st.ok() && st.Step() == SQLITE_ROW) version = static_cast<int>(st.Int(0));
    if (version > kSchemaVersion) {
      s = Status::InvalidArgument(path + " was written by a newer wisp (events schema " +
                                  std::to_string(version) + ", this wisp knows " +
                                  std::to_string(kSchemaVersion) + ")");
    }
  }
  if (s.ok() && version < kSchemaVersion) {
    s = Exec((std::string("BEGIN;") + kSchema + "PRAGMA user_version = " +
              std::to_string(kSchemaVersion) + "; COMMIT;")
                 .c_str());
  }
  if (s.ok()) s = checkpointer_.Start(db_, path);
  if (s.ok()) {
    SqliteStatement st(db_, "SELECT COUNT(*) FROM queue WHERE leased = 1");
    if (st.ok() && st.Step() == SQLITE_ROW) redelivered_ = static_cast<uint64_t>(st.Int(0));
    s = Exec("UPDATE queue SET leased = 0 WHERE leased = 1");
  }
  if (!s.ok()) {
    checkpointer_.Stop();
    statements_.Clear();
    sqlite3_close_v2(db_);
    db_ = nullptr;
  }
  return s;
}

Status EventQueue::BeginWrite() {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  if (db_ == nullptr) return Status::Unavailable("the event queue is closed");
  if (in_group_) return Status::OK();
  WISP_RETURN_IF_ERROR(RunCached("BEGIN IMMEDIATE"));
  in_group_ = true;
  uv_prepare_start(prepare_, PrepareCb);
  return Status::OK();
}

void EventQueue::PrepareCb(uv_prepare_t* handle) {
  auto* self = static_cast<EventQueue*>(handle->data);
  // What runs after a commit may write again: commit that too before the
  // loop waits for I/O.
  for (int round = 0; round < kMaxCommitRounds && self->in_group_; ++round) self->Commit();
  if (!self->in_group_) uv_prepare_stop(handle);
}

void EventQueue::CommitNow() {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  if (in_group_) Commit();
}

void EventQueue::Commit() {
  Status s = RunCached("COMMIT");
  if (!s.ok()) {
    std::fprintf(stderr, "wisp: %s; rolled back\n", s.ToString().c_str());
    (void)Exec("ROLLBACK");
  }
  in_group_ = false;
  std::vector<std::function<void(Status)>> callbacks;
  callbacks.swap(after_commit_);
  for (auto& done : callbacks) done(s);
}

void EventQueue::AfterCommit(std::function<void(Status)> done) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  if (!in_group_) return done(Status::OK());
  after_commit_.push_back(std::move(done));
}

StatusOr<bool> EventQueue::SeenBefore(const std::string& id, int64_t now_ms) {
  if (id.empty()) return false;
  WISP_RETURN_IF_ERROR(BeginWrite());
  if (++writes_since_prune_ >= kPruneEvery) {
    writes_since_prune_ = 0;
    SqliteStatement prune(statements_, "DELETE FROM seen WHERE at_ms < ?1");
    prune.BindInt(1, now_ms - kDedupWindowMs);
    if (!prune.ok() || prune.Step() != SQLITE_DONE) return Error("prune seen ids");
  }
  SqliteStatement st(statements_,
                     "INSERT INTO seen (id, at_ms) VALUES (?1, ?2) ON CONFLICT (id) DO UPDATE "
                     "SET at_ms = excluded.at_ms WHERE at_ms < ?3 RETURNING at_ms");
  st.BindText(1, id);
  st.BindInt(2, now_ms);
  st.BindInt(3, now_ms - kDedupWindowMs);
  if (!st.ok()) return Error("record a seen id");
  const int rc = st.Step();
  if (rc == SQLITE_ROW) return false;  // new, or seen before the window
  if (rc == SQLITE_DONE) return true;  // the conflict's WHERE kept the old row
  return Error("record a seen id");
}

Status EventQueue::Enqueue(const std::string& function, const triggers::BrokerMessage& message,
                           int64_t now_ms) {
  WISP_RETURN_IF_ERROR(BeginWrite());
  SqliteStatement st(statements_,
                     "INSERT INTO queue (function, event, next_at_ms, enqueued_at_ms) "
                     "VALUES (?1, ?2, ?3, ?3)");
  st.BindText(1, function);
  st.BindBlob(2, EncodeEvent(message));
  st.BindInt(3, now_ms);
  if (!st.ok() || st.Step() != SQLITE_DONE) return Error("enqueue an event");
  return Status::OK();
}

StatusOr<std::vector<QueuedEvent>> EventQueue::Due(const std::string& function, int64_t now_ms,
                                                   size_t limit) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  if (db_ == nullptr) return Status::Unavailable("the event queue is closed");
  SqliteStatement st(statements_,
                     "SELECT id, event, deliveries FROM queue WHERE function = ?1 AND leased = 0 "
                     "AND next_at_ms <= ?2 ORDER BY id LIMIT ?3");
  st.BindText(1, function);
  st.BindInt(2, now_ms);
  st.BindInt(3, static_cast<int64_t>(limit));
  if (!st.ok()) return Error("read due events");
  std::vector<QueuedEvent> events;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    QueuedEvent e;
    e.id = st.Int(0);
    e.function = function;
    e.deliveries = static_cast<uint32_t>(st.Int(2));
    if (!DecodeEvent(st.Blob(1), &e.message)) {
      return Status::Corruption("events database: queued event " + std::to_string(e.id) +
                                " cannot be decoded");
    }
    events.push_back(std::move(e));
  }
  if (rc != SQLITE_DONE) return Error("read due events");
  return events;
}

StatusOr<int64_t> EventQueue::NextDue(const std::string& function) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  if (db_ == nullptr) return Status::Unavailable("the event queue is closed");
  SqliteStatement st(statements_,
                     "SELECT MIN(next_at_ms) FROM queue WHERE function = ?1 AND leased = 0");
  st.BindText(1, function);
  if (!st.ok() || st.Step() != SQLITE_ROW) return Error("read the next due time");
  if (sqlite3_column_type(st.get(), 0) == SQLITE_NULL) return int64_t{-1};
  return st.Int(0);
}

Status EventQueue::MarkDelivered(int64_t id) {
  WISP_RETURN_IF_ERROR(BeginWrite());
  SqliteStatement st(statements_, "UPDATE queue SET leased = 1, deliveries = deliveries + 1 WHERE id = ?1");
  st.BindInt(1, id);
  if (!st.ok() || st.Step() != SQLITE_DONE) return Error("lease an event");
  return Status::OK();
}

Status EventQueue::Ack(int64_t id) {
  WISP_RETURN_IF_ERROR(BeginWrite());
  SqliteStatement st(statements_, "DELETE FROM queue WHERE id = ?1");
  st.BindInt(1, id);
  if (!st.ok() || st.Step() != SQLITE_DONE) return Error("acknowledge an event");
  return Status::OK();
}

Status EventQueue::Retry(int64_t id, int64_t next_at_ms) {
  WISP_RETURN_IF_ERROR(BeginWrite());
  SqliteStatement st(statements_, "UPDATE queue SET leased = 0, next_at_ms = ?2 WHERE id = ?1");
  st.BindInt(1, id);
  st.BindInt(2, next_at_ms);
  if (!st.ok() || st.Step() != SQLITE_DONE) return Error("schedule a retry");
  return Status::OK();
}

Status EventQueue::MoveToDeadLetters(int64_t id, uint32_t attempts, const std::string& error_code,
                                     const std::string& error, int64_t now_ms) {
  WISP_RETURN_IF_ERROR(BeginWrite());
  SqliteStatement st(statements_,
                     "INSERT INTO dead_letters (function, event, attempts, error_code, error, at_ms) "
                     "SELECT function, event, ?2, ?3, ?4, ?5 FROM queue WHERE id = ?1");
  st.BindInt(1, id);
  st.BindInt(2, attempts);
  st.BindText(3, error_code);
  st.BindText(4, error);
  st.BindInt(5, now_ms);
  if (!st.ok() || st.Step() != SQLITE_DONE) return Error("dead-letter an event");
  return Ack(id);
}

Status EventQueue::RemoveDeadLetter(const std::string& function, int64_t id) {
  WISP_RETURN_IF_ERROR(BeginWrite());
  SqliteStatement st(statements_, "DELETE FROM dead_letters WHERE function = ?1 AND id = ?2");
  st.BindText(1, function);
  st.BindInt(2, id);
  if (!st.ok() || st.Step() != SQLITE_DONE) return Error("remove a dead letter");
  return Status::OK();
}

StatusOr<std::vector<DeadLetter>> EventQueue::DeadLetters(const std::string& function,
                                                          size_t limit) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  if (db_ == nullptr) return Status::Unavailable("the event queue is closed");
  SqliteStatement st(statements_,
                     "SELECT id, event, attempts, error_code, error, at_ms FROM dead_letters "
                     "WHERE function = ?1 ORDER BY id LIMIT ?2");
  st.BindText(1, function);
  st.BindInt(2, static_cast<int64_t>(limit));
  if (!st.ok()) return Error("read dead letters");
  std::vector<DeadLetter> letters;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    DeadLetter d;
    d.id = st.Int(0);
    d.function = function;
    if (!DecodeEvent(st.Blob(1), &d.message)) {
      return Status::Corruption("events database: dead letter " + std::to_string(d.id) +
                                " cannot be decoded");
    }
    d.attempts = static_cast<uint32_t>(st.Int(2));
    d.error_code = st.Text(3);
    d.error = st.Text(4);
    d.at_ms = st.Int(5);
    letters.push_back(std::move(d));
  }
  if (rc != SQLITE_DONE) return Error("read dead letters");
  return letters;
}

StatusOr<size_t> EventQueue::Replay(const std::string& function, int64_t id, int64_t now_ms) {
  WISP_RETURN_IF_ERROR(BeginWrite());
  SqliteStatement copy(statements_,
                       "INSERT INTO queue (function, event, next_at_ms, enqueued_at_ms) "
                       "SELECT function, event, ?3, ?3 FROM dead_letters "
                       "WHERE function = ?1 AND (?2 = 0 OR id = ?2) ORDER BY id");
  copy.BindText(1, function);
  copy.BindInt(2, id);
  copy.BindInt(3, now_ms);
  if (!copy.ok() || copy.Step() != SQLITE_DONE) return Error("replay dead letters");
  const size_t replayed = static_cast<size_t>(sqlite3_changes(db_));
  if (id > 0 && replayed == 0) {
    return Status::NotFound("function " + function + " has no dead letter " + std::to_string(id));
  }
  SqliteStatement remove(statements_, "DELETE FROM dead_letters WHERE function = ?1 AND (?2 = 0 OR id = ?2)");
  remove.BindText(1, function);
  remove.BindInt(2, id);
  if (!remove.ok() || remove.Step() != SQLITE_DONE) return Error("replay dead letters");
  return replayed;
}

StatusOr<size_t> EventQueue::RemoveFunction(const std::string& function) {
  WISP_RETURN_IF_ERROR(BeginWrite());
  SqliteStatement queue(statements_, "DELETE FROM queue WHERE function = ?1");
  queue.BindText(1, function);
  if (!queue.ok() || queue.Step() != SQLITE_DONE) return Error("remove waiting events");
  const size_t removed = static_cast<size_t>(sqlite3_changes(db_));
  SqliteStatement letters(statements_, "DELETE FROM dead_letters WHERE function = ?1");
  letters.BindText(1, function);
  if (!letters.ok() || letters.Step() != SQLITE_DONE) return Error("remove dead letters");
  return removed;
}

StatusOr<size_t> EventQueue::Depth(const std::string& function) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  if (db_ == nullptr) return Status::Unavailable("the event queue is closed");
  SqliteStatement st(statements_, function.empty()
                              ? "SELECT COUNT(*) FROM queue"
                              : "SELECT COUNT(*) FROM queue WHERE function = ?1");
  if (!function.empty()) st.BindText(1, function);
  if (!st.ok() || st.Step() != SQLITE_ROW) return Error("count waiting events");
  return static_cast<size_t>(st.Int(0));
}

StatusOr<size_t> EventQueue::DeadLetterCount(const std::string& function) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  if (db_ == nullptr) return Status::Unavailable("the event queue is closed");
  SqliteStatement st(statements_, "SELECT COUNT(*) FROM dead_letters WHERE function = ?1");
  st.BindText(1, function);
  if (!st.ok() || st.Step() != SQLITE_ROW) return Error("count dead letters");
  return static_cast<size_t>(st.Int(0));
}

void EventQueue::Close() {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  if (in_group_) Commit();
  if (db_ != nullptr) {
    checkpointer_.Stop();
    statements_.Clear();
    sqlite3_close_v2(db_);
    db_ = nullptr;
  }
  if (prepare_ == nullptr) return;
  uv_prepare_stop(prepare_);
  uv_close(reinterpret_cast<uv_handle_t*>(prepare_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_prepare_t*>(h); });
  prepare_ = nullptr;
}

}  // namespace wisp::runtime
