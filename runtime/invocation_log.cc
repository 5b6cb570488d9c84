#include "runtime/invocation_log.h"

#include <pthread.h>
#include <sched.h>

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <utility>

#include "runtime/base/sqlite_statement.h"
#include "runtime/invocation_block.h"

namespace wisp::runtime {
namespace {

// A batch commits kBatchWait after its first record, or as soon as kBatchSize
// wait: one transaction per batch, never an fsync per record. Each commit
// writes at least one 64 KiB page of records.db, so batches are let grow:
// at 200 invocations a second a 10 ms wait wrote 12 MB/s, 100 ms writes
// a tenth of that; a busy controller fills kBatchSize sooner. A batch of
// kMaxBlockRecords is one block: a commit rewrites the table's last leaf
// page besides the block's own pages, which 4096 records share (the writer
// spent 0.32 us a record with batches of 2048 and 0.23 with 8192).
constexpr size_t kBatchSize = kMaxBlockRecords;
// Batch vectors swap between the callers and the writer and keep their
// capacity; one grown by a burst beyond this is freed instead.
constexpr size_t kKeepCapacity = 8 * kBatchSize;
constexpr auto kBatchWait = std::chrono::milliseconds(100);
constexpr auto kRetentionEvery = std::chrono::seconds(10);
constexpr size_t kMaxInvocationsLimit = 1000;
constexpr size_t kMaxLogsLimit = 10000;

constexpr const char* kInsertLog =
    "INSERT INTO logs (function, invocation, at_us, line) VALUES (?, ?, ?, ?)";
// Bound: 1 = how many newest rows to keep (>= 1), 2 = the age cut-off (rows
// at or after it stay). max(seq) is never deleted: see RetentionOptions.
constexpr const char* kLogRetention[] = {
    "DELETE FROM logs WHERE seq <= (SELECT seq FROM logs ORDER BY seq DESC LIMIT 1 OFFSET ?1)",
    "DELETE FROM logs WHERE at_us < ?2 AND seq < (SELECT max(seq) FROM logs)",
};

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status SqliteError(sqlite3* db, const std::string& what) {
  return Status::IOError(what + ": " + (db != nullptr ? sqlite3_errmsg(db) : "no connection"));
}

// Binds text that outlives the step (SQLITE_STATIC: no copy).
void BindText(sqlite3_stmt* st, int i, const std::string& s) {
  sqlite3_bind_text(st, i, s.data(), static_cast<int>(s.size()), SQLITE_STATIC);
}

std::string Text(sqlite3_stmt* st, int i) {
  const unsigned char* p = sqlite3_column_text(st, i);
  return p == nullptr ? std::string()
                      : std::string(reinterpret_cast<const char*>(p),
                                    static_cast<size_t>(sqlite3_column_bytes(st, i)));
}

// Runs a statement without rows to SQLITE_DONE and resets it.
bool StepDone(sqlite3_stmt* st) {
  const int rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc == SQLITE_DONE;
}

// Opens a connection for this log's use; *db is set even on failure (close it).
// No per-connection mutex (SQLITE_OPEN_NOMUTEX): each connection is used
// under this class's own lock, and sqlite's would cost the writer about a
// sixth of its time.
Status OpenConnection(const std::string& path, sqlite3** db) {
  if (sqlite3_open_v2(path.c_str(), db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    return SqliteError(*db, "open " + path);
  }
  sqlite3_busy_timeout(*db, 5000);
  if (sqlite3_exec(*db, "PRAGMA synchronous=NORMAL", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return SqliteError(*db, "configure " + path);
  }
  return Status::OK();
}

}  // namespace

InvocationLog::InvocationLog(size_t max_pending) : max_pending_(max_pending) {}

InvocationLog::~InvocationLog() { Close(); }

Status InvocationLog::Prepare(sqlite3* db, const char* sql, sqlite3_stmt** stmt) {
  if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, stmt, nullptr) != SQLITE_OK) {
    return SqliteError(db, std::string("prepare \"") + sql + "\" (is the schema there?)");
  }
  return Status::OK();
}

Status InvocationLog::Open(const std::string& db_path, RetentionOptions retention) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ != State::kCreated) {
      return Status::InvalidArgument("invocation log: Open called twice");
    }
  }
  retention_ = retention;
  Status s = [&]() -> Status {
    std::scoped_lock lock(write_mu_, read_mu_);
    WISP_RETURN_IF_ERROR(OpenConnection(db_path, &write_db_));
    WISP_RETURN_IF_ERROR(OpenConnection(db_path, &read_db_));
    WISP_RETURN_IF_ERROR(AttachRecordsDb(write_db_, db_path));
    WISP_RETURN_IF_ERROR(AttachRecordsDb(read_db_, db_path));
    WISP_RETURN_IF_ERROR(Prepare(write_db_, "BEGIN IMMEDIATE", &begin_));
    WISP_RETURN_IF_ERROR(Prepare(write_db_, "COMMIT", &commit_));
    WISP_RETURN_IF_ERROR(Prepare(write_db_, "ROLLBACK", &rollback_));
    WISP_RETURN_IF_ERROR(Prepare(write_db_, kInsertInvocationBlockSql, &insert_block_));
    WISP_RETURN_IF_ERROR(Prepare(write_db_, kInsertLog, &insert_log_));
    WISP_RETURN_IF_ERROR(ReadNextSeqLocked());
    for (const char* sql : kLogRetention) {
      retention_stmts_.push_back(nullptr);
      WISP_RETURN_IF_ERROR(Prepare(write_db_, sql, &retention_stmts_.back()));
    }
    Status retained = RetentionLocked();
    // What Open read stays cached otherwise: with 64 KiB pages, a few
    // hundred KiB an idle controller would hold for nothing.
    sqlite3_db_release_memory(write_db_);
    sqlite3_db_release_memory(read_db_);
    return retained;
  }();
  if (!s.ok()) {
    CloseConnections();
    return s;
  }
  std::lock_guard<std::mutex> lock(mu_);
  state_ = State::kRunning;
  writer_ = std::thread([this] { WriterLoop(); });
  return Status::OK();
}

