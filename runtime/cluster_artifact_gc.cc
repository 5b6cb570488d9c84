// ClusterSync's collection of artifacts no key names any more (the comment
// in cluster_sync.h says when and why it is safe).
#include <algorithm>
#include <cstdio>
#include <set>

#include "jetstream.pb.h"
#include "runtime/cluster_sync.h"
#include "runtime/jetstream_api.h"
#include "runtime/json_print.h"

namespace wisp::runtime {

void ClusterSync::MaybeCollectArtifacts() {
  const uint64_t now = uv_now(loop_);
  const uint64_t every = std::min(kGcEveryMs, artifact_grace_ms_);
  if (collecting_ || closed_ || (last_gc_ms_ != 0 && now - last_gc_ms_ < every)) return;
  collecting_ = true;
  // The keys as the bucket holds them now, not as the last pass saw them.
  const std::string bucket = FunctionsBucket();
  Api("$JS.API.STREAM.INFO.KV_" + bucket,
      "{\"subjects_filter\":" + JsonQuote("$KV." + bucket + ".>") + "}", {},
      [this, bucket](Status s, triggers::BrokerMessage reply) {
        jetstream::StreamInfoWithState info;
        if (closed_ || !s.ok() || !ParseJetStreamReply(reply.data, &info) || info.has_error()) {
          collecting_ = false;  // tried again after the next pass
          return;
        }
        const std::string prefix = "$KV." + bucket + ".";
        std::vector<std::string> names;
        for (const auto& [subject, count] : info.state().subjects()) {
          if (subject.size() > prefix.size() && subject.compare(0, prefix.size(), prefix) == 0) {
            names.push_back(subject.substr(prefix.size()));
          }
        }
        CollectArtifacts(names);
      });
}

void ClusterSync::CollectArtifacts(const std::vector<std::string>& names) {
  std::set<std::string> named;
  for (const std::string& name : names) {
    auto it = shared_sha_.find(name);
    // A key not read yet, or being read, might name any artifact.
    if (it == shared_sha_.end() || reading_.count(name) != 0) {
      collecting_ = false;
      return;
    }
    if (!it->second.empty()) named.insert(it->second);
  }
  const std::string bucket = ArtifactsBucket();
  Api("$JS.API.STREAM.INFO.KV_" + bucket,
      "{\"subjects_filter\":" + JsonQuote("$KV." + bucket + ".>") + "}", {},
      [this, bucket, named](Status s, triggers::BrokerMessage reply) {
        collecting_ = false;
        jetstream::StreamInfoWithState info;
        if (closed_ || !s.ok() || !ParseJetStreamReply(reply.data, &info) || info.has_error()) {
          return;
        }
        last_gc_ms_ = uv_now(loop_);
        const std::string prefix = "$KV." + bucket + ".";
        std::set<std::string> stored;
        for (const auto& [subject, count] : info.state().subjects()) {
          if (subject.size() <= prefix.size() || subject.compare(0, prefix.size(), prefix) != 0) {
            continue;
          }
          const std::string key = subject.substr(prefix.size());
          const std::string sha256 = key.substr(0, key.find('.'));
          if (loader::ArtifactStore::IsValidDigest(sha256)) stored.insert(sha256);
        }
        // Forget what is gone or named again; time what is unnamed.
        for (auto it = unnamed_since_.begin(); it != unnamed_since_.end();) {
          const bool keep = stored.count(it->first) != 0 && named.count(it->first) == 0;
          it = keep ? std::next(it) : unnamed_since_.erase(it);
        }
        const uint64_t now = uv_now(loop_);
        for (const std::string& sha256 : stored) {
          if (named.count(sha256) != 0) continue;
          auto [since, first_seen] = unnamed_since_.try_emplace(sha256, now);
          if (!first_seen && now - since->second >= artifact_grace_ms_) PurgeArtifact(sha256);
        }
      });
}

void ClusterSync::PurgeArtifact(const std::string& sha256) {
  const std::string bucket = ArtifactsBucket();
  Api("$JS.API.STREAM.PURGE.KV_" + bucket,
      "{\"filter\":" + JsonQuote("$KV." + bucket + "." + sha256 + ".>") + "}", {},
      [this, sha256](Status s, triggers::BrokerMessage reply) {
        jetstream::PurgeReply purged;
        if (s.ok() && !ParseJetStreamReply(reply.data, &purged)) {
          s = Status::Corruption("JetStream stream purge: unreadable reply");
        }
        if (s.ok() && purged.has_error()) s = JetStreamFailure("purge", purged.error());
        if (!s.ok()) {
          std::fprintf(stderr, "wisp: cluster %s: removing artifact %.12s: %s\n", cluster_.c_str(),
                       sha256.c_str(), s.ToString().c_str());
          return;
        }
        unnamed_since_.erase(sha256);
        if (purged.purged() == 0) return;  // another node was first
        ++counters_.artifacts_removed;
        std::fprintf(stderr,
                     "wisp: cluster %s: removed artifact %.12s (%llu chunks) from the bucket: no "
                     "function has named it for %llu s\n",
                     cluster_.c_str(), sha256.c_str(),
                     static_cast<unsigned long long>(purged.purged()),
                     static_cast<unsigned long long>(artifact_grace_ms_ / 1000));
      });
}

}  // namespace wisp::runtime
