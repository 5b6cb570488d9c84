// The controller as one node of a cluster (--cluster): deployments shared
// with the other nodes through runtime/cluster_sync.h.
#include <unistd.h>

#include <cstdio>

#include "runtime/controller.h"

namespace wisp::runtime {

Status Controller::StartCluster() {
  if (options_.cluster.empty()) return Status::OK();
  if (options_.nats_urls.empty()) {
    return Status::InvalidArgument("--cluster needs --nats: the nodes of a cluster share "
                                   "deployments through JetStream");
  }
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  const std::string node = std::string(host) + ":" + std::to_string(::getpid());
  ClusterSync::Hooks hooks;
  hooks.current = [this](const std::string& name) -> const FunctionRecord* {
    auto it = functions_.find(name);
    return it == functions_.end() ? nullptr : &it->second->record;
  };
  hooks.apply = [this](const FunctionRecord& record) { return ApplyFromCluster(record); };
  hooks.remove = [this](const std::string& name) { return RemoveFunction(name); };
  cluster_ = std::make_unique<ClusterSync>(loop_, broker_.get(), requests_.get(), artifacts_.get(),
                                           options_.cluster, options_.cluster_replicas, node,
                                           options_.max_upload_bytes, options_.cluster_gc_after_ms,
                                           std::move(hooks));
  WISP_RETURN_IF_ERROR(cluster_->Start().WithContext("join cluster " + options_.cluster));
  CallForwarding::Hooks forward;
  forward.dispatcher = [this](const std::string& name) -> Dispatcher* {
    auto it = functions_.find(name);
    return it == functions_.end() ? nullptr : it->second->dispatcher.get();
  };
  forward.names = [this] {
    std::vector<std::string> names;
    names.reserve(functions_.size());
    for (const auto& [name, deployed] : functions_) names.push_back(name);
    return names;
  };
  forward.run = [this](const std::string& name, proto::Invoke invoke, InvocationDone done) {
    auto it = functions_.find(name);
    if (it == functions_.end()) {
      InvocationOutcome outcome;
      outcome.http_status = 404;
      outcome.error_code = "function_not_found";
      outcome.error_message = "no function named '" + name + "' is deployed";
      return done(std::move(outcome));
    }
    RunInvocation(name, it->second->dispatcher.get(), std::move(invoke), std::move(done));
  };
  forwarding_ = std::make_unique<CallForwarding>(loop_, broker_.get(), requests_.get(),
                                                 options_.cluster, node, options_.max_request_bytes,
                                                 std::move(forward));
  return forwarding_->Start();
}

Status Controller::ApplyFromCluster(const FunctionRecord& record) {
  Status s = store_.Put(record);
  // A version this node has stored already (deployed here, or a rollback
  // elsewhere) is made current again.
  if (s.code() == Status::Code::kAlreadyExists) s = store_.SetCurrent(record.name, record.version);
  if (!s.ok()) return s;
  Install(record);
  PruneOldVersions(record.name);
  std::fprintf(stderr, "wisp: deployed %s %s from cluster %s (sha256 %.12s)\n", record.name.c_str(),
               record.version.c_str(), options_.cluster.c_str(), record.sha256.c_str());
  return Status::OK();
}

}  // namespace wisp::runtime