bool InvocationLog::Enqueue() {
  if (state_ != State::kRunning ||
      pending_records_.size() + pending_lines_.size() >= max_pending_) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  ++enqueued_;
  return true;
}

void InvocationLog::Add(InvocationRecord record) {
  if (record.error.size() > kMaxRecordedErrorBytes) {
    size_t cut = kMaxRecordedErrorBytes;
    while (cut > 0 && (static_cast<unsigned char>(record.error[cut]) & 0xC0) == 0x80) --cut;
    const size_t full = record.error.size();
    record.error.resize(cut);
    record.error += "... (" + std::to_string(full) + " bytes in all)";
  }
  std::unique_lock<std::mutex> lock(mu_);
  if (!Enqueue()) return;
  pending_records_.push_back(std::move(record));
  const size_t waiting = pending_records_.size() + pending_lines_.size();
  lock.unlock();
  if (waiting == 1 || waiting == kBatchSize) work_cv_.notify_one();
}

void InvocationLog::AddLog(LogLine line) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!Enqueue()) return;
  pending_lines_.push_back(std::move(line));
  const size_t waiting = pending_records_.size() + pending_lines_.size();
  lock.unlock();
  if (waiting == 1 || waiting == kBatchSize) work_cv_.notify_one();
}

Status InvocationLog::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  if (state_ != State::kRunning) return Status::OK();
  const uint64_t target = enqueued_;
  const uint64_t failed_before = failed_batches_;
  ++flush_waiters_;
  work_cv_.notify_one();
  done_cv_.wait(lock, [&] { return processed_ >= target; });
  --flush_waiters_;
  if (failed_batches_ != failed_before) {
    return Status::IOError("invocation log: a batch was lost: " + last_error_);
  }
  return Status::OK();
}

