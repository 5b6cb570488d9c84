#include "runtime/controller.h"

#include <malloc.h>
#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "api.pb.h"
#include "runtime/auth_token.h"
#include "runtime/base/ascii.h"
#include "runtime/base/random.h"
#include "runtime/base/time_format.h"
#include "runtime/base/uv_timer.h"
#include "runtime/health_json.h"
#include "runtime/json_print.h"
#include "runtime/trace_context.h"
#include "dashboard_html.h"
#include "triggers/embedded_broker.h"
#include "triggers/nats_module.h"
#include "triggers/query.h"
#include "wisp/function.h"

namespace wisp::runtime {
namespace {

Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::FromErrno("create directory " + path, errno);
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status::IOError(path + " is not a directory");
  }
  return Status::OK();
}

// The metadata a loaded function's service instance carries.
std::map<std::string, std::string> ServiceMetadata(const FunctionRecord& record) {
  return {{"wisp.sha256", record.sha256}};
}

}  // namespace

Status ParseListenAddress(const std::string& text, std::string* host, int* port) {
  const size_t colon = text.rfind(':');
  uint64_t p = 0;
  if (colon == std::string::npos || colon == 0 ||
      !ParseUint(std::string_view(text).substr(colon + 1), &p) || p > 65535) {
    return Status::InvalidArgument("invalid listen address '" + text +
                                   "': expected HOST:PORT, e.g. 127.0.0.1:8080");
  }
  *host = text.substr(0, colon);
  *port = static_cast<int>(p);
  return Status::OK();
}

Controller::Controller(uv_loop_t* loop, ControllerOptions options)
    : loop_(loop), options_(std::move(options)) {}

Controller::~Controller() = default;

Status Controller::Start() {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  WISP_RETURN_IF_ERROR(MakeDir(options_.data_dir));
  // The token and the database are the controller's alone.
  if (::chmod(options_.data_dir.c_str(), 0700) != 0) {
    return Status::FromErrno("chmod 700 " + options_.data_dir, errno);
  }
  StatusOr<std::string> token = LoadOrCreateToken(options_.data_dir);
  if (!token.ok()) return token.status().WithContext("API token");
  token_ = std::move(token).value();
  invocation_prefix_ = RandomAlphanumeric(8);
  artifacts_ = std::make_unique<loader::ArtifactStore>(options_.data_dir + "/artifacts");
  WISP_RETURN_IF_ERROR(artifacts_->Init());
  WISP_RETURN_IF_ERROR(store_.Open(options_.data_dir + "/wisp.db"));
  if (options_.record_invocations) {
    WISP_RETURN_IF_ERROR(invocation_log_.Open(options_.data_dir + "/wisp.db", options_.retention)
                             .WithContext("invocation log"));
  }
  WorkerIdentities::Options identities = options_.worker_identities;
  identities.data_dir = options_.data_dir;
  identities_ = std::make_unique<WorkerIdentities>(identities);
  WISP_RETURN_IF_ERROR(identities_->Start().WithContext("workers"));
  zygote_ = std::make_unique<Zygote>(loop_, options_.worker_path, options_.worker_spin_us);
  WISP_RETURN_IF_ERROR(zygote_->Start());
  pool_ = std::make_unique<WorkerPool>(loop_, zygote_.get(),
                                       WorkerProcess::Options{kDefaultMaxFrameBytes},
                                       options_.warm_pool_size, options_.warmup_path);
  pool_->set_prepare_ahead([this] { identities_->PrepareNextDir(); });
  pool_->set_seccomp_ahead(identities.seccomp);
  WISP_RETURN_IF_ERROR(StartBroker());
  WISP_RETURN_IF_ERROR(RestoreDeployments());
  WISP_RETURN_IF_ERROR(StartCluster());

  triggers::HttpServerOptions http;
  http.max_body_bytes = std::max(options_.max_request_bytes, options_.max_upload_bytes);
  // Only deploys may upload large bodies; an oversized call or event is
  // refused before its body is buffered.
  // A function's call takes at most its max_request.
  http.body_limit = [this](const triggers::HttpRequest& request) -> size_t {
    const triggers::Route route = triggers::RoutePath(request.path);
    if (route.kind == triggers::Route::Kind::kApiFunction) return options_.max_upload_bytes;
    if (route.kind == triggers::Route::Kind::kFunction ||
        (route.kind == triggers::Route::Kind::kApiFunctionAction && route.rest == "invoke")) {
      auto it = functions_.find(route.name);
      if (it != functions_.end()) return it->second->record.limits.max_request_bytes;
    }
    return options_.max_request_bytes;
  };
  server_ = std::make_unique<triggers::HttpServer>(
      loop_, http, [this](triggers::ReplyToken token, triggers::HttpRequest request) {
        HandleRequest(token, std::move(request));
      });
  log_followers_ = std::make_unique<LogFollowers>(loop_, server_.get(), &invocation_log_);
  WISP_RETURN_IF_ERROR(server_->Listen(options_.listen_host, options_.listen_port));
  pool_->Start();
  local_dead_letters_left_ = jetstream_ != nullptr;
  StartLoopLagTimer();
  // Start-up (reading the stores, parsing descriptors and schemas) freed
  // memory that glibc would keep resident: an idle controller gives it back
  // (about 0.4 MiB).
  malloc_trim(0);
  return Status::OK();
}

