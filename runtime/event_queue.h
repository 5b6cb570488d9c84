// The embedded durable event queue: events waiting for durable functions,
// their dead letters, and the ids seen lately (for deduplication), in their
// own sqlite database (<data dir>/events.db, WAL, synchronous=NORMAL: a
// committed event survives the controller's crash).
//
// Group commit: every write joins the current group, a transaction opened
// by the first write and committed once per loop iteration (a uv_prepare
// callback, just before the loop waits for I/O). Work that must not happen
// before the writes are durable (a 202 to a publisher, the reply of a
// function whose emitted events were queued) is passed to AfterCommit and
// runs after the commit, with its status.
//
// Checkpoints: the log is copied into the database file by a
// WalCheckpointer's thread, never by a commit on the loop.
//
// Tables: queue (one row per event and function; deliveries counts the
// times it was handed to the function, leased marks those in flight),
// dead_letters, seen (ce-id -> when, for kDedupWindowMs).
//
// Ownership: owns its connection and its prepare handle (freed in its close
// callback). Threading: the loop thread only. Failure: a write or read
// returns IOError with the sqlite message; a commit that fails is rolled
// back and its AfterCommit callbacks get the error.
#ifndef WISP_RUNTIME_EVENT_QUEUE_H_
#define WISP_RUNTIME_EVENT_QUEUE_H_

#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/base/loop_thread.h"
#include "runtime/base/sqlite_statement.h"
#include "runtime/base/status.h"
#include "runtime/wal_checkpointer.h"
#include "triggers/broker.h"

struct sqlite3;

namespace wisp::runtime {

struct QueuedEvent {
  int64_t id = 0;
  std::string function;
  triggers::BrokerMessage message;  // subject, headers, data (no reply)
  uint32_t deliveries = 0;          // times handed to the function before
};

struct DeadLetter {
  int64_t id = 0;
  std::string function;
  triggers::BrokerMessage message;
  uint32_t attempts = 0;
  std::string error_code, error;
  int64_t at_ms = 0;  // unix time it was dead-lettered
};

class EventQueue {
 public:
  static constexpr int64_t kDedupWindowMs = 2 * 60 * 1000;  // NATS's default

  explicit EventQueue(uv_loop_t* loop);
  ~EventQueue();  // Close first
  EventQueue(const EventQueue&) = delete;
  EventQueue& operator=(const EventQueue&) = delete;

  // Opens (creating) the database at path. Events that were in flight when
  // the last controller stopped become deliverable again; their number is
  // redelivered(). IOError if it cannot be opened, InvalidArgument if a
  // newer wisp wrote it.
  [[nodiscard]] Status Open(const std::string& path);

  // Whether id was recorded within kDedupWindowMs before now_ms; if not, it
  // is recorded now. Empty ids are never duplicates.
  [[nodiscard]] StatusOr<bool> SeenBefore(const std::string& id, int64_t now_ms);
  // Appends message for function, deliverable at once.
  [[nodiscard]] Status Enqueue(const std::string& function, const triggers::BrokerMessage& message,
                               int64_t now_ms);
  // The oldest deliverable events of function (not leased, due by now_ms),
  // at most limit, oldest first.
  [[nodiscard]] StatusOr<std::vector<QueuedEvent>> Due(const std::string& function, int64_t now_ms,
                                                       size_t limit);
  // When function's next waiting event (not leased) is due; -1 if none waits.
  [[nodiscard]] StatusOr<int64_t> NextDue(const std::string& function);
  // Marks id handed out: leased, deliveries + 1.
  [[nodiscard]] Status MarkDelivered(int64_t id);
  // The event is done: removes it.
  [[nodiscard]] Status Ack(int64_t id);
  // The attempt failed: deliverable again at next_at_ms.
  [[nodiscard]] Status Retry(int64_t id, int64_t next_at_ms);
  // Moves id to the dead letters with its attempts and error.
  [[nodiscard]] Status MoveToDeadLetters(int64_t id, uint32_t attempts, const std::string& error_code,
                                         const std::string& error, int64_t now_ms);
  // Deletes function's dead letter id (moved elsewhere: JetStream); OK when
  // there is none.
  [[nodiscard]] Status RemoveDeadLetter(const std::string& function, int64_t id);
  // function's dead letters, oldest first, at most limit.
  [[nodiscard]] StatusOr<std::vector<DeadLetter>> DeadLetters(const std::string& function,
                                                              size_t limit);
  // Puts function's dead letters back in its queue as new events (all of
  // them, or only id when id > 0); returns how many. NotFound for an id
  // that is not one of function's dead letters.
  [[nodiscard]] StatusOr<size_t> Replay(const std::string& function, int64_t id, int64_t now_ms);
  // Deletes function's waiting events and dead letters; returns how many
  // waiting events went.
  [[nodiscard]] StatusOr<size_t> RemoveFunction(const std::string& function);
  // Waiting events (leased or not) of function; all functions when empty.
  [[nodiscard]] StatusOr<size_t> Depth(const std::string& function);
  // Dead letters of function.
  [[nodiscard]] StatusOr<size_t> DeadLetterCount(const std::string& function);

  // Runs done after the current group commits, or at once (OK) when no
  // write is waiting.
  void AfterCommit(std::function<void(Status)> done);
  // Commits the current group now (the prepare callback does it otherwise).
  void CommitNow();

  // Commits what waits, closes the connection and the prepare handle.
  void Close();

  uint64_t redelivered() const { return redelivered_; }
  bool is_open() const { return db_ != nullptr; }

 private:
  Status Exec(const char* sql);
  // One statement without rows, prepared once (statements_).
  Status RunCached(const char* sql);
  Status Error(const char* what) const;
  Status BeginWrite();
  void Commit();
  static void PrepareCb(uv_prepare_t* handle);

  uv_loop_t* loop_;
  LoopThread loop_thread_;
  sqlite3* db_ = nullptr;
  SqliteStatementCache statements_{&db_};  // cleared before db_ closes
  uv_prepare_t* prepare_;  // owned; freed in its close callback
  bool in_group_ = false;
  std::vector<std::function<void(Status)>> after_commit_;
  uint64_t redelivered_ = 0;
  uint64_t writes_since_prune_ = 0;
  WalCheckpointer checkpointer_;  // stopped before db_ closes
};

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_EVENT_QUEUE_H_