void InvocationLog::WriterLoop() {
  // A batch job: it gets its share of the CPU but never preempts the loop
  // thread when it wakes up (SCHED_BATCH); best effort.
  sched_param batch{};
  (void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &batch);
  auto next_retention = std::chrono::steady_clock::now() + kRetentionEvery;
  uint64_t dropped_reported = 0;
  std::vector<InvocationRecord> records;
  std::vector<LogLine> lines;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    auto waiting = [&] { return pending_records_.size() + pending_lines_.size(); };
    const bool stopping = state_ != State::kRunning;
    if (stopping && waiting() == 0) break;
    work_cv_.wait_until(lock, next_retention,
                        [&] { return state_ != State::kRunning || waiting() > 0; });
    // Let a batch fill for up to kBatchWait unless someone waits for it.
    if (waiting() > 0 && waiting() < kBatchSize) {
      work_cv_.wait_for(lock, kBatchWait, [&] {
        return state_ != State::kRunning || flush_waiters_ > 0 || waiting() >= kBatchSize;
      });
    }
    records.swap(pending_records_);
    lines.swap(pending_lines_);
    const uint64_t taken = records.size() + lines.size();
    lock.unlock();

    std::string error;
    if (taken > 0) {
      std::lock_guard<std::mutex> db_lock(write_mu_);
      if (WriteBatch(records, lines, &error)) {
        written_.fetch_add(taken, std::memory_order_relaxed);
      } else {
        dropped_.fetch_add(taken, std::memory_order_relaxed);
        std::fprintf(stderr, "wisp: invocation log: lost %llu records: %s\n",
                     static_cast<unsigned long long>(taken), error.c_str());
      }
    }
    records.clear();
    lines.clear();
    if (records.capacity() > kKeepCapacity) records = {};
    if (lines.capacity() > kKeepCapacity) lines = {};
    if (std::chrono::steady_clock::now() >= next_retention) {
      next_retention = std::chrono::steady_clock::now() + kRetentionEvery;
      std::lock_guard<std::mutex> db_lock(write_mu_);
      Status s = RetentionLocked();
      if (!s.ok()) std::fprintf(stderr, "wisp: invocation log: %s\n", s.ToString().c_str());
      const uint64_t dropped = dropped_.load(std::memory_order_relaxed);
      if (dropped != dropped_reported) {
        std::fprintf(stderr, "wisp: invocation log: %llu records dropped so far\n",
                     static_cast<unsigned long long>(dropped));
        dropped_reported = dropped;
      }
    }

    lock.lock();
    processed_ += taken;
    if (!error.empty()) {
      ++failed_batches_;
      last_error_ = std::move(error);
    }
    done_cv_.notify_all();
  }
}

bool InvocationLog::WriteBatch(const std::vector<InvocationRecord>& records,
                               const std::vector<LogLine>& lines, std::string* error) {
  auto fail = [&](const char* what) {
    *error = std::string(what) + ": " + sqlite3_errmsg(write_db_);
    if (!sqlite3_get_autocommit(write_db_)) StepDone(rollback_);
    // A commit reported as failed may have happened all the same.
    (void)ReadNextSeqLocked();
    return false;
  };
  if (!StepDone(begin_)) return fail("begin");
  int64_t next_seq = next_seq_;
  for (size_t at = 0; at < records.size();) {
    block_.Clear();
    const size_t end = std::min(records.size(), at + kMaxBlockRecords);
    for (; at < end; ++at) block_.Add(records[at]);
    BindInvocationBlock(insert_block_, next_seq, block_);
    if (!StepDone(insert_block_)) return fail("insert invocations");
    next_seq += static_cast<int64_t>(block_.count());
  }
  for (const LogLine& l : lines) {
    sqlite3_stmt* st = insert_log_;
    BindText(st, 1, l.function);
    BindText(st, 2, l.invocation);
    sqlite3_bind_int64(st, 3, l.at_us);
    BindText(st, 4, l.line);
    if (!StepDone(st)) return fail("insert log line");
  }
  if (!StepDone(commit_)) return fail("commit");
  next_seq_ = next_seq;
  return true;
}