int Controller::port() const { return server_ ? server_->port() : 0; }

std::string Controller::InvocationId(uint64_t n) const {
  char hex[16];
  const auto end = std::to_chars(hex, hex + sizeof(hex), n, 16).ptr;
  std::string id;
  id.reserve(invocation_prefix_.size() + 1 + static_cast<size_t>(end - hex));
  id.append(invocation_prefix_).push_back('-');
  id.append(hex, end);
  return id;
}

Status Controller::StartBroker() {
  if (options_.nats_urls.empty()) {
    broker_ = std::make_unique<triggers::EmbeddedBroker>(loop_);
  } else {
    StatusOr<std::unique_ptr<triggers::Broker>> nats =
        triggers::LoadNatsBroker(options_.nats_module_path, loop_, options_.nats_urls);
    if (!nats.ok()) return nats.status().WithContext("connect to NATS at " + options_.nats_urls);
    broker_ = std::move(nats).value();
  }
  events_ = std::make_unique<EventTriggers>(
      loop_, broker_.get(),
      [this](const std::string& name) -> Dispatcher* {
        auto it = functions_.find(name);
        return it == functions_.end() ? nullptr : it->second->dispatcher.get();
      },
      options_.max_request_bytes);
  services_ = std::make_unique<ServiceRegistry>(broker_.get(), events_.get());
  requests_ = std::make_unique<BrokerRequests>(loop_, broker_.get());
  WISP_RETURN_IF_ERROR(requests_->Start());
  // Durable triggers: the embedded broker's events are stored in sqlite;
  // on NATS in JetStream, with the dead letters (and their replays) here.
  auto dispatcher = [this](const std::string& name) -> Dispatcher* {
    auto it = functions_.find(name);
    return it == functions_.end() ? nullptr : it->second->dispatcher.get();
  };
  auto capacity = [this](const std::string& name) -> size_t {
    auto it = functions_.find(name);
    return it == functions_.end() ? 0
                                  : size_t{it->second->record.max_workers} * options_.pipeline_depth;
  };
  event_queue_ = std::make_unique<EventQueue>(loop_);
  WISP_RETURN_IF_ERROR(event_queue_->Open(options_.data_dir + "/events.db"));
  durable_ = std::make_unique<DurableDelivery>(loop_, event_queue_.get(), events_.get(), dispatcher,
                                               capacity);
  if (!options_.nats_urls.empty()) {
    // Fewer held than the local queue hands out: an event held here waits
    // its turn under a lease renewed while it waits, and one held here is
    // one another node could have run.
    auto held = [this](const std::string& name) -> size_t {
      auto it = functions_.find(name);
      return it == functions_.end()
                 ? 0
                 : size_t{it->second->record.max_workers} * JetStreamDelivery::kHeldPerWorker;
    };
    jetstream_ = std::make_unique<JetStreamDelivery>(loop_, broker_.get(), requests_.get(),
                                                     events_.get(), dispatcher, held);
    jetstream_->set_replicas(options_.cluster_replicas);
  }
  timers_ = std::make_unique<TimerTriggers>(
      loop_, [this](const std::string& name, int64_t tick_ms) { FireTimer(name, tick_ms); });
  events_->set_capture([this](triggers::BrokerMessage& message, bool* published) {
    if (jetstream_ != nullptr) return jetstream_->Capture(message, published);
    size_t stored = 0;
    return durable_->Capture(message, &stored);
  });
  if (event_queue_->redelivered() > 0) {
    std::fprintf(stderr, "wisp: %llu durable events were in flight when wisp last stopped; "
                 "they run again\n", static_cast<unsigned long long>(event_queue_->redelivered()));
  }
  return Status::OK();
}

