// Takes sqlite's WAL checkpoints off the thread that commits.
//
// In WAL mode a commit that grows the log past the automatic checkpoint
// size (1000 pages) copies the log into the database file and syncs it, in
// the committing thread: milliseconds on the controller's loop, which made
// the durable queue's slowest events wait for a disk flush. Started on a
// connection, this turns its automatic checkpoints off (it takes the
// connection's WAL hook) and, once the log holds kCheckpointPages pages,
// wakes its own thread to run a PASSIVE checkpoint on a second connection
// to the same file: writers go on meanwhile, and what a checkpoint cannot
// copy yet is copied by the next. A log that grows past kRestartPages all
// the same is started over by a RESTART checkpoint, which waits briefly for
// the writers; the log file is cut back to 64 MiB when it starts over.
//
// Ownership: borrows the watched connection (Stop before closing it); owns
// its thread and its connection. Threading: Start and Stop on the thread
// that owns the watched connection; the hook runs there too, in commits.
// Failure: Start fails when the second connection cannot be opened.
#ifndef WISP_RUNTIME_WAL_CHECKPOINTER_H_
#define WISP_RUNTIME_WAL_CHECKPOINTER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "runtime/base/status.h"

struct sqlite3;

namespace wisp::runtime {

class WalCheckpointer {
 public:
  static constexpr int kCheckpointPages = 1000;  // sqlite's own default
  // A log this long is started over (a RESTART checkpoint, waiting up to
  // kRestartWaitMs for the writers), not only copied.
  static constexpr int kRestartPages = 10 * kCheckpointPages;
  static constexpr int kRestartWaitMs = 100;

  WalCheckpointer() = default;
  ~WalCheckpointer() { Stop(); }
  WalCheckpointer(const WalCheckpointer&) = delete;
  WalCheckpointer& operator=(const WalCheckpointer&) = delete;

  // Watches db, a connection in WAL mode to the database file at path.
  [[nodiscard]] Status Start(sqlite3* db, const std::string& path);
  // Gives db its automatic checkpoints back, then ends the thread after the
  // checkpoint it may be running. Idempotent.
  void Stop();

  // Checkpoints run so far (each PASSIVE: it may have copied part of the log).
  uint64_t checkpoints() const { return checkpoints_.load(std::memory_order_relaxed); }

 private:
  static int OnCommit(void* self, sqlite3* db, const char* name, int pages);
  void Run();

  sqlite3* watched_ = nullptr;
  sqlite3* own_ = nullptr;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool wanted_ = false;
  bool stopping_ = false;
  std::atomic<int> log_pages_{0};  // as the last commit past the size saw it
  std::atomic<uint64_t> checkpoints_{0};
};

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_WAL_CHECKPOINTER_H_