Status InvocationLog::ApplyRetention() {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (write_db_ == nullptr) return Status::Unavailable("invocation log is not open");
  return RetentionLocked();
}

Status InvocationLog::RetentionLocked() {
  if (!StepDone(begin_)) return SqliteError(write_db_, "retention: begin");
  const bool aged = retention_.max_age_s > 0 && retention_.max_age_s < INT64_MAX / 1000000;
  const int64_t cutoff_us = aged ? NowUs() - retention_.max_age_s * 1000000 : INT64_MIN;
  Status trimmed = TrimInvocationsLocked(aged, cutoff_us);
  if (!trimmed.ok()) {
    StepDone(rollback_);
    return trimmed;
  }
  for (sqlite3_stmt* st : retention_stmts_) {
    // Only one of ?1 and ?2 appears in each statement; binding a missing one is a no-op.
    sqlite3_bind_int64(st, 1, static_cast<int64_t>(std::max<size_t>(retention_.max_log_lines, 1)));
    sqlite3_bind_int64(st, 2, cutoff_us);
    if (!StepDone(st)) {
      Status s = SqliteError(write_db_, "retention");
      StepDone(rollback_);
      return s;
    }
  }
  if (!StepDone(commit_)) {
    Status s = SqliteError(write_db_, "retention: commit");
    if (!sqlite3_get_autocommit(write_db_)) StepDone(rollback_);
    return s;
  }
  return Status::OK();
}

Status InvocationLog::ReadNextSeqLocked() {
  SqliteStatement newest(
      write_db_, "SELECT seq + count FROM records.invocation_blocks ORDER BY seq DESC LIMIT 1");
  const int rc = newest.Step();
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    return SqliteError(write_db_, "read the newest invocation block");
  }
  // Never back: seqs of records already read out must not come again.
  next_seq_ = std::max(next_seq_, rc == SQLITE_ROW ? newest.Int(0) : 1);
  return Status::OK();
}

Status InvocationLog::TrimInvocationsLocked(bool aged, int64_t cutoff_us) {
  // By count: whole blocks from the oldest, then the oldest records of the
  // block that holds the cut.
  int64_t excess = 0;
  {
    SqliteStatement total(write_db_, "SELECT coalesce(sum(count), 0) FROM records.invocation_blocks");
    if (total.Step() != SQLITE_ROW) return SqliteError(write_db_, "retention: count invocations");
    excess = total.Int(0) - static_cast<int64_t>(std::max<size_t>(retention_.max_invocations, 1));
  }
  int64_t cut_seq = -1;   // whole blocks below it go
  int64_t cut_block = -1;  // the block the cut falls in, and
  int64_t cut_drop = 0;    // how many of its oldest records go
  if (excess > 0) {
    SqliteStatement oldest(write_db_, "SELECT seq, count FROM records.invocation_blocks ORDER BY seq");
    while (excess > 0 && oldest.Step() == SQLITE_ROW) {
      const int64_t seq = oldest.Int(0), count = oldest.Int(1);
      if (count <= excess) {
        cut_seq = seq + 1;
      } else {
        cut_block = seq;
        cut_drop = excess;
      }
      excess -= count;
    }
  }
  if (cut_seq > 0) {
    SqliteStatement remove(write_db_, "DELETE FROM records.invocation_blocks WHERE seq < ?1");
    remove.BindInt(1, cut_seq);
    if (remove.Step() != SQLITE_DONE) return SqliteError(write_db_, "retention: delete blocks");
  }
  if (cut_block >= 0) {
    WISP_RETURN_IF_ERROR(RewriteBlockLocked(cut_block, [cut_drop](size_t i, const InvocationRecord&) {
      return static_cast<int64_t>(i) >= cut_drop;
    }));
  }
  if (!aged) return Status::OK();
  // By age: blocks wholly older than the cut-off go, the others holding a
  // record started before it lose those records; the newest record of all
  // stays (RetentionOptions).
  std::vector<std::pair<int64_t, int64_t>> touched;  // (seq, newest_us)
  int64_t newest_seq = 0;
  {
    SqliteStatement newest(write_db_,
                           "SELECT coalesce(max(seq), 0) FROM records.invocation_blocks");
    if (newest.Step() != SQLITE_ROW) return SqliteError(write_db_, "retention: newest block");
    newest_seq = newest.Int(0);
    SqliteStatement old(write_db_,
                        "SELECT seq, newest_us FROM records.invocation_blocks WHERE oldest_us < ?1");
    old.BindInt(1, cutoff_us);
    int rc;
    while ((rc = old.Step()) == SQLITE_ROW) touched.emplace_back(old.Int(0), old.Int(1));
    if (rc != SQLITE_DONE) return SqliteError(write_db_, "retention: find old blocks");
  }
  SqliteStatement remove(write_db_, "DELETE FROM records.invocation_blocks WHERE seq = ?1");
  for (const auto& [seq, newest_us] : touched) {
    if (newest_us < cutoff_us && seq != newest_seq) {
      sqlite3_reset(remove.get());
      remove.BindInt(1, seq);
      if (remove.Step() != SQLITE_DONE) return SqliteError(write_db_, "retention: delete a block");
      continue;
    }
    WISP_RETURN_IF_ERROR(RewriteBlockLocked(
        seq, [cutoff_us](size_t, const InvocationRecord& r) { return r.started_at_us >= cutoff_us; },
        /*keep_last=*/seq == newest_seq));
  }
  return Status::OK();
}