void Controller::FireTimer(const std::string& name, int64_t tick_ms) {
  triggers::BrokerMessage tick;
  tick.subject = "wisp.timer." + name;
  const std::string id = "timer:" + name + ":" + std::to_string(tick_ms);
  tick.headers = {{"ce-id", id},
                  {"ce-source", "/wisp/timer/" + name},
                  {"ce-type", "io.wisp.timer"},
                  {"ce-specversion", "1.0"},
                  {"ce-time", FormatUnixMicros(tick_ms * 1000)},
                  {"content-type", "application/json"}};
  tick.data = "{\"scheduled\":\"" + FormatUnixMicros(tick_ms * 1000) + "\"}";
  // The duplicate window keeps one tick of all the controllers' however each
  // was published: one that fires before this controller knows the stream
  // takes wisp.timer.<name> goes out on core NATS, and another controller's
  // update of the stream may already capture it.
  if (jetstream_ != nullptr) tick.headers.emplace_back("Nats-Msg-Id", id);
  Status s = events_->PublishEvent(std::move(tick));
  if (!s.ok()) {
    std::fprintf(stderr, "wisp: %s: the tick due at %s was not published: %s\n", name.c_str(),
                 FormatUnixMicros(tick_ms * 1000).c_str(), s.ToString().c_str());
  }
}

void Controller::BindTriggers(const FunctionRecord& record) {
  std::vector<std::string> subjects = record.subjects;
  // On NATS a schedule's ticks go through JetStream even for a function
  // that is not durable: each controller publishes the tick, the duplicate
  // window keeps one.
  std::vector<std::string> jetstream_subjects;
  if (record.every_ms > 0 || !record.cron.empty()) {
    const std::string tick_subject = "wisp.timer." + record.name;
    if (jetstream_ != nullptr && !record.durable) {
      jetstream_subjects.push_back(tick_subject);
    } else {
      subjects.push_back(tick_subject);
    }
    Status s = timers_->Bind(record.name, record.every_ms, record.cron);
    if (!s.ok()) {
      std::fprintf(stderr, "wisp: %s has no schedule: %s\n", record.name.c_str(),
                   s.ToString().c_str());
    }
  } else {
    timers_->Unbind(record.name);
  }
  if (record.durable) {
    jetstream_subjects.insert(jetstream_subjects.end(), subjects.begin(), subjects.end());
  }
  Status bound = events_->Bind(record.name, record.durable ? std::vector<std::string>{} : subjects);
  if (!bound.ok()) {
    std::fprintf(stderr, "wisp: %s gets no events: %s\n", record.name.c_str(),
                 bound.ToString().c_str());
  }
  DeliveryPolicy policy;
  policy.max_attempts = record.max_attempts;
  policy.backoff_ms = record.backoff_ms;
  policy.max_backoff_ms = record.max_backoff_ms;
  policy.dead_letter_subject = record.dead_letter;
  if (jetstream_ == nullptr) {
    durable_->Bind(record.name, record.durable ? subjects : std::vector<std::string>{},
                   std::move(policy));
    return;
  }
  // Events a wisp before dead letters were kept in JetStream replayed into
  // the local queue still run from it, under the same policy.
  durable_->Bind(record.name, {}, policy);
  if (!record.durable && jetstream_subjects.empty()) return jetstream_->Remove(record.name);
  if (!record.durable) policy.max_attempts = 1;  // a missed tick is not run again
  // The lease outlasts one run; an event waiting its turn here has its
  // lease renewed while it waits (JetStreamDelivery::RenewLeases).
  const uint64_t lease_ms = record.timeout_ms + JetStreamDelivery::kLeaseMarginMs;
  jetstream_->Bind(record.name, std::move(jetstream_subjects), std::move(policy), lease_ms);
}

void Controller::AfterEventsStored(std::function<void(Status)> done) {
  if (jetstream_ == nullptr) return event_queue_->AfterCommit(std::move(done));
  jetstream_->AfterStored([this, done = std::move(done)](Status stored) mutable {
    if (!stored.ok()) return done(stored);
    event_queue_->AfterCommit(std::move(done));
  });
}

void Controller::OnLoadChanged(const std::string& name, bool loaded) {
  // Versions overlap during a redeploy: the service stays registered while
  // any of them is loaded.
  int& count = loaded_versions_[name];
  count += loaded ? 1 : -1;
  auto it = functions_.find(name);
  const ServiceDescription* registered = services_->Find(name);
  if (count > 0 && loaded && it != functions_.end() &&
      (registered == nullptr ||
       registered->metadata != ServiceMetadata(it->second->record) ||
       registered->version != it->second->record.version)) {
    // First load, or the new version of a redeploy: a new instance.
    const FunctionRecord& record = it->second->record;
    ServiceDescription description;
    description.name = name;
    description.version = record.version;
    description.description = "wisp function " + name;
    description.metadata = ServiceMetadata(record);
    Status s = services_->Register(description);
    if (!s.ok()) std::fprintf(stderr, "wisp: %s\n", s.ToString().c_str());
  } else if (count <= 0) {
    loaded_versions_.erase(name);
    services_->Unregister(name);
  }
}

