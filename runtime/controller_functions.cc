// The controller's /v1/functions API: deploy (PUT), rollback, remove,
// list and describe, and the versions each deploy keeps.

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "api.pb.h"
#include "loader/elf_validator.h"
#include "runtime/base/time_format.h"
#include "runtime/controller.h"
#include "runtime/deploy_params.h"
#include "runtime/json_print.h"
#include "triggers/query.h"

namespace wisp::runtime {
namespace {

std::string NowRfc3339() {
  char buf[32];
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

int HttpStatusFor(const Status& s) {
  switch (s.code()) {
    case Status::Code::kInvalidArgument: return 400;
    case Status::Code::kNotFound: return 404;
    case Status::Code::kAlreadyExists: return 409;
    case Status::Code::kResourceExhausted: return 413;
    case Status::Code::kUnavailable: return 503;
    case Status::Code::kTimeout: return 504;
    default: return 500;
  }
}

}  // namespace

void Controller::HandleDeploy(triggers::ReplyToken token, const std::string& name,
                              triggers::HttpRequest& request) {
  FunctionRecord record;
  record.name = name;
  record.timeout_ms = options_.default_timeout_ms;
  record.idle_ms = options_.default_idle_ms;
  record.max_workers = options_.default_max_workers;
  record.limits.max_request_bytes =
      std::min<uint64_t>(options_.max_request_bytes, kMaxPayloadLimitBytes);
  record.version.clear();
  Status s = ApplyDeployQuery(request.query, &record);
  if (!s.ok()) return ReplyError(token, 400, "invalid_argument", s.message());
  if (request.body.empty()) {
    return ReplyError(token, 400, "invalid_function", "the request body must be the function's .so file");
  }
  if (RefusedUntilClusterWritable(token)) return;
  s = loader::ValidateSharedObject(request.body);
  if (!s.ok()) {
    return ReplyError(token, 400, "invalid_function", "refusing " + name + ": " + s.message());
  }
  s = artifacts_->Put(request.body, &record.sha256);
  if (!s.ok()) return ReplyError(token, 500, "storage_error", s.message());
  record.size_bytes = request.body.size();
  record.deployed_at = NowRfc3339();
  auto existing = functions_.find(name);
  if (record.version.empty()) {
    // The patch after the newest deploy (not after the current version: after
    // a rollback that one's successor exists already), skipping taken ones.
    StatusOr<std::vector<FunctionRecord>> versions = store_.Versions(name);
    if (!versions.ok()) {
      RemoveArtifactIfUnused(record.sha256);
      return ReplyError(token, 500, "storage_error", versions.status().message());
    }
    record.version = versions->empty() ? "0.0.1" : NextPatch(versions->back().version);
    auto taken = [&versions](const std::string& v) {
      return std::any_of(versions->begin(), versions->end(),
                         [&v](const FunctionRecord& r) { return r.version == v; });
    };
    for (int i = 0; taken(record.version) && i < 1000; ++i) record.version = NextPatch(record.version);
  }
  s = store_.Put(record);
  if (!s.ok()) {
    RemoveArtifactIfUnused(record.sha256);
    if (s.code() == Status::Code::kAlreadyExists) {
      return ReplyError(token, 409, "version_exists", s.message());
    }
    return ReplyError(token, 500, "storage_error", s.message());
  }
  Install(record);  // the previous version drains; it stays stored for rollback
  PruneOldVersions(name);
  std::fprintf(stderr, "wisp: deployed %s (sha256 %.12s, %llu bytes)\n", name.c_str(),
               record.sha256.c_str(), static_cast<unsigned long long>(record.size_bytes));
  const int status = existing == functions_.end() ? 201 : 200;
  auto answer = [this, token, name, status]() {
    if (jetstream_ == nullptr) {
      auto it = functions_.find(name);
      if (it == functions_.end()) {
        return ReplyError(token, 409, "function_removed", name + " was removed while it was deployed");
      }
      return ReplyJson(token, status, DescribeJson(*it->second, false));
    }
    // Answered once its JetStream consumers exist: events published after
    // the deploy reach it.
    jetstream_->WhenReady(name, [this, token, name, status](Status ready) {
      auto it = functions_.find(name);
      if (it == functions_.end()) {
        return ReplyError(token, 409, "function_removed", name + " was removed while it was deployed");
      }
      if (!ready.ok()) {
        return ReplyError(token, 503, "jetstream_unavailable",
                          name + " is stored, but its durable triggers cannot take events yet: " +
                              ready.message() + " (wisp keeps trying)");
      }
      ReplyJson(token, status, DescribeJson(*it->second, false));
    });
  };
  if (cluster_ == nullptr) return answer();
  // Shared with the cluster before it is answered: once the client has its
  // answer, every node can read the new version.
  cluster_->Publish(record, [this, token, name, answer](Status shared) {
    if (!shared.ok()) {
      return ReplyError(token, HttpStatusFor(shared), "cluster_error",
                        name + " is deployed here, but not shared with the cluster: " +
                            shared.message());
    }
    answer();
  });
}

void Controller::PruneOldVersions(const std::string& name) {
  StatusOr<std::vector<std::string>> pruned = store_.PruneVersions(name, kVersionsKept);
  if (!pruned.ok()) {
    std::fprintf(stderr, "wisp: keeping old versions of %s: %s\n", name.c_str(),
                 pruned.status().ToString().c_str());
    return;
  }
  for (const std::string& sha256 : *pruned) RemoveArtifactIfUnused(sha256);
}

void Controller::HandleRollback(triggers::ReplyToken token, const std::string& name,
                                const triggers::HttpRequest& request) {
  auto it = functions_.find(name);
  if (it == functions_.end()) {
    return ReplyError(token, 404, "function_not_found", "no function named '" + name + "' is deployed");
  }
  triggers::QueryParams params;
  Status s = triggers::ParseQuery(request.query, &params);
  if (!s.ok()) return ReplyError(token, 400, "invalid_argument", s.message());
  std::string to;
  for (const auto& [key, value] : params) {
    if (key != "to") {
      return ReplyError(token, 400, "invalid_argument",
                        "unknown rollback parameter '" + key + "' (known: to)");
    }
    if (!to.empty()) return ReplyError(token, 400, "invalid_argument", "to is given twice");
    if (!IsSemver(value)) {
      return ReplyError(token, 400, "invalid_version",
                        "to must be a semver version, got '" + value + "'");
    }
    to = value;
  }
  StatusOr<std::vector<FunctionRecord>> versions = store_.Versions(name);
  if (!versions.ok()) return ReplyError(token, 500, "storage_error", versions.status().message());
  const std::string& current = it->second->record.version;
  const FunctionRecord* target = nullptr;
  if (to.empty()) {
    // The version deployed just before the current one.
    for (size_t i = 0; i < versions->size(); ++i) {
      if ((*versions)[i].version == current) {
        if (i > 0) target = &(*versions)[i - 1];
        break;
      }
    }
    if (target == nullptr) {
      return ReplyError(token, 409, "nothing_to_roll_back",
                        name + " " + current + " has no earlier version to roll back to");
    }
  } else {
    for (const FunctionRecord& v : *versions) {
      if (v.version == to) target = &v;
    }
    if (target == nullptr) {
      return ReplyError(token, 404, "version_not_found", name + " has no version " + to);
    }
    if (to == current) {
      return ReplyError(token, 409, "already_current", name + " " + to + " is already current");
    }
  }
  if (!artifacts_->Contains(target->sha256)) {
    return ReplyError(token, 500, "storage_error",
                      "the artifact of " + name + " " + target->version + " is missing");
  }
  if (RefusedUntilClusterWritable(token)) return;
  s = store_.SetCurrent(name, target->version);
  if (!s.ok()) return ReplyError(token, HttpStatusFor(s), "storage_error", s.message());
  std::fprintf(stderr, "wisp: rolled %s back from %s to %s\n", name.c_str(), current.c_str(),
               target->version.c_str());
  Install(*target);
  if (cluster_ == nullptr) return ReplyJson(token, 200, DescribeJson(*functions_[name], false));
  cluster_->Publish(*target, [this, token, name](Status shared) {
    auto it = functions_.find(name);
    if (!shared.ok() || it == functions_.end()) {
      return ReplyError(token, shared.ok() ? 409 : HttpStatusFor(shared), "cluster_error",
                        name + " is rolled back here, but not in the cluster: " +
                            (shared.ok() ? "it was removed meanwhile" : shared.message()));
    }
    ReplyJson(token, 200, DescribeJson(*it->second, false));
  });
}

void Controller::HandleRemove(triggers::ReplyToken token, const std::string& name) {
  auto it = functions_.find(name);
  if (it == functions_.end()) {
    return ReplyError(token, 404, "function_not_found", "no function named '" + name + "' is deployed");
  }
  if (RefusedUntilClusterWritable(token)) return;
  const std::string json = DescribeJson(*it->second, false);
  Status s = RemoveFunction(name);
  if (!s.ok()) return ReplyError(token, HttpStatusFor(s), "storage_error", s.message());
  if (cluster_ == nullptr) return ReplyJson(token, 200, json);
  cluster_->PublishRemoval(name, [this, token, name, json](Status shared) {
    if (!shared.ok()) {
      return ReplyError(token, HttpStatusFor(shared), "cluster_error",
                        name + " is removed here, but not from the cluster: " + shared.message());
    }
    ReplyJson(token, 200, json);
  });
}

Status Controller::RemoveFunction(const std::string& name) {
  auto it = functions_.find(name);
  if (it == functions_.end()) return Status::NotFound("no function named '" + name + "' is deployed");
  Status s = store_.Remove(name);
  if (!s.ok() && s.code() != Status::Code::kNotFound) return s;
  std::unique_ptr<Deployed> deployed = std::move(it->second);
  functions_.erase(it);
  events_->Unbind(name);
  if (durable_) durable_->Remove(name);
  if (jetstream_) jetstream_->Remove(name);
  if (timers_) timers_->Unbind(name);
  metrics_.Forget(name);
  Retire(name, std::move(deployed->dispatcher), deployed->counters, deployed->record.sha256);
  std::fprintf(stderr, "wisp: removed %s\n", name.c_str());
  return Status::OK();
}

void Controller::Describe(const Deployed& deployed, bool with_status, api::Function* fn) const {
  fn->set_name(deployed.record.name);
  fn->set_sha256(deployed.record.sha256);
  fn->set_size_bytes(deployed.record.size_bytes);
  fn->set_deployed_at(deployed.record.deployed_at);
  fn->set_version(deployed.record.version);
  DescribeConfig(deployed.record, fn->mutable_config());
  if (with_status) {
    api::FunctionStatus* st = fn->mutable_status();
    for (int pid : deployed.dispatcher->WorkerPids()) st->add_worker_pids(pid);
    st->set_loaded(st->worker_pids_size() > 0);
    st->set_loads(deployed.counters->loads);
    st->set_invocations(deployed.counters->invocations);
    st->set_errors(deployed.counters->errors);
    st->set_queue_depth(static_cast<uint32_t>(deployed.dispatcher->queue_depth()));
    if (timers_ != nullptr && timers_->NextTick(deployed.record.name) >= 0) {
      fn->mutable_config()->set_next_tick(
          FormatUnixMicros(timers_->NextTick(deployed.record.name) * 1000));
    }
    if (event_queue_ != nullptr) {
      StatusOr<size_t> waiting = event_queue_->Depth(deployed.record.name);
      StatusOr<size_t> dead = event_queue_->DeadLetterCount(deployed.record.name);
      if (waiting.ok()) st->set_waiting_events(*waiting);
      if (dead.ok()) st->set_dead_letters(*dead);
      if (jetstream_ != nullptr) {
        st->set_dead_letters(st->dead_letters() +
                             jetstream_->dead_letters().Count(deployed.record.name));
      }
    }
  }
}

void Controller::DescribeConfig(const FunctionRecord& record, api::FunctionConfig* config) {
  config->set_private_(record.is_private);
  for (const std::string& subject : record.subjects) config->add_subjects(subject);
  config->set_timeout_ms(static_cast<uint32_t>(record.timeout_ms));
  config->set_idle_ms(static_cast<uint32_t>(record.idle_ms));
  config->set_max_workers(record.max_workers);
  for (const auto& [key, value] : record.env) (*config->mutable_env())[key] = value;
  config->set_every_ms(static_cast<uint32_t>(record.every_ms));
  config->set_cron(record.cron);
  config->set_memory_bytes(record.limits.memory_bytes);
  config->set_cpu_ms(record.limits.cpu_ms);
  config->set_open_files(record.limits.open_files);
  config->set_processes(record.limits.processes);
  config->set_max_request_bytes(record.limits.max_request_bytes);
  config->set_max_reply_bytes(record.limits.max_reply_bytes);
  config->set_max_events(record.limits.max_events);
  if (record.durable) {
    config->set_durable(true);
    config->set_max_attempts(record.max_attempts);
    config->set_backoff_ms(static_cast<uint32_t>(record.backoff_ms));
    config->set_max_backoff_ms(static_cast<uint32_t>(record.max_backoff_ms));
    config->set_dead_letter(record.dead_letter.empty() ? "wisp.dlq." + record.name
                                                       : record.dead_letter);
  }
}

std::string Controller::DescribeJson(const Deployed& deployed, bool with_status) const {
  api::Function fn;
  Describe(deployed, with_status, &fn);
  return ToJson(fn);
}

void Controller::HandleList(triggers::ReplyToken token) {
  api::FunctionList list;
  for (const auto& [name, deployed] : functions_) Describe(*deployed, true, list.add_functions());
  ReplyJson(token, 200, ToJson(list));
}

void Controller::HandleDescribe(triggers::ReplyToken token, const std::string& name) {
  auto it = functions_.find(name);
  if (it == functions_.end()) {
    return ReplyError(token, 404, "function_not_found", "no function named '" + name + "' is deployed");
  }
  api::Function fn;
  Describe(*it->second, true, &fn);
  StatusOr<std::vector<FunctionRecord>> versions = store_.Versions(name);
  if (!versions.ok()) return ReplyError(token, 500, "storage_error", versions.status().message());
  for (const FunctionRecord& v : *versions) {
    api::FunctionVersion* out = fn.add_versions();
    out->set_version(v.version);
    out->set_sha256(v.sha256);
    out->set_size_bytes(v.size_bytes);
    out->set_deployed_at(v.deployed_at);
    DescribeConfig(v, out->mutable_config());
    out->set_current(v.version == it->second->record.version);
  }
  ReplyJson(token, 200, ToJson(fn));
}

}  // namespace wisp::runtime
