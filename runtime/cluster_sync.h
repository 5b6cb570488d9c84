// Deployments shared by the controllers of one cluster (wisp up --nats URLS
// --cluster NAME) through JetStream KV buckets, spoken over the broker like
// jetstream_delivery.h: a KV bucket is a stream KV_<bucket> on subjects
// $KV.<bucket>.<key>, a put is a publish there, a read a STREAM.MSG.GET.
//
// Buckets (file storage, `replicas` copies, one value per key):
//   wisp-<cluster>-functions  key <name>: a cluster.Deployment (JSON), the
//                             version every node serves. A delete marker
//                             (KV-Operation: DEL) removes the function. A put
//                             carries Nats-Expected-Last-Subject-Sequence, the
//                             revision this node last saw: of two nodes
//                             changing one function at once, one is refused.
//   wisp-<cluster>-artifacts  key <sha256>.<i>: the .so in kChunkBytes pieces.
//
// A node learns of a change two ways: a plain subscription on the functions
// bucket's subjects, taken as a hint only (the value is then read from the
// stream, so a put the stream refused is never applied), and a pass over the
// whole bucket at start and every kResyncMs (a node that starts later, or
// missed a hint while disconnected, catches up). An artifact is fetched
// chunk by chunk and its SHA-256 checked before it is stored: one that does
// not match is refused with a log line, and the node keeps serving what it
// served. Functions deployed here before the cluster existed stay local
// until they are deployed again.
//
// Artifacts no key names any more are removed from the artifacts bucket
// (cluster_artifact_gc.cc): every kGcEveryMs (or every pass, when
// artifact_grace_ms is shorter), a node lists the bucket's artifacts and
// purges those that no key of the functions bucket has named for
// artifact_grace_ms as it saw them, so an artifact whose key is being
// written is never taken. Only when this node has read every key: one it
// could not read might name any artifact. A rollback puts its artifact
// back (every publish writes the chunks).
//
// Ownership: borrows the loop, broker, requests and artifact store (they
// outlive it); owns its timer (freed in its close callback).
// Threading: the loop thread only.
#ifndef WISP_RUNTIME_CLUSTER_SYNC_H_
#define WISP_RUNTIME_CLUSTER_SYNC_H_

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "loader/artifact_store.h"
#include "runtime/base/loop_thread.h"
#include "runtime/base/status.h"
#include "runtime/broker_requests.h"
#include "runtime/function_store.h"
#include "triggers/broker.h"

namespace wisp::runtime {

struct ClusterCounters {
  uint64_t applied = 0;    // versions made current here from the bucket
  uint64_t removed = 0;    // functions removed here by a delete marker
  uint64_t refused = 0;    // values or artifacts refused (bad value, hash mismatch)
  uint64_t conflicts = 0;  // puts refused for a stale revision
  uint64_t artifacts_removed = 0;  // artifacts no key named, removed from the bucket
};

class ClusterSync {
 public:
  struct Hooks {
    // name's current version here, or nullptr when it is not deployed.
    std::function<const FunctionRecord*(const std::string& name)> current;
    // Makes record current here (its artifact is stored); an error is logged.
    std::function<Status(const FunctionRecord& record)> apply;
    // Removes name here; NotFound when it is not deployed.
    std::function<Status(const std::string& name)> remove;
  };

  static constexpr size_t kChunkBytes = 128 * 1024;
  static constexpr uint64_t kResyncMs = 5000;
  static constexpr uint64_t kApiTimeoutMs = 5000;
  static constexpr uint64_t kGcEveryMs = 60000;

  // node names this controller in the values it writes (for logs); a value
  // naming an artifact over max_artifact_bytes is refused unread; an
  // artifact no key has named for artifact_grace_ms is removed.
  ClusterSync(uv_loop_t* loop, triggers::Broker* broker, BrokerRequests* requests,
              loader::ArtifactStore* artifacts, std::string cluster, int replicas,
              std::string node, uint64_t max_artifact_bytes, uint64_t artifact_grace_ms,
              Hooks hooks);
  ~ClusterSync();  // Close first
  ClusterSync(const ClusterSync&) = delete;
  ClusterSync& operator=(const ClusterSync&) = delete;