Status Controller::RestoreDeployments() {
  StatusOr<std::vector<FunctionRecord>> records = store_.List();
  if (!records.ok()) return records.status();
  for (FunctionRecord& record : *records) {
    if (!artifacts_->Contains(record.sha256)) {
      std::fprintf(stderr, "wisp: not serving %s: its artifact %s is missing\n",
                   record.name.c_str(), record.sha256.c_str());
      continue;
    }
    Install(std::move(record));
  }
  return Status::OK();
}

void Controller::Install(FunctionRecord record) {
  FunctionSpec spec;
  spec.name = record.name;
  spec.version = record.version;
  spec.env = record.env;
  spec.artifact_path = artifacts_->PathFor(record.sha256);
  spec.timeout_ms = record.timeout_ms;
  spec.idle_ms = record.idle_ms;
  spec.max_workers = record.max_workers;
  spec.limits = record.limits;
  spec.pipeline_depth = options_.pipeline_depth;
  spec.max_queue = options_.max_queue;

  auto& slot = functions_[record.name];
  std::unique_ptr<Deployed> old = std::move(slot);
  slot = std::make_unique<Deployed>();
  slot->counters = old ? old->counters : std::make_shared<FunctionCounters>();
  slot->dispatcher = std::make_unique<Dispatcher>(loop_, pool_.get(), identities_.get(), spec,
                                                   slot->counters.get());
  slot->dispatcher->set_load_observer(
      [this, name = record.name](bool loaded) { OnLoadChanged(name, loaded); });
  slot->dispatcher->set_completion_observer(
      [this, name = record.name, fm = metrics_.For(record.name)](
          const proto::Invoke& invoke, const InvocationOutcome& outcome) {
        static const std::string kNoError;
        fm->Observe(OutcomeStatus(outcome), outcome.has_result ? kNoError : outcome.error_code,
                    outcome.cold, static_cast<double>(outcome.duration_ns) / 1e9);
        metrics_.CountTrigger(invoke.trigger() == WISP_TRIGGER_EVENT  ? Metrics::Trigger::kEvent
                              : invoke.trigger() == WISP_TRIGGER_CALL ? Metrics::Trigger::kCall
                                                                      : Metrics::Trigger::kHttp);
        if (options_.record_invocations) Record(name, invoke, outcome);
      });
  slot->dispatcher->set_call_handler(
      [this, name = record.name](const proto::Invoke& caller, proto::Call call,
                                 std::function<void(proto::CallReply)> reply) {
        HandleCall(name, caller, std::move(call), std::move(reply));
      });
  if (options_.record_invocations) {
    slot->dispatcher->set_log_observer(
        [this, name = record.name](const std::string& invocation, const std::string& text) {
          RecordLog(name, invocation, text);
        });
  }
  BindTriggers(record);
  slot->record = std::move(record);
  if (old) {
    // Its waiting invocations move to the new version (Drain's successor).
    Retire(slot->record.name, std::move(old->dispatcher), old->counters, old->record.sha256);
  }
}

void Controller::Retire(const std::string& name, std::unique_ptr<Dispatcher> dispatcher,
                        std::shared_ptr<FunctionCounters> counters, std::string sha256) {
  auto retired = std::make_unique<Retired>();
  Dispatcher* raw = dispatcher.get();
  retired->dispatcher = std::move(dispatcher);
  retired->counters = std::move(counters);
  retired_.push_back(std::move(retired));
  ++shutdown_waits_;
  auto successor = [this, name]() -> Dispatcher* {
    auto it = functions_.find(name);
    return it == functions_.end() ? nullptr : it->second->dispatcher.get();
  };
  raw->Drain(
      [this, raw, sha256] {
        for (auto it = retired_.begin(); it != retired_.end(); ++it) {
          if ((*it)->dispatcher.get() == raw) {
            retired_.erase(it);  // destroys the dispatcher
            break;
          }
        }
        // Only now can no worker of this version still be loading its file.
        if (!sha256.empty()) RemoveArtifactIfUnused(sha256);
        --shutdown_waits_;
        MaybeFinishShutdown();
      },
      successor);
}

