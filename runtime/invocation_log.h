// The invocation records and function log lines, kept in the controller's
// sqlite databases (table `logs` of <data dir>/wisp.db, whose schema
// FunctionStore::Open creates, and table `invocation_blocks` of
// <data dir>/records.db, one row per written batch: runtime/invocation_block.h)
// without slowing the hot path: Add and
// AddLog only append to an in-memory batch; one writer thread commits the
// batches, one transaction each (every ~100 ms or when 4096 wait), and applies
// retention at Open and about every 10 s.
//
// Ownership: the log owns its two sqlite connections (the writer's and a
// read connection) and its writer thread; the destructor closes them.
// Threading: Add, AddLog, Flush, Invocations, Logs, ApplyRetention, dropped
// and written may be called from any thread at the same time. Open and Close
// belong to the owner: call each from one thread, never concurrently with
// each other or with the destructor.
// Failure: Add and AddLog never block on I/O and never fail. A record added
// while the log is not open, or while more than max_pending wait (the disk
// stalled), is dropped and counted (dropped()). A batch whose commit fails is
// rolled back, counted as dropped, and reported as one line on stderr with
// the sqlite message; the writer keeps going. Nothing here crashes on a
// sqlite error.
#ifndef WISP_RUNTIME_INVOCATION_LOG_H_
#define WISP_RUNTIME_INVOCATION_LOG_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/base/status.h"
#include "runtime/invocation_block.h"
#include "runtime/invocation_record.h"

struct sqlite3;
struct sqlite3_stmt;

namespace wisp::runtime {

inline constexpr size_t kMaxRecordedErrorBytes = 1024;

struct LogLine {
  int64_t seq = 0;  // filled when read back
  std::string function;
  std::string invocation;  // invocation id, empty when not known
  int64_t at_us = 0;       // unix time, microseconds
  std::string line;        // without the trailing newline
};

// The newest row of each table is always kept, so that seqs never repeat
// (sqlite would reuse them once a table is empty) and a follower's after_seq
// stays meaningful.
struct RetentionOptions {
  size_t max_invocations = 100000;  // newest kept, over all functions
  size_t max_log_lines = 100000;
  int64_t max_age_s = 7 * 24 * 3600;  // older rows are deleted; <= 0: no age limit
};

class InvocationLog {
 public:
  static constexpr size_t kDefaultMaxPending = 200000;

  InvocationLog() : InvocationLog(kDefaultMaxPending) {}
  // max_pending: how many records and lines may wait for the writer before
  // new ones are dropped.
  explicit InvocationLog(size_t max_pending);
  ~InvocationLog();  // Close()
  InvocationLog(const InvocationLog&) = delete;
  InvocationLog& operator=(const InvocationLog&) = delete;

  // Opens the writer's and the read connection to db_path (busy timeout 5 s,
  // synchronous=NORMAL under WAL) with records.db beside it attached (made
  // if missing), applies retention, and starts the writer thread. IOError
  // if a database cannot be opened or wisp.db has no logs table (open a
  // FunctionStore on it first); InvalidArgument if this log
  // was opened before. On failure nothing is left running.
  Status Open(const std::string& db_path, RetentionOptions retention);

  // Queue one record or line for the writer; no I/O, takes a mutex briefly.
  // A record's error keeps its first kMaxRecordedErrorBytes (cut on a UTF-8
  // boundary, its full length noted): a function's own error text can be
  // megabytes, and a block of such records could pass sqlite's size limit
  // and lose the whole batch.
  void Add(InvocationRecord record);
  void AddLog(LogLine line);

  // Blocks until everything added before the call is committed or has
  // failed. IOError with the sqlite message if a batch failed meanwhile; OK
  // at once when the log is not running (nothing can be waiting).
  Status Flush();

  // Committed records, newest first; function empty = all functions. limit
  // is clamped to [1, 1000]. Uses the read connection on the caller's
  // thread. Unavailable if the log is not open; IOError on a sqlite error.
  // trace_id non-empty: only that trace's records (a scan, not an index).
  StatusOr<std::vector<InvocationRecord>> Invocations(const std::string& function, size_t limit,
                                                      const std::string& trace_id = "");
  // Committed lines of one function with seq > after_seq, oldest first, at
  // most limit (clamped to [1, 10000]). A negative after_seq (-1) asks for
  // the newest limit lines instead, still oldest first (a tail). Errors as
  // for Invocations.
  StatusOr<std::vector<LogLine>> Logs(const std::string& function, int64_t after_seq, size_t limit);

  // Applies retention now, in one transaction: deletes the oldest
  // invocations beyond max_invocations and those started more than max_age_s
  // ago; the same for log lines. Unavailable if not open; IOError with the
  // sqlite message otherwise.
  Status ApplyRetention();

  // Commits what waits, stops and joins the writer, closes the connections.
  // Idempotent; later Adds are dropped.
  void Close();

  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  uint64_t written() const { return written_.load(std::memory_order_relaxed); }

 private:
  enum class State { kCreated, kRunning, kClosing, kClosed };

  bool Enqueue();  // mu_ held: accounts one Add; false = drop it
  void WriterLoop();
  // One transaction with the whole batch; false (and stderr) on failure.
  bool WriteBatch(const std::vector<InvocationRecord>& records, const std::vector<LogLine>& lines,
                  std::string* error);
  Status RetentionLocked();  // write_mu_ held
  // Sets next_seq_ past the newest block written (write_mu_ held).
  Status ReadNextSeqLocked();
  // Within RetentionLocked's transaction: the invocation blocks' part.
  Status TrimInvocationsLocked(bool aged, int64_t cutoff_us);
  // Rewrites block seq with the records keep(index, record) is true of (and
  // its last one when keep_last); deletes it when none is left, or when it
  // cannot be read (with a line on stderr).
  Status RewriteBlockLocked(int64_t seq,
                            const std::function<bool(size_t, const InvocationRecord&)>& keep,
                            bool keep_last = false);
  Status Prepare(sqlite3* db, const char* sql, sqlite3_stmt** stmt);
  void CloseConnections();

  const size_t max_pending_;
  RetentionOptions retention_;  // set by Open, then read-only

  // The writer's connection and its statements, guarded by write_mu_
  // (the writer thread and ApplyRetention).
  std::mutex write_mu_;
  sqlite3* write_db_ = nullptr;
  sqlite3_stmt* begin_ = nullptr;
  sqlite3_stmt* commit_ = nullptr;
  sqlite3_stmt* rollback_ = nullptr;
  sqlite3_stmt* insert_block_ = nullptr;
  sqlite3_stmt* insert_log_ = nullptr;
  std::vector<sqlite3_stmt*> retention_stmts_;  // the log lines' retention
  InvocationBlockWriter block_;  // the writer's, reused batch after batch
  int64_t next_seq_ = 1;         // the seq of the next record written

  std::mutex read_mu_;  // guards read_db_
  sqlite3* read_db_ = nullptr;

  // The queue between the callers and the writer, guarded by mu_.
  std::mutex mu_;
  std::condition_variable work_cv_;  // the writer waits for work
  std::condition_variable done_cv_;  // Flush waits for processed_
  State state_ = State::kCreated;
  std::vector<InvocationRecord> pending_records_;
  std::vector<LogLine> pending_lines_;
  uint64_t enqueued_ = 0;   // accepted by Add/AddLog
  uint64_t processed_ = 0;  // committed or failed by the writer
  uint64_t failed_batches_ = 0;
  std::string last_error_;
  int flush_waiters_ = 0;  // > 0: the writer does not wait to fill a batch
  std::thread writer_;

  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> written_{0};
};

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_INVOCATION_LOG_H_