Status InvocationLog::RewriteBlockLocked(
    int64_t seq, const std::function<bool(size_t, const InvocationRecord&)>& keep, bool keep_last) {
  std::vector<InvocationRecord> records;
  Status decoded;
  {
    SqliteStatement read(write_db_,
                         "SELECT records, count FROM records.invocation_blocks WHERE seq = ?1");
    read.BindInt(1, seq);
    if (read.Step() != SQLITE_ROW) return SqliteError(write_db_, "retention: read a block");
    decoded = DecodeInvocationBlock(read.BlobView(0), seq, read.Int(1), &records);
  }
  if (!decoded.ok()) {
    // Nobody can read it: it goes, so that retention goes on for the rest.
    std::fprintf(stderr, "wisp: invocation log: deleting an unreadable block: %s\n",
                 decoded.ToString().c_str());
    SqliteStatement remove(write_db_, "DELETE FROM records.invocation_blocks WHERE seq = ?1");
    remove.BindInt(1, seq);
    if (remove.Step() != SQLITE_DONE) return SqliteError(write_db_, "retention: delete a block");
    return Status::OK();
  }
  block_.Clear();
  for (size_t i = 0; i < records.size(); ++i) {
    if (keep(i, records[i]) || (keep_last && i + 1 == records.size())) block_.Add(records[i]);
  }
  if (block_.count() == records.size()) return Status::OK();
  SqliteStatement remove(write_db_, "DELETE FROM records.invocation_blocks WHERE seq = ?1");
  remove.BindInt(1, seq);
  if (remove.Step() != SQLITE_DONE) return SqliteError(write_db_, "retention: delete a block");
  if (block_.count() == 0) return Status::OK();
  // The survivors keep the block's last seqs, so seqs stay increasing.
  SqliteStatement insert(write_db_, kInsertInvocationBlockSql);
  BindInvocationBlock(insert.get(), seq + static_cast<int64_t>(records.size() - block_.count()),
                      block_);
  if (insert.Step() != SQLITE_DONE) return SqliteError(write_db_, "retention: rewrite a block");
  return Status::OK();
}