void Controller::RemoveArtifactIfUnused(const std::string& sha256) {
  StatusOr<int> uses = store_.CountArtifactUses(sha256);
  if (uses.ok() && *uses == 0) (void)artifacts_->Remove(sha256);
}

void Controller::ReplyJson(triggers::ReplyToken token, int status, const std::string& json) {
  triggers::HttpResponse response;
  response.status = status;
  response.headers.emplace_back("Content-Type", "application/json");
  response.body = json;
  server_->Reply(token, std::move(response));
}

void Controller::ReplyError(triggers::ReplyToken token, int status, std::string_view code,
                            std::string_view message) {
  server_->Reply(token, triggers::JsonErrorResponse(status, code, message));
}

bool Controller::RefusedUntilClusterWritable(triggers::ReplyToken token) {
  if (cluster_ == nullptr) return false;
  Status writable = cluster_->CheckWritable();
  if (writable.ok()) return false;
  triggers::HttpResponse response =
      triggers::JsonErrorResponse(503, "cluster_not_ready", writable.message() + "; nothing was changed");
  response.headers.emplace_back("Retry-After", "1");
  server_->Reply(token, std::move(response));
  return true;
}

void Controller::HandleRequest(triggers::ReplyToken token, triggers::HttpRequest request) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  if (shutting_down_) {
    ReplyError(token, 503, "shutting_down", "the controller is shutting down");
    return;
  }
  triggers::Route route = triggers::RoutePath(request.path);
  const std::string& method = request.method;
  // The dashboard page holds no data: every figure it shows comes from /v1/
  // calls made with the token its user gives it.
  bool needs_token = route.kind != triggers::Route::Kind::kHealth &&
                     route.kind != triggers::Route::Kind::kDashboard &&
                     route.kind != triggers::Route::Kind::kFunction;
  if (route.kind == triggers::Route::Kind::kFunction) {
    auto it = functions_.find(route.name);
    needs_token = it != functions_.end() && it->second->record.is_private;
  }
  if (needs_token) {
    const std::string* authorization = request.Header("authorization");
    if (authorization == nullptr || !BearerMatches(*authorization, token_)) {
      triggers::HttpResponse response = triggers::JsonErrorResponse(
          401, "unauthorized",
          authorization == nullptr
              ? "this endpoint needs 'Authorization: Bearer <token>'; the token is in "
                "<data dir>/token"
              : "wrong token");
      response.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"wisp\"");
      server_->Reply(token, std::move(response));
      return;
    }
  }
  switch (route.kind) {
    case triggers::Route::Kind::kHealth: {
      api::Health health;
      health.set_status("ok");
      health.set_version(WISP_VERSION);
      if (events_ != nullptr) {
        const EventTriggerCounters& c = events_->counters();
        api::EventCounters* e = health.mutable_events();
        e->set_broker(broker_->Describe());
        e->set_received(c.received);
        e->set_rejected(c.rejected);
        e->set_failed(c.failed);
        e->set_emitted(c.emitted);
        e->set_emit_refused(c.emit_refused);
        e->set_slow_consumer_dropped(broker_->stats().slow_consumer_dropped);
        if (durable_ != nullptr) {
          const DurableCounters& d = durable_->counters();
          e->set_durable_stored(d.stored);
          e->set_durable_duplicates(d.duplicates);
          e->set_durable_retried(d.retried);
          e->set_durable_dead_lettered(d.dead_lettered);
          e->set_durable_redelivered(d.redelivered);
          StatusOr<size_t> waiting = event_queue_->Depth("");
          if (waiting.ok()) e->set_durable_waiting(*waiting);
        }
        if (jetstream_ != nullptr) {
          // Added to the local queue's (dead letters replayed here).
          const JetStreamCounters& j = jetstream_->counters();
          e->set_durable_stored(e->durable_stored() + j.stored);
          e->set_durable_duplicates(e->durable_duplicates() + j.duplicates);
          e->set_durable_retried(e->durable_retried() + j.retried);
          e->set_durable_dead_lettered(e->durable_dead_lettered() + j.dead_lettered);
          e->set_durable_redelivered(e->durable_redelivered() + j.redelivered);
          e->set_durable_leases_renewed(j.leases_renewed);
          e->set_durable_lost_pulls(j.lost_pulls);
        }
      }
      if (cluster_ != nullptr && forwarding_ != nullptr) {
        api::ClusterState* c = health.mutable_cluster();
        c->set_name(options_.cluster);
        c->set_node(forwarding_->node());
        const ClusterCounters& shared = cluster_->counters();
        c->set_applied(shared.applied);
        c->set_removed(shared.removed);
        c->set_refused(shared.refused);
        c->set_conflicts(shared.conflicts);
        c->set_artifacts_removed(shared.artifacts_removed);
        c->set_joined(cluster_->CheckWritable().ok());
        const ForwardingCounters& f = forwarding_->counters();
        c->set_forwarded(f.forwarded);
        c->set_unplaced(f.unplaced);
        c->set_taken(f.taken);
        c->set_forwards_refused(f.refused);
        for (std::string& name : forwarding_->Offering()) c->add_offering(std::move(name));
      }
      ReplyJson(token, 200, HealthJson(health));
      return;
    }
    case triggers::Route::Kind::kFunction:
      HandleInvoke(token, route.name, std::move(route.rest), std::move(request));
      return;
    case triggers::Route::Kind::kDashboard: {
      if (method != "GET" && method != "HEAD") {
        return ReplyError(token, 405, "method_not_allowed", method + " is not allowed on /ui");
      }
      triggers::HttpResponse page;
      page.headers.emplace_back("Content-Type", "text/html; charset=utf-8");
      page.headers.emplace_back("Cache-Control", "no-store");
      page.headers.emplace_back("X-Content-Type-Options", "nosniff");
      page.headers.emplace_back("Referrer-Policy", "no-referrer");
      page.headers.emplace_back("Content-Security-Policy",
                                "default-src 'self'; script-src 'unsafe-inline'; "
                                "style-src 'unsafe-inline'; frame-ancestors 'none'");
      page.body = std::string(kDashboardHtml);
      server_->Reply(token, std::move(page));
      return;
    }
    case triggers::Route::Kind::kMetrics:
      if (method != "GET") {
        return ReplyError(token, 405, "method_not_allowed", method + " is not allowed on /metrics");
      }
      return HandleMetrics(token);
    case triggers::Route::Kind::kApiFunctions:
      if (method == "GET") return HandleList(token);
      return ReplyError(token, 405, "method_not_allowed", method + " is not allowed on /v1/functions");
    case triggers::Route::Kind::kApiFunction:
      if (!triggers::IsValidFunctionName(route.name)) {
        return ReplyError(token, 400, "invalid_name",
                          "function names match ^[a-z0-9][a-z0-9_-]{0,62}$");
      }
      if (method == "PUT" || method == "POST") return HandleDeploy(token, route.name, request);
      if (method == "GET") return HandleDescribe(token, route.name);
      if (method == "DELETE") return HandleRemove(token, route.name);
      return ReplyError(token, 405, "method_not_allowed",
                        method + " is not allowed on /v1/functions/" + route.name);
    case triggers::Route::Kind::kApiFunctionAction:
      if (!triggers::IsValidFunctionName(route.name)) {
        return ReplyError(token, 400, "invalid_name",
                          "function names match ^[a-z0-9][a-z0-9_-]{0,62}$");
      }
      if (route.rest == "rollback") {
        if (method != "POST") {
          return ReplyError(token, 405, "method_not_allowed", method + " is not allowed here; use POST");
        }
        return HandleRollback(token, route.name, request);
      }
      if (route.rest == "invoke") {
        if (method != "POST") {
          return ReplyError(token, 405, "method_not_allowed", method + " is not allowed here; use POST");
        }
        return HandleInvoke(token, route.name, "/", std::move(request));
      }
      if (route.rest == "dead-letters") {
        if (method != "GET") {
          return ReplyError(token, 405, "method_not_allowed", method + " is not allowed here; use GET");
        }
        return HandleDeadLetters(token, route.name, request);
      }
      if (route.rest == "replay") {
        if (method != "POST") {
          return ReplyError(token, 405, "method_not_allowed", method + " is not allowed here; use POST");
        }
        return HandleReplay(token, route.name, request);
      }
      if (route.rest == "logs") {
        if (method != "GET") {
          return ReplyError(token, 405, "method_not_allowed", method + " is not allowed here; use GET");
        }
        return HandleLogs(token, route.name, request);
      }
      return ReplyError(token, 404, "not_found",
                        "no endpoint at " + request.path +
                            " (actions: rollback, invoke, logs, dead-letters, replay)");
    case triggers::Route::Kind::kApiEvent:
    case triggers::Route::Kind::kApiRequest: {
      if (method != "POST" && method != "PUT") {
        return ReplyError(token, 405, "method_not_allowed", method + " is not allowed here; use POST");
      }
      std::string subject;
      Status s = triggers::PercentDecode(route.name, false, &subject);
      if (s.ok()) s = triggers::ValidatePublishSubject(subject);
      if (!s.ok()) return ReplyError(token, 400, "invalid_subject", s.message());
      return HandlePublish(token, subject, request,
                           route.kind == triggers::Route::Kind::kApiRequest);
    }
    case triggers::Route::Kind::kApiServices:
      if (method != "GET") {
        return ReplyError(token, 405, "method_not_allowed", method + " is not allowed on /v1/services");
      }
      return HandleServices(token, request);
    case triggers::Route::Kind::kApiInvocations:
      if (method != "GET") {
        return ReplyError(token, 405, "method_not_allowed", method + " is not allowed on /v1/invocations");
      }
      return HandleInvocations(token, request);
    case triggers::Route::Kind::kNotFound:
      break;
  }
  ReplyError(token, 404, "not_found", "no endpoint at " + request.path);
}

