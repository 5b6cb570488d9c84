#include "runtime/cluster_sync.h"

#include <cstdio>
#include <utility>

#include "api.pb.h"
#include "cluster.pb.h"
#include "jetstream.pb.h"
#include "runtime/base/check.h"
#include "runtime/base/uv_timer.h"
#include "runtime/deploy_params.h"
#include "runtime/jetstream_api.h"
#include "runtime/json_print.h"
#include "triggers/route.h"

namespace wisp::runtime {
namespace {

// Whether a stored message's header block marks a deleted key
// ("KV-Operation: DEL" or "PURGE").
bool IsDeleteMarker(std::string_view hdrs) {
  for (const auto& [name, value] : ParseHeaderBlock(hdrs)) {
    if (name == "KV-Operation") return value == "DEL" || value == "PURGE";
  }
  return false;
}

std::string StreamConfigJson(const std::string& bucket, int replicas) {
  return "{\"name\":" + JsonQuote("KV_" + bucket) + ",\"subjects\":[" +
         JsonQuote("$KV." + bucket + ".>") +
         "],\"retention\":\"limits\",\"storage\":\"file\",\"max_msgs_per_subject\":1,"
         "\"discard\":\"new\",\"num_replicas\":" +
         std::to_string(replicas) +
         ",\"allow_rollup_hdrs\":true,\"deny_delete\":true,\"allow_direct\":true,"
         "\"duplicate_window\":120000000000}";
}

// What a deploy's parameters would have refused (deploy_params.h), checked
// again for a value another node wrote.
Status CheckSharedConfig(const FunctionRecord& record) {
  if (record.timeout_ms == 0) return Status::InvalidArgument("its timeout is 0");
  if (record.max_workers == 0 || record.max_workers > kMaxWorkersLimit) {
    return Status::InvalidArgument("its max_workers is not 1 to " +
                                   std::to_string(kMaxWorkersLimit));
  }
  if (record.subjects.size() > kMaxSubjectsPerFunction) {
    return Status::InvalidArgument("it has too many subjects");
  }
  for (const std::string& subject : record.subjects) {
    WISP_RETURN_IF_ERROR(triggers::ValidateSubscribeSubject(subject).WithContext("its subject"));
  }
  if (record.env.size() > kMaxEnvEntries) return Status::InvalidArgument("its env is too large");
  return Status::OK();
}

uint32_t ChunksFor(uint64_t size) {
  return static_cast<uint32_t>((size + ClusterSync::kChunkBytes - 1) / ClusterSync::kChunkBytes);
}

}  // namespace

bool ClusterSync::IsValidClusterName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

ClusterSync::ClusterSync(uv_loop_t* loop, triggers::Broker* broker, BrokerRequests* requests,
                         loader::ArtifactStore* artifacts, std::string cluster, int replicas,
                         std::string node, uint64_t max_artifact_bytes,
                         uint64_t artifact_grace_ms, Hooks hooks)
    : loop_(loop),
      broker_(broker),
      requests_(requests),
      artifacts_(artifacts),
      cluster_(std::move(cluster)),
      replicas_(replicas),
      node_(std::move(node)),
      max_artifact_bytes_(max_artifact_bytes),
      artifact_grace_ms_(artifact_grace_ms),
      hooks_(std::move(hooks)),
      timer_(new uv_timer_t) {
  uv_timer_init(loop_, timer_);
  timer_->data = this;
}

ClusterSync::~ClusterSync() { WISP_CHECK(timer_ == nullptr); }

Status ClusterSync::Start() {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  if (!IsValidClusterName(cluster_)) {
    return Status::InvalidArgument("cluster name '" + cluster_ +
                                   "' must be 1 to 64 of A-Z, a-z, 0-9, '-' and '_'");
  }
  if (replicas_ < 1 || replicas_ > 5) {
    return Status::InvalidArgument("cluster replicas must be 1 to 5, got " +
                                   std::to_string(replicas_));
  }
  const std::string prefix = "$KV." + FunctionsBucket() + ".";
  StatusOr<triggers::SubscriptionId> sub = broker_->Subscribe(
      prefix + ">", "", [this, prefix](triggers::BrokerMessage hint) {
        if (closed_ || hint.subject.size() <= prefix.size()) return;
        const std::string name = hint.subject.substr(prefix.size());
        if (buckets_ready_ && triggers::IsValidFunctionName(name)) ReadKey(name);
      });
  if (!sub.ok()) return sub.status().WithContext("subscribe to the cluster's functions");
  hints_ = *sub;
  uv_timer_start(timer_, TimerCb, kResyncMs, kResyncMs);
  EnsureBuckets();
  return Status::OK();
}

void ClusterSync::TimerCb(uv_timer_t* timer) {
  auto* self = static_cast<ClusterSync*>(timer->data);
  WISP_ASSERT_LOOP_THREAD(self->loop_thread_);
  if (!self->buckets_ready_) return self->EnsureBuckets();
  self->Resync();
}

void ClusterSync::Api(const std::string& subject, std::string body, triggers::Headers headers,
                      std::function<void(Status, triggers::BrokerMessage)> done) {
  triggers::BrokerMessage request;
  request.subject = subject;
  request.data = std::move(body);
  request.headers = std::move(headers);
  JetStreamRequest(requests_, alive_, std::move(request), kApiTimeoutMs, std::move(done));
}

void ClusterSync::EnsureBuckets() {
  if (setting_up_ || closed_) return;
  setting_up_ = true;
  auto pending = std::make_shared<int>(2);
  auto failure = std::make_shared<Status>();
  for (const std::string& bucket : {FunctionsBucket(), ArtifactsBucket()}) {
    Api("$JS.API.STREAM.CREATE.KV_" + bucket, StreamConfigJson(bucket, replicas_), {},
        [this, pending, failure, bucket](Status s, triggers::BrokerMessage reply) {
          jetstream::StreamInfo info;
          if (s.ok() && !ParseJetStreamReply(reply.data, &info)) {
            s = Status::Corruption("JetStream stream create: unreadable reply");
          }
          // One made before, by this node or another, is used as it is.
          if (s.ok() && info.has_error() && info.error().err_code() != kJsStreamNameInUse) {
            s = JetStreamFailure("create bucket " + bucket, info.error());
          }
          if (!s.ok() && failure->ok()) *failure = s;
          if (--*pending > 0) return;
          setting_up_ = false;
          if (!failure->ok()) {
            std::fprintf(stderr, "wisp: cluster %s: %s (trying again in %llu s)\n",
                         cluster_.c_str(), failure->ToString().c_str(),
                         static_cast<unsigned long long>(kResyncMs / 1000));
            return;
          }
          buckets_ready_ = true;
          Resync();
        });
  }
}

void ClusterSync::Resync() {
  if (resyncing_ || closed_) return;
  resyncing_ = true;
  const std::string bucket = FunctionsBucket();
  Api("$JS.API.STREAM.INFO.KV_" + bucket,
      "{\"subjects_filter\":" + JsonQuote("$KV." + bucket + ".>") + "}", {},
      [this, bucket](Status s, triggers::BrokerMessage reply) {
        resyncing_ = false;
        jetstream::StreamInfoWithState info;
        if (s.ok() && !ParseJetStreamReply(reply.data, &info)) {
          s = Status::Corruption("JetStream stream info: unreadable reply");
        }
        if (s.ok() && info.has_error()) s = JetStreamFailure("read bucket " + bucket, info.error());
        if (!s.ok()) {
          std::fprintf(stderr, "wisp: cluster %s: %s\n", cluster_.c_str(), s.ToString().c_str());
          if (info.has_error() && info.error().err_code() == kJsStreamNotFound) {
            buckets_ready_ = false;  // deleted behind our back: make it again
          }
          return;
        }
        const std::string prefix = "$KV." + bucket + ".";
        for (const auto& [subject, count] : info.state().subjects()) {
          if (subject.size() <= prefix.size() || subject.compare(0, prefix.size(), prefix) != 0) {
            continue;
          }
          const std::string name = subject.substr(prefix.size());
          if (triggers::IsValidFunctionName(name)) ReadKey(name);
        }
        last_resync_ms_ = uv_now(loop_);
        MaybeCollectArtifacts();
      });
}

void ClusterSync::ReadKey(const std::string& name) {
  auto [it, inserted] = reading_.try_emplace(name);
  if (!inserted) {
    it->second.again = true;
    return;
  }
  const std::string bucket = FunctionsBucket();
  Api("$JS.API.STREAM.MSG.GET.KV_" + bucket,
      "{\"last_by_subj\":" + JsonQuote("$KV." + bucket + "." + name) + "}", {},
      [this, name](Status s, triggers::BrokerMessage reply) {
        OnValue(name, std::move(s), std::move(reply));
      });
}

void ClusterSync::DoneReading(const std::string& name) {
  auto it = reading_.find(name);
  if (it == reading_.end()) return;
  const bool again = it->second.again;
  reading_.erase(it);
  if (again && !closed_) ReadKey(name);
}

void ClusterSync::OnValue(const std::string& name, Status s, triggers::BrokerMessage reply) {
  if (closed_) return;
  jetstream::MsgGetReply got;
  if (s.ok() && !ParseJetStreamReply(reply.data, &got)) {
    s = Status::Corruption("unreadable reply '" + reply.data.substr(0, 200) + "'");
  }
  const bool missing = s.ok() && got.has_error() && got.error().err_code() == kJsNoMessageFound;
  if (s.ok() && got.has_error() && !missing) s = JetStreamFailure("read", got.error());
  if (!s.ok()) {
    std::fprintf(stderr, "wisp: cluster %s: reading %s: %s\n", cluster_.c_str(), name.c_str(),
                 s.ToString().c_str());
    return DoneReading(name);
  }
  const uint64_t seq = missing ? 0 : got.message().seq();
  auto known = revisions_.find(name);
  if (known != revisions_.end() && known->second >= seq && seq != 0) return DoneReading(name);
  if (missing || IsDeleteMarker(got.message().hdrs())) {
    revisions_[name] = seq;
    NoteShared(name, "");
    if (hooks_.current(name) != nullptr) {
      Status removed = hooks_.remove(name);
      if (removed.ok()) {
        ++counters_.removed;
        std::fprintf(stderr, "wisp: cluster %s: removed %s, as another node did\n",
                     cluster_.c_str(), name.c_str());
      }
    }
    return DoneReading(name);
  }
  ApplyDeployment(name, seq, got.message().data());
}

void ClusterSync::ApplyDeployment(const std::string& name, uint64_t seq, const std::string& json) {
  cluster::Deployment deployment;
  FunctionRecord record;
  Status invalid;
  if (!ParseJetStreamReply(json, &deployment)) {
    invalid = Status::InvalidArgument("the value is not a deployment");
  } else if (deployment.name() != name) {
    invalid = Status::InvalidArgument("the value names '" + deployment.name() + "'");
  } else if (!loader::ArtifactStore::IsValidDigest(deployment.version().sha256())) {
    invalid = Status::InvalidArgument("the artifact digest is not a SHA-256");
  } else if (!IsSemver(deployment.version().version())) {
    invalid = Status::InvalidArgument("the version is not semver");
  } else if (deployment.version().size_bytes() == 0 ||
             deployment.version().size_bytes() > max_artifact_bytes_) {
    invalid = Status::InvalidArgument("the artifact's size is 0 or over the upload limit of " +
                                      std::to_string(max_artifact_bytes_) + " bytes");
  } else if (deployment.chunks() != ChunksFor(deployment.version().size_bytes())) {
    invalid = Status::InvalidArgument("the artifact's size and chunks disagree");
  }
  if (invalid.ok()) {
    ConfigToRecord(deployment.version().config(), &record);
    invalid = CheckSharedConfig(record);
  }
  if (!invalid.ok()) {
    ++counters_.refused;
    NoteShared(name, "");
    revisions_[name] = seq;  // not read again until it changes
    std::fprintf(stderr, "wisp: cluster %s: refusing %s at revision %llu: %s\n", cluster_.c_str(),
                 name.c_str(), static_cast<unsigned long long>(seq), invalid.message().c_str());
    return DoneReading(name);
  }
  NoteShared(name, deployment.version().sha256());
  record.name = name;
  record.version = deployment.version().version();
  record.sha256 = deployment.version().sha256();
  record.size_bytes = deployment.version().size_bytes();
  record.deployed_at = deployment.version().deployed_at();
  const FunctionRecord* here = hooks_.current(name);
  if (here != nullptr && here->version == record.version && here->sha256 == record.sha256) {
    revisions_[name] = seq;
    return DoneReading(name);
  }
  if (artifacts_->Contains(record.sha256)) {
    Status s = hooks_.apply(record);
    if (s.ok()) {
      revisions_[name] = seq;
      ++counters_.applied;
    } else {
      std::fprintf(stderr, "wisp: cluster %s: applying %s %s: %s\n", cluster_.c_str(),
                   name.c_str(), record.version.c_str(), s.ToString().c_str());
    }
    return DoneReading(name);
  }
  FetchArtifact(std::move(record), seq, deployment.chunks());
}

void ClusterSync::FetchArtifact(FunctionRecord record, uint64_t seq, uint32_t chunks) {
  struct Gathering {
    std::vector<std::string> pieces;
    uint32_t pending = 0;
    Status failure;
  };
  auto gathering = std::make_shared<Gathering>();
  gathering->pieces.resize(chunks);
  gathering->pending = chunks;
  const std::string bucket = ArtifactsBucket();
  auto record_ptr = std::make_shared<FunctionRecord>(std::move(record));
  for (uint32_t i = 0; i < chunks; ++i) {
    const std::string key = record_ptr->sha256 + "." + std::to_string(i);
    Api("$JS.API.STREAM.MSG.GET.KV_" + bucket,
        "{\"last_by_subj\":" + JsonQuote("$KV." + bucket + "." + key) + "}", {},
        [this, gathering, record_ptr, seq, i, key](Status s, triggers::BrokerMessage reply) {
          if (closed_) return;
          jetstream::MsgGetReply got;
          if (s.ok() && !ParseJetStreamReply(reply.data, &got)) {
            s = Status::Corruption("unreadable reply");
          }
          if (s.ok() && got.has_error()) s = JetStreamFailure("read " + key, got.error());
          // A piece over the chunk size is refused as it arrives, so a hostile
          // bucket cannot make this node hold more than the declared size.
          if (s.ok() && got.message().data().size() > kChunkBytes) {
            s = Status::Corruption(key + " is larger than a chunk");
          }
          if (s.ok()) gathering->pieces[i] = got.message().data();
          if (!s.ok() && gathering->failure.ok()) gathering->failure = s;
          if (--gathering->pending > 0) return;
          const FunctionRecord& record = *record_ptr;
          const std::string& name = record.name;
          if (!gathering->failure.ok()) {
            std::fprintf(stderr, "wisp: cluster %s: fetching the artifact of %s %s: %s\n",
                         cluster_.c_str(), name.c_str(), record.version.c_str(),
                         gathering->failure.ToString().c_str());
            return DoneReading(name);
          }
          std::string bytes;
          bytes.reserve(record.size_bytes);
          for (std::string& piece : gathering->pieces) bytes += piece;
          const std::string digest = loader::Sha256Hex(bytes);
          if (bytes.size() != record.size_bytes || digest != record.sha256) {
            ++counters_.refused;
            revisions_[name] = seq;
            std::fprintf(stderr,
                         "wisp: cluster %s: refusing %s %s: its artifact's SHA-256 is %.12s "
                         "(%zu bytes), not %.12s (%llu bytes); still serving what was here\n",
                         cluster_.c_str(), name.c_str(), record.version.c_str(), digest.c_str(),
                         bytes.size(), record.sha256.c_str(),
                         static_cast<unsigned long long>(record.size_bytes));
            return DoneReading(name);
          }
          std::string stored;
          Status put = artifacts_->Put(bytes, &stored);
          if (put.ok()) put = hooks_.apply(record);
          if (put.ok()) {
            revisions_[name] = seq;
            ++counters_.applied;
          } else {
            std::fprintf(stderr, "wisp: cluster %s: applying %s %s: %s\n", cluster_.c_str(),
                         name.c_str(), record.version.c_str(), put.ToString().c_str());
          }
          DoneReading(name);
        });
  }
}

void ClusterSync::NoteShared(const std::string& name, const std::string& sha256) {
  shared_sha_[name] = sha256;
  if (!sha256.empty()) unnamed_since_.erase(sha256);
}

void ClusterSync::PutValue(const std::string& name, const std::string& sha256, std::string value,
                           triggers::Headers headers, std::function<void(Status)> done) {
  auto known = revisions_.find(name);
  headers.emplace_back("Nats-Expected-Last-Subject-Sequence",
                       std::to_string(known == revisions_.end() ? 0 : known->second));
  Api("$KV." + FunctionsBucket() + "." + name, std::move(value), std::move(headers),
      [this, name, sha256, done = std::move(done)](Status s, triggers::BrokerMessage reply) {
        jetstream::PubAck ack;
        s = PubAckStatus(std::move(s), reply.data, "put " + name, &ack);
        if (!s.ok() && ack.has_error()) {
          if (ack.error().err_code() == kJsWrongLastSequence) {
            ++counters_.conflicts;
            if (!closed_) ReadKey(name);  // take the other node's version
            return done(Status::AlreadyExists("another node changed " + name +
                                              " at the same time; its change is kept"));
          }
        }
        if (s.ok()) {
          revisions_[name] = ack.seq();
          NoteShared(name, sha256);
        }
        done(s);
      });
}

Status ClusterSync::CheckWritable() const {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  if (closed_) return Status::Unavailable("this node is leaving cluster " + cluster_);
  if (!buckets_ready_) {
    return Status::Unavailable("this node is still joining cluster " + cluster_ +
                               " (its JetStream buckets are not ready yet)");
  }
  return Status::OK();
}

void ClusterSync::Publish(const FunctionRecord& record, std::function<void(Status)> done) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  if (Status writable = CheckWritable(); !writable.ok()) return done(writable);
  StatusOr<std::string> bytes = artifacts_->Read(record.sha256);
  if (!bytes.ok()) return done(bytes.status());
  cluster::Deployment deployment;
  deployment.set_name(record.name);
  deployment.set_origin(node_);
  api::FunctionVersion* version = deployment.mutable_version();
  version->set_version(record.version);
  version->set_sha256(record.sha256);
  version->set_size_bytes(record.size_bytes);
  version->set_deployed_at(record.deployed_at);
  version->set_current(true);
  RecordToConfig(record, version->mutable_config());
  const uint32_t chunks = ChunksFor(bytes->size());
  deployment.set_chunks(chunks);
  struct Sending {
    uint32_t pending = 0;
    Status failure;
  };
  auto sending = std::make_shared<Sending>();
  sending->pending = chunks;
  auto value = std::make_shared<std::string>(ToJson(deployment, false));
  auto shared_done = std::make_shared<std::function<void(Status)>>(std::move(done));
  const std::string name = record.name;
  const std::string sha256 = record.sha256;
  // Named from now on, so a collection does not take it while it is written.
  unnamed_since_.erase(sha256);
  for (uint32_t i = 0; i < chunks; ++i) {
    const std::string key = record.sha256 + "." + std::to_string(i);
    // Put again on every publish (no Nats-Msg-Id): a chunk someone stored
    // under this key before is replaced, never kept in place of this one.
    Api("$KV." + ArtifactsBucket() + "." + key,
        bytes->substr(size_t{i} * kChunkBytes, kChunkBytes), {},
        [this, sending, value, shared_done, name, sha256, key](Status s,
                                                                triggers::BrokerMessage reply) {
          jetstream::PubAck ack;
          s = PubAckStatus(std::move(s), reply.data, "put " + key, &ack);
          if (!s.ok() && sending->failure.ok()) sending->failure = s;
          if (--sending->pending > 0) return;
          if (!sending->failure.ok()) return (*shared_done)(sending->failure);
          PutValue(name, sha256, *value, {}, *shared_done);
        });
  }
}

void ClusterSync::PublishRemoval(const std::string& name, std::function<void(Status)> done) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  if (Status writable = CheckWritable(); !writable.ok()) return done(writable);
  PutValue(name, "", "", {{"KV-Operation", "DEL"}}, std::move(done));
}

void ClusterSync::Close(std::function<void()> on_closed) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  closed_ = true;
  if (hints_ != 0) broker_->Unsubscribe(hints_);
  hints_ = 0;
  CloseOwnedTimer(timer_, std::move(on_closed));
  timer_ = nullptr;
}

}  // namespace wisp::runtime
