// Who a loaded worker runs as, and where: the controller's side of isolation
// (the worker applies it, runtime/sandbox.h).
//
// When the controller runs as root, every worker that loads a function gets
// a user of its own from a range (uid = gid = first + slot), so a function
// cannot read the data dir, signal or trace the controller or another
// worker, and RLIMIT_NPROC counts only its own processes. Not as root, the
// workers keep the controller's user and the process limit is not enforced.
// Either way each worker gets an empty working directory of its own under
// one base directory, $TMPDIR/wisp-workers-<hash of the data dir>: removed
// when the controller stops, and cleared when it starts again after a crash.
// Controllers on one machine share the range: a uid in use is held with an
// flock on /run/wisp/worker-uids/<uid>, released when the worker has gone
// (or the controller has died), so no two workers ever share a user. A user
// whose controller died holding it is swept before its next use.
//
// Ownership: owned by the controller; slots are acquired by the dispatcher
// that loads a worker and released once the zygote has reported its exit
// (after the zygote ended every process left under that user).
// Threading: the loop thread only.
#ifndef WISP_RUNTIME_WORKER_IDENTITIES_H_
#define WISP_RUNTIME_WORKER_IDENTITIES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/base/status.h"
#include "runtime/function_limits.h"
#include "worker.pb.h"

namespace wisp::runtime {

class WorkerIdentities {
 public:
  struct Options {
    bool separate_users = true;      // when root; false: keep the controller's user
    uint32_t first_uid = 1879048192;  // 0x70000000, unused by the usual allocations
    uint32_t count = 4096;
    std::string data_dir;  // names the base directory
    bool seccomp = true;   // workers install runtime/seccomp_filter.h
  };

  explicit WorkerIdentities(Options options) : options_(options) {}
  ~WorkerIdentities();
  WorkerIdentities(const WorkerIdentities&) = delete;
  WorkerIdentities& operator=(const WorkerIdentities&) = delete;

  // Creates the base directory. InvalidArgument when a user of the system
  // (system_users.h) has a uid in the range, or the range is not usable; IOError
  // when the directory cannot be made.
  [[nodiscard]] Status Start();

  // Fills *sandbox for a worker about to load a function with limits;
  // returns the slot to Release. ResourceExhausted when every slot is taken.
  StatusOr<int> Acquire(const FunctionLimits& limits, proto::Sandbox* sandbox);
  void Release(int slot);

  // Makes the working directory of the lowest slot Acquire would take now
  // (free here, its user's lock not held by another controller), owned by
  // its user, mode 0700, empty, unless it exists: the worker that gets the
  // slot then keeps it instead of making it on the cold start's path (on
  // ext4 a mkdir costs 0.1 to 0.4 ms). For idle moments; a failure is left
  // to the worker, which makes the directory itself.
  void PrepareNextDir();

  bool separate_users() const { return drop_; }
  // One line for the controller's start-up: who workers run as, how memory
  // is limited, and whether the seccomp filter is on.
  std::string Describe() const;

 private:
  Options options_;
  bool drop_ = false;
  std::string base_dir_;
  bool Claim(size_t slot);
  int LockUser(size_t slot) const;
  bool Lockable(size_t slot) const;
  static bool ClaimedDirty(int fd);
  Status MakeBaseDir();

  std::string lock_dir_;
  std::vector<int> taken_;  // per slot: -1 free, else the lock's descriptor (0 without users)
};

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_WORKER_IDENTITIES_H_