void Controller::HandleInvoke(triggers::ReplyToken token, const std::string& name,
                              std::string rest, triggers::HttpRequest request) {
  auto it = functions_.find(name);
  if (it == functions_.end()) {
    ReplyError(token, 404, "function_not_found", "no function named '" + name + "' is deployed");
    return;
  }
  if (request.body.size() > options_.max_request_bytes) {
    ReplyError(token, 413, "payload_too_large",
               "request body of " + std::to_string(request.body.size()) +
                   " bytes exceeds the limit of " + std::to_string(options_.max_request_bytes));
    return;
  }
  proto::Invoke invoke;
  invoke.set_trigger(WISP_TRIGGER_HTTP);
  invoke.set_method(std::move(request.method));
  invoke.set_path(std::move(rest));
  invoke.set_query(std::move(request.query));
  invoke.set_body(std::move(request.body));
  invoke.set_attempt(1);
  const uint64_t invocation = ++invocations_started_;
  invoke.set_invocation_id(InvocationId(invocation));
  for (auto& [header_name, value] : request.headers) {
    // wisp's own token authenticates to wisp; function code never sees it.
    if (header_name == "authorization" && BearerMatches(value, token_)) continue;
    proto::Header* h = invoke.add_headers();
    h->set_name(std::move(header_name));
    h->set_value(std::move(value));
  }
  StartInvocationSpan(&invoke);
  Dispatcher* dispatcher = it->second->dispatcher.get();
  if (forwarding_ != nullptr && !dispatcher->has_room()) {
    // Full here: another node of the cluster may have room.
    const uint64_t timeout_ms = dispatcher->spec().timeout_ms + kForwardLoadAllowanceMs;
    Status forwarded = forwarding_->Forward(
        name, invoke, timeout_ms,
        [this, token, invocation](InvocationOutcome outcome, std::string node) {
          ReplyOutcome(token, invocation, std::move(outcome), node);
        });
    if (forwarded.ok()) return;
  }
  RunInvocation(name, dispatcher, std::move(invoke),
                [this, token, invocation](InvocationOutcome outcome) {
                  ReplyOutcome(token, invocation, std::move(outcome));
                });
}