StatusOr<std::vector<InvocationRecord>> InvocationLog::Invocations(const std::string& function,
                                                                   size_t limit,
                                                                   const std::string& trace_id) {
  std::lock_guard<std::mutex> lock(read_mu_);
  if (read_db_ == nullptr) return Status::Unavailable("invocation log is not open");
  // Newest blocks first; a function's read skips the blocks without it.
  const char* sql = function.empty()
                        ? "SELECT seq, records, count FROM records.invocation_blocks"
                          " ORDER BY seq DESC"
                        : "SELECT seq, records, count FROM records.invocation_blocks"
                          " WHERE instr(functions, ?1) > 0 ORDER BY seq DESC";
  SqliteStatement st(read_db_, sql);
  if (!st.ok()) return SqliteError(read_db_, "read invocations");
  if (!function.empty()) st.BindText(1, FunctionsKey(function));
  limit = std::clamp<size_t>(limit, 1, kMaxInvocationsLimit);
  std::vector<InvocationRecord> out;
  std::vector<InvocationRecord> block;
  int rc = SQLITE_DONE;
  while (out.size() < limit && (rc = st.Step()) == SQLITE_ROW) {
    block.clear();
    Status decoded = DecodeInvocationBlock(st.BlobView(1), st.Int(0), st.Int(2), &block);
    if (!decoded.ok()) {
      // The others are still worth showing; retention deletes it.
      std::fprintf(stderr, "wisp: invocation log: skipping an unreadable block: %s\n",
                   decoded.ToString().c_str());
      continue;
    }
    for (auto r = block.rbegin(); r != block.rend() && out.size() < limit; ++r) {
      if (!function.empty() && r->function != function) continue;
      if (!trace_id.empty() && r->trace_id.view() != trace_id) continue;
      out.push_back(std::move(*r));
    }
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return SqliteError(read_db_, "read invocations");
  return out;
}

StatusOr<std::vector<LogLine>> InvocationLog::Logs(const std::string& function, int64_t after_seq,
                                                   size_t limit) {
  std::lock_guard<std::mutex> lock(read_mu_);
  if (read_db_ == nullptr) return Status::Unavailable("invocation log is not open");
  const bool tail = after_seq < 0;
  const char* sql = tail ? "SELECT seq, function, invocation, at_us, line FROM logs"
                           " WHERE function = ?1 ORDER BY seq DESC LIMIT ?2"
                         : "SELECT seq, function, invocation, at_us, line FROM logs"
                           " WHERE function = ?1 AND seq > ?3 ORDER BY seq LIMIT ?2";
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(read_db_, sql, -1, &st, nullptr) != SQLITE_OK) {
    return SqliteError(read_db_, "read logs");
  }
  BindText(st, 1, function);
  limit = std::clamp<size_t>(limit, 1, kMaxLogsLimit);
  sqlite3_bind_int64(st, 2, static_cast<int64_t>(limit));
  if (!tail) sqlite3_bind_int64(st, 3, after_seq);
  std::vector<LogLine> out;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    LogLine& l = out.emplace_back();
    l.seq = sqlite3_column_int64(st, 0);
    l.function = Text(st, 1);
    l.invocation = Text(st, 2);
    l.at_us = sqlite3_column_int64(st, 3);
    l.line = Text(st, 4);
  }
  Status s = rc == SQLITE_DONE ? Status::OK() : SqliteError(read_db_, "read logs");
  sqlite3_finalize(st);
  if (!s.ok()) return s;
  if (tail) std::reverse(out.begin(), out.end());
  return out;
}

void InvocationLog::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ == State::kClosing || state_ == State::kClosed) return;
    const bool running = state_ == State::kRunning;
    state_ = State::kClosing;
    if (running) work_cv_.notify_one();
  }
  if (writer_.joinable()) writer_.join();  // the writer commits what waits first
  CloseConnections();
  std::lock_guard<std::mutex> lock(mu_);
  state_ = State::kClosed;
}

void InvocationLog::CloseConnections() {
  std::scoped_lock lock(write_mu_, read_mu_);
  for (sqlite3_stmt** st : {&begin_, &commit_, &rollback_, &insert_block_, &insert_log_}) {
    sqlite3_finalize(*st);
    *st = nullptr;
  }
  for (sqlite3_stmt* st : retention_stmts_) sqlite3_finalize(st);
  retention_stmts_.clear();
  sqlite3_close_v2(write_db_);
  sqlite3_close_v2(read_db_);
  write_db_ = nullptr;
  read_db_ = nullptr;
}

}  // namespace wisp::runtime
