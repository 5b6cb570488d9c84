#include "runtime/wal_checkpointer.h"

#include <sqlite3.h>

#include <cstdio>

namespace wisp::runtime {

Status WalCheckpointer::Start(sqlite3* db, const std::string& path) {
  if (watched_ != nullptr) return Status::InvalidArgument("the checkpointer runs already");
  // Used by its own thread only: no per-connection mutex needed.
  if (sqlite3_open_v2(path.c_str(), &own_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    Status s = Status::IOError("open " + path + " to checkpoint it: " +
                               (own_ != nullptr ? sqlite3_errmsg(own_) : "no memory"));
    sqlite3_close_v2(own_);
    own_ = nullptr;
    return s;
  }
  // A connection opens the log on its first read; until then a checkpoint
  // through it finds no log at all.
  if (sqlite3_exec(own_, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr) !=
      SQLITE_OK) {
    Status s = Status::IOError("read " + path + " to checkpoint it: " + sqlite3_errmsg(own_));
    sqlite3_close_v2(own_);
    own_ = nullptr;
    return s;
  }
  // What a RESTART checkpoint waits for the writers, at most; and the size
  // the log file is cut back to when it starts over.
  sqlite3_busy_timeout(own_, kRestartWaitMs);
  (void)sqlite3_exec(db, "PRAGMA journal_size_limit = 67108864", nullptr, nullptr, nullptr);
  watched_ = db;
  stopping_ = false;
  thread_ = std::thread([this] { Run(); });
  sqlite3_wal_hook(db, OnCommit, this);  // replaces the automatic checkpoints
  return Status::OK();
}

int WalCheckpointer::OnCommit(void* self, sqlite3*, const char*, int pages) {
  if (pages < kCheckpointPages) return SQLITE_OK;
  auto* checkpointer = static_cast<WalCheckpointer*>(self);
  checkpointer->log_pages_.store(pages, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(checkpointer->mu_);
    if (checkpointer->wanted_) return SQLITE_OK;
    checkpointer->wanted_ = true;
  }
  checkpointer->wake_.notify_one();
  return SQLITE_OK;
}

void WalCheckpointer::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    wake_.wait(lock, [this] { return wanted_ || stopping_; });
    if (stopping_) break;
    lock.unlock();
    int log_pages = 0;
    int copied = 0;
    // A log that passive checkpoints never caught up with (commits kept
    // coming while they copied) is started over: RESTART waits, briefly,
    // for the writers.
    const bool restart =
        log_pages_.load(std::memory_order_relaxed) >= kRestartPages;
    const int rc = sqlite3_wal_checkpoint_v2(
        own_, nullptr, restart ? SQLITE_CHECKPOINT_RESTART : SQLITE_CHECKPOINT_PASSIVE,
        &log_pages, &copied);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
      std::fprintf(stderr, "wisp: checkpoint of %s: %s\n", sqlite3_db_filename(own_, nullptr),
                   sqlite3_errmsg(own_));
    }
    checkpoints_.fetch_add(1, std::memory_order_relaxed);
    lock.lock();
    wanted_ = false;  // the next commit past the size asks again
  }
}

void WalCheckpointer::Stop() {
  if (watched_ == nullptr) return;
  sqlite3_wal_autocheckpoint(watched_, kCheckpointPages);  // also removes our hook
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
  sqlite3_close_v2(own_);
  own_ = nullptr;
  watched_ = nullptr;
}

}  // namespace wisp::runtime