void Controller::RunInvocation(const std::string& name, Dispatcher* dispatcher,
                               proto::Invoke invoke, InvocationDone done) {
  EventTriggers* events = events_.get();
  dispatcher->Submit(
      std::move(invoke), [this, events, name, done = std::move(done)](InvocationOutcome outcome) {
        if (outcome.has_result && outcome.result.events_size() > 0) {
          events->PublishEmitted(name, &outcome);
          if (event_queue_ != nullptr) {
            // Answer once the events it emitted for durable functions are stored.
            return AfterEventsStored(
                [name, done, outcome = std::move(outcome)](Status stored) mutable {
                  if (!stored.ok()) {
                    outcome = InvocationOutcome{};
                    outcome.http_status = 503;
                    outcome.error_code = "event_store_failed";
                    outcome.error_message = "the events " + name +
                                            " emitted could not be stored: " + stored.message();
                  }
                  done(std::move(outcome));
                });
          }
        }
        done(std::move(outcome));
      });
}

void Controller::ReplyOutcome(triggers::ReplyToken token, uint64_t invocation,
                              InvocationOutcome outcome, const std::string& served_by) {
  if (!outcome.has_result) {
    triggers::HttpResponse response = triggers::JsonErrorResponse(
        outcome.http_status, outcome.error_code, outcome.error_message);
    if (outcome.retry_after_s > 0) {
      response.headers.emplace_back("Retry-After", std::to_string(outcome.retry_after_s));
    }
    response.headers.emplace_back("X-Wisp-Invocation-Id", InvocationId(invocation));
    if (!served_by.empty()) response.headers.emplace_back("X-Wisp-Node", served_by);
    server_->Reply(token, std::move(response));
    return;
  }
  proto::Result& result = outcome.result;
  triggers::HttpResponse response;
  response.status = OutcomeStatus(outcome);
  response.headers.reserve(static_cast<size_t>(result.headers_size()) + 2);
  response.headers.emplace_back("X-Wisp-Invocation-Id", InvocationId(invocation));
  if (!served_by.empty()) response.headers.emplace_back("X-Wisp-Node", served_by);
  for (proto::Header& h : *result.mutable_headers()) {
    response.headers.emplace_back(std::move(*h.mutable_name()), std::move(*h.mutable_value()));
  }
  response.body = std::move(*result.mutable_body());
  server_->Reply(token, std::move(response));
}