  // Subscribes to the functions bucket and starts setting the buckets up
  // and reading them in the background (a failure is logged and tried
  // again every kResyncMs). InvalidArgument for a cluster name outside
  // [A-Za-z0-9_-]{1,64} or replicas outside 1..5.
  [[nodiscard]] Status Start();

  // OK when a change made here can be shared now (the buckets exist);
  // Unavailable while the node is still joining (or closing), so a caller
  // refuses the change before it makes it here. Loop thread only.
  [[nodiscard]] Status CheckWritable() const;

  // Shares record (current here, its artifact stored) with the cluster: the
  // artifact's chunks, then the key. done runs once, on the loop thread:
  // OK once JetStream stored it; AlreadyExists when another node changed the
  // function since this one last read it (this node then takes that
  // version); Unavailable when JetStream refused or did not answer.
  void Publish(const FunctionRecord& record, std::function<void(Status)> done);
  // Puts a delete marker on name's key, so every node removes it; done as
  // for Publish.
  void PublishRemoval(const std::string& name, std::function<void(Status)> done);

  // Unsubscribes, stops the timer; answers nothing more. on_closed runs
  // from the timer's close callback.
  void Close(std::function<void()> on_closed);

  const ClusterCounters& counters() const { return counters_; }
  // When the last full pass over the bucket finished, in uv_now ms (0: none yet).
  uint64_t last_resync_ms() const { return last_resync_ms_; }

  static bool IsValidClusterName(std::string_view name);

 private:
  struct Fetch {
    bool again = false;  // a hint came while reading; read once more
  };

  void Api(const std::string& subject, std::string body, triggers::Headers headers,
           std::function<void(Status, triggers::BrokerMessage)> done);
  void EnsureBuckets();
  void Resync();
  void ReadKey(const std::string& name);
  void OnValue(const std::string& name, Status s, triggers::BrokerMessage reply);
  void ApplyDeployment(const std::string& name, uint64_t seq, const std::string& json);
  void FetchArtifact(FunctionRecord record, uint64_t seq, uint32_t chunks);
  // Puts value on name's key; on success notes that it names sha256.
  void PutValue(const std::string& name, const std::string& sha256, std::string value,
                triggers::Headers headers, std::function<void(Status)> done);
  void DoneReading(const std::string& name);
  // Notes the artifact key name now names ("" for none: removed, refused).
  void NoteShared(const std::string& name, const std::string& sha256);
  // Artifact collection (cluster_artifact_gc.cc).
  void MaybeCollectArtifacts();
  void CollectArtifacts(const std::vector<std::string>& names);
  void PurgeArtifact(const std::string& sha256);
  static void TimerCb(uv_timer_t* timer);

  std::string FunctionsBucket() const { return "wisp-" + cluster_ + "-functions"; }
  std::string ArtifactsBucket() const { return "wisp-" + cluster_ + "-artifacts"; }

  uv_loop_t* loop_;
  triggers::Broker* broker_;
  BrokerRequests* requests_;
  loader::ArtifactStore* artifacts_;
  std::string cluster_;
  int replicas_;
  std::string node_;
  uint64_t max_artifact_bytes_;
  uint64_t artifact_grace_ms_;
  Hooks hooks_;
  LoopThread loop_thread_;
  triggers::SubscriptionId hints_ = 0;
  uv_timer_t* timer_;  // owned; closed by Close
  bool buckets_ready_ = false;
  bool setting_up_ = false;
  bool resyncing_ = false;
  bool closed_ = false;
  uint64_t last_resync_ms_ = 0;
  // The revision (stream sequence) of each key as last read or written here.
  std::map<std::string, uint64_t> revisions_;
  std::map<std::string, Fetch> reading_;
  // The artifact each key names, as last read or written here ("" none).
  std::map<std::string, std::string> shared_sha_;
  // Artifacts in the bucket no key names, since when (uv_now ms).
  std::map<std::string, uint64_t> unnamed_since_;
  bool collecting_ = false;
  uint64_t last_gc_ms_ = 0;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  ClusterCounters counters_;
};

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_CLUSTER_SYNC_H_
