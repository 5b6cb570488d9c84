// The deployed functions, kept in sqlite (<data dir>/wisp.db, WAL mode) so
// deployments survive a controller restart. Artifacts themselves live in the
// content-addressed ArtifactStore; a record names its artifact by SHA-256.
//
// Ownership: the store owns its sqlite connection.
// Threading: the controller's loop thread (deploys are rare and small).
#ifndef WISP_RUNTIME_FUNCTION_STORE_H_
#define WISP_RUNTIME_FUNCTION_STORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/base/status.h"

struct sqlite3;

namespace wisp::runtime {

struct FunctionRecord {
  std::string name;
  std::string sha256;
  uint64_t size_bytes = 0;
  uint64_t timeout_ms = 30000;
  uint64_t idle_ms = 60000;
  uint32_t max_workers = 2;
  std::string deployed_at;  // RFC 3339, UTC
  std::string version = "0.0.1";  // semver
  bool is_private = false;  // /fn/ calls need the control API token
  std::vector<std::string> subjects;  // event subjects it subscribes to, in order
};

class FunctionStore {
 public:
  FunctionStore() = default;
  ~FunctionStore();
  FunctionStore(const FunctionStore&) = delete;
  FunctionStore& operator=(const FunctionStore&) = delete;

  // Opens (creating if needed) the database at path and its schema. IOError
  // if it cannot be opened; Corruption if it is not a wisp database, or
  // InvalidArgument if a newer wisp wrote it.
  Status Open(const std::string& path);

  // Inserts or replaces the record with this name, subjects included, in
  // one transaction.
  Status Put(const FunctionRecord& record);
  // NotFound if no such function.
  Status Remove(const std::string& name);
  // Every record, ordered by name.
  StatusOr<std::vector<FunctionRecord>> List();
  // How many records name this artifact.
  StatusOr<int> CountArtifactUses(const std::string& sha256);

 private:
  Status PutLocked(const FunctionRecord& record);
  Status Exec(const char* sql);
  Status Error(const char* what) const;
  sqlite3* db_ = nullptr;
};

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_FUNCTION_STORE_H_