void Controller::Shutdown(std::function<void()> on_done) {
  WISP_ASSERT_LOOP_THREAD(loop_thread_);
  shutting_down_ = true;
  on_shutdown_ = std::move(on_done);
  if (zygote_) zygote_->StopRestarting();
  // New connections are refused at once; open ones get their in-flight
  // replies (new requests on them get 503) and are closed only after every
  // function has drained, in MaybeFinishShutdown.
  if (server_) server_->StopAccepting();
  if (lag_timer_ != nullptr) {
    ++shutdown_waits_;
    CloseOwnedTimer(lag_timer_, [this] {
      --shutdown_waits_;
      MaybeFinishShutdown();
    });
    lag_timer_ = nullptr;
  }
  if (log_followers_) {
    ++shutdown_waits_;
    log_followers_->Close([this] {
      --shutdown_waits_;
      MaybeFinishShutdown();
    });
  }
  // Events stop coming here at once; on NATS the queue groups' other
  // members take them from now on.
  if (events_) events_->StopReceiving();
  if (timers_) {
    ++shutdown_waits_;
    timers_->Close([this] {
      --shutdown_waits_;
      MaybeFinishShutdown();
    });
  }
  if (durable_) {
    // Nothing new goes out; outcomes still arriving are acknowledged.
    ++shutdown_waits_;
    durable_->Close([this] {
      --shutdown_waits_;
      MaybeFinishShutdown();
    });
  }
  if (jetstream_) {
    ++shutdown_waits_;
    jetstream_->Close([this] {
      --shutdown_waits_;
      MaybeFinishShutdown();
    });
  }
  if (forwarding_) {
    ++shutdown_waits_;
    forwarding_->Close([this] {
      --shutdown_waits_;
      MaybeFinishShutdown();
    });
  }
  if (cluster_) {
    ++shutdown_waits_;
    cluster_->Close([this] {
      --shutdown_waits_;
      MaybeFinishShutdown();
    });
  }
  std::map<std::string, std::unique_ptr<Deployed>> functions = std::move(functions_);
  functions_.clear();  // nothing is handed to a successor any more
  for (auto& [name, deployed] : functions) {
    Retire(name, std::move(deployed->dispatcher), deployed->counters, "");
  }
  if (pool_) {
    ++shutdown_waits_;
    pool_->Close([this] {
      --shutdown_waits_;
      MaybeFinishShutdown();
    });
  }
  MaybeFinishShutdown();
}

void Controller::MaybeFinishShutdown() {
  if (!shutting_down_ || shutdown_waits_ > 0 || !on_shutdown_) return;
  if (broker_ && !broker_closing_) {
    // Every function has drained, so no more events will be emitted.
    broker_closing_ = true;
    if (event_queue_) event_queue_->Close();  // commits the last acknowledgements
    services_->UnregisterAll();
    shutdown_waits_ += 3;
    auto one_closed = [this] {
      --shutdown_waits_;
      MaybeFinishShutdown();
    };
    requests_->Close(one_closed);
    events_->Close(one_closed);
    broker_->Close(one_closed);
    return;
  }
  if (server_ && !server_closing_) {
    // Every function has drained and its replies have been queued; they are
    // flushed before the connections close (the flush runs this iteration).
    server_closing_ = true;
    ++shutdown_waits_;
    server_->Close([this] {
      --shutdown_waits_;
      MaybeFinishShutdown();
    });
    return;
  }
  if (zygote_ && !zygote_closing_) {
    // Last, once every worker has exited: the zygote reports their exits.
    zygote_closing_ = true;
    ++shutdown_waits_;
    zygote_->Close([this] {
      --shutdown_waits_;
      MaybeFinishShutdown();
    });
    return;
  }
  auto done = std::move(on_shutdown_);
  on_shutdown_ = nullptr;
  done();
}

}  // namespace wisp::runtime
