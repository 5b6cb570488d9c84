// The deployed functions and their versions, kept in sqlite (<data dir>/wisp.db,
// WAL mode) so deployments survive a controller restart. Every deploy adds an
// immutable version; one version per function is current (serves new
// invocations); a rollback makes an earlier one current again. Artifacts
// themselves live in the content-addressed ArtifactStore; a version names its
// artifact by SHA-256. The same database holds the invocation records and log
// lines (invocation_log.h); this class owns the schema and its migrations.
//
// Ownership: the store owns its sqlite connection.
// Threading: the controller's loop thread (deploys are rare and small).
#ifndef WISP_RUNTIME_FUNCTION_STORE_H_
#define WISP_RUNTIME_FUNCTION_STORE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "runtime/base/status.h"
#include "runtime/function_limits.h"

struct sqlite3;

namespace wisp::api {
class FunctionConfig;
}  // namespace wisp::api

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
  std::map<std::string, std::string> env;  // the config map, given as environment
  // Durable triggers (runtime/durable_delivery.h): the subjects' events are
  // stored and delivered at least once, retried, then dead-lettered.
  bool durable = false;
  uint32_t max_attempts = 3;
  uint64_t backoff_ms = 1000;
  uint64_t max_backoff_ms = 5 * 60 * 1000;
  std::string dead_letter;  // subject; empty: wisp.dlq.<name>
  // Timer trigger (runtime/schedule.h): a period, or a cron expression.
  uint64_t every_ms = 0;
  std::string cron;
  FunctionLimits limits;
};

// A record's configuration (everything but name, version, artifact and
// deploy time) as the API's FunctionConfig, and back; fields a config from an
// older wisp lacks keep the record's defaults.
void RecordToConfig(const FunctionRecord& record, api::FunctionConfig* config);
void ConfigToRecord(const api::FunctionConfig& config, FunctionRecord* record);

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

  // Adds record as a new version of its function and makes it current, in
  // one transaction. AlreadyExists if that function already has this version.
  [[nodiscard]] Status Put(const FunctionRecord& record);
  // Makes an existing version current. NotFound if there is no such function
  // or version.
  [[nodiscard]] Status SetCurrent(const std::string& name, const std::string& version);
  // Removes the function with all its versions. NotFound if no such function.
  [[nodiscard]] Status Remove(const std::string& name);
  // The current version of every function, ordered by name.
  StatusOr<std::vector<FunctionRecord>> List();
  // Every version of one function, oldest deploy first (empty if none).
  StatusOr<std::vector<FunctionRecord>> Versions(const std::string& name);
  // Deletes the oldest versions of name beyond the newest keep (the current
  // one is always kept) and returns the artifacts they named.
  StatusOr<std::vector<std::string>> PruneVersions(const std::string& name, size_t keep);
  // How many versions, of any function, name this artifact.
  StatusOr<int> CountArtifactUses(const std::string& sha256);

 private:
  Status MigrateTo4();
  Status MigrateTo7(const std::string& path);
  Status MoveInvocationsToRecordsDb();
  Status PutLocked(const FunctionRecord& record);
  StatusOr<std::vector<FunctionRecord>> Select(const std::string& where, const std::string& name);
  Status Exec(const char* sql);
  Status Error(const char* what) const;
  sqlite3* db_ = nullptr;
};

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_FUNCTION_STORE_H_
