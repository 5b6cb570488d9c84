// The controller: owns the HTTP trigger, the deployed functions (store,
// artifacts, one dispatcher each), and the warm worker pool.
//
// HTTP endpoints:
//   /fn/<name>[/<rest>]        invoke a function (any method)
//   /healthz                   liveness
//   GET    /v1/functions       list deployed functions
//   PUT    /v1/functions/<n>   deploy: body is the .so; query: timeout, idle
//                              (durations like 30s) and max_workers
//   GET    /v1/functions/<n>   describe one, with its loaded workers
//   DELETE /v1/functions/<n>   remove, with every version
//   POST   /v1/functions/<n>/rollback   make the previous version (query: to,
//                              a version) current again; 409 if there is none
//   POST   /v1/functions/<n>/invoke     call it like POST /fn/<n> (token needed)
//   GET    /v1/functions/<n>/logs       its workers' output lines, oldest first
//                              (query: limit, default 100; after=SEQ for the
//                              lines after one already seen; follow=true
//                              streams new lines as NDJSON until the client goes)
//   GET    /metrics            Prometheus text format (token needed)
//   GET    /v1/invocations     invocation records, newest first (query:
//                              function, limit up to 1000, default 50)
//   POST   /v1/events/<subject>   publish the body as an event (202)
//   POST   /v1/requests/<subject> publish as a request, answer with the reply
//                                 (query: timeout, default 5s)
//   GET    /v1/functions/<n>/dead-letters   durable events that failed every
//                              attempt (query: limit, default 100)
//   POST   /v1/functions/<n>/replay  puts them back in its queue (query: id,
//                              only that one)
//   GET    /v1/services        the NATS services ($SRV.INFO) that answer
//                              within the wait (query: wait, default 250ms)
// Deploy's query also takes version (semver; 409 if it exists), subscribe
// and env (KEY=VALUE, the config map), both repeatable. Each deploy is a new
// immutable version; GET /v1/functions/<n> lists them.
// Errors are JSON {"error": {"code", "message"}} with a fitting status.
// Every /fn/ reply carries X-Wisp-Invocation-Id, unique per controller run.
// Everything but /fn/ and /healthz needs "Authorization: Bearer <token>",
// the token being <data dir>/token (created at the first start); else 401.
//
// Ownership: the controller owns everything it creates; the loop is borrowed.
// Threading: constructed, started and shut down on the loop thread; all its
// work happens there.
#ifndef WISP_RUNTIME_CONTROLLER_H_
#define WISP_RUNTIME_CONTROLLER_H_

#include <uv.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "loader/artifact_store.h"
#include "runtime/base/loop_thread.h"
#include "runtime/base/status.h"
#include "runtime/broker_requests.h"
#include "runtime/call_forwarding.h"
#include "runtime/cluster_sync.h"
#include "runtime/dispatcher.h"
#include "runtime/durable_delivery.h"
#include "runtime/jetstream_delivery.h"
#include "runtime/event_queue.h"
#include "runtime/event_triggers.h"
#include "runtime/function_store.h"
#include "runtime/invocation_log.h"
#include "runtime/log_followers.h"
#include "runtime/metrics.h"
#include "runtime/service_registry.h"
#include "runtime/timer_triggers.h"
#include "runtime/worker_pool.h"
#include "runtime/zygote.h"
#include "triggers/broker.h"
#include "triggers/http_server.h"
#include "triggers/route.h"

namespace wisp::api {
class Function;
class FunctionConfig;
}  // namespace wisp::api

namespace wisp::runtime {

struct ControllerOptions {
  std::string listen_host = "127.0.0.1";
  int listen_port = 8080;
  std::string data_dir;
  std::string worker_path;
  std::string warmup_path;  // loaded once by each pooled worker; empty: none
  uint64_t default_timeout_ms = 30000;
  uint64_t default_idle_ms = 60000;
  uint32_t default_max_workers = 2;
  uint32_t pipeline_depth = 32;  // invocations in flight per worker
  size_t max_queue = 1000;       // invocations waiting per function
  uint64_t worker_spin_us = 150; // workers poll this long before sleeping
  size_t warm_pool_size = 2;
  size_t max_request_bytes = 6 * 1024 * 1024;   // bodies sent to /fn/
  size_t max_upload_bytes = 64 * 1024 * 1024;   // .so uploads
  std::string nats_urls;  // comma-separated; empty: the embedded broker
  std::string nats_module_path;  // wisp-nats.so, loaded only with nats_urls
  // With nats_urls: the cluster whose nodes share deployments through
  // JetStream KV (runtime/cluster_sync.h). cluster_replicas: the copies
  // JetStream keeps of wisp's streams (the cluster's buckets and WISP_EVENTS).
  std::string cluster;
  int cluster_replicas = 1;
  // An artifact no key of the cluster has named this long leaves its bucket.
  uint64_t cluster_gc_after_ms = 600000;
  bool record_invocations = true;  // invocation records and log lines in sqlite
  RetentionOptions retention;
  WorkerIdentities::Options worker_identities;  // who workers run as
};

class Controller {
 public:
  Controller(uv_loop_t* loop, ControllerOptions options);
  ~Controller();
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // Creates the data dir, opens the store, restores deployments, starts the
  // warm pool and listens. Fails with a message naming what went wrong (a
  // data dir that cannot be created, a database from a newer wisp, an
  // address in use, ...).
  Status Start();

  // The bound HTTP port, after Start.
  int port() const;
  // Who workers run as and how their memory is limited, in one line; after
  // Start.
  std::string WorkerIsolation() const { return identities_->Describe(); }

  // Stops listening, drains functions and the pool; on_done runs when every
  // handle the controller owns is closed, after which it may be destroyed.
  void Shutdown(std::function<void()> on_done);

 private:
  struct Deployed {
    FunctionRecord record;
    std::shared_ptr<FunctionCounters> counters;
    std::unique_ptr<Dispatcher> dispatcher;
  };
  struct Retired {
    std::shared_ptr<FunctionCounters> counters;
    std::unique_ptr<Dispatcher> dispatcher;
  };

  void HandleRequest(triggers::ReplyToken token, triggers::HttpRequest request);
  void HandleInvoke(triggers::ReplyToken token, const std::string& name, std::string rest,
                    triggers::HttpRequest request);
  // Replies to a /fn/ call with its outcome, as X-Wisp-Invocation-Id invocation.
  // served_by: the node of the cluster that ran a forwarded call (the
  // X-Wisp-Node header); empty for a call run here.
  void ReplyOutcome(triggers::ReplyToken token, uint64_t invocation, InvocationOutcome outcome,
                    const std::string& served_by = "");
  // Runs invoke on name's dispatcher; done gets the outcome once the events
  // it emitted are published (and stored, for durable functions).
  void RunInvocation(const std::string& name, Dispatcher* dispatcher, proto::Invoke invoke,
                     InvocationDone done);
  // A forwarded call may wait this long for the other node to load the
  // function, on top of the function's timeout.
  static constexpr uint64_t kForwardLoadAllowanceMs = 5000;
  // The /v1/functions API (controller_functions.cc): deploy, remove,
  // rollback, list and describe; each answers token on the loop thread.
  void HandleDeploy(triggers::ReplyToken token, const std::string& name,
                    triggers::HttpRequest& request);
  void HandleRemove(triggers::ReplyToken token, const std::string& name);
  // Removes name with all its versions here. NotFound if it is not deployed.
  Status RemoveFunction(const std::string& name);
  // Joins options_.cluster, if any (controller_cluster.cc).
  Status StartCluster();
  // Makes a version another node deployed current here.
  Status ApplyFromCluster(const FunctionRecord& record);
  void HandleRollback(triggers::ReplyToken token, const std::string& name,
                      const triggers::HttpRequest& request);
  void HandleInvocations(triggers::ReplyToken token, const triggers::HttpRequest& request);
  void HandleMetrics(triggers::ReplyToken token);
  void StartLoopLagTimer();
  void HandleLogs(triggers::ReplyToken token, const std::string& name,
                  const triggers::HttpRequest& request);
  void Record(const std::string& name, const proto::Invoke& invoke,
              const InvocationOutcome& outcome);
  void RecordLog(const std::string& name, const std::string& invocation, const std::string& text);
  void HandleList(triggers::ReplyToken token);
  void HandleDescribe(triggers::ReplyToken token, const std::string& name);
  void HandlePublish(triggers::ReplyToken token, const std::string& subject,
                     triggers::HttpRequest& request, bool wait_for_reply);
  void HandleServices(triggers::ReplyToken token, const triggers::HttpRequest& request);
  // On NATS, moves the dead letters events.db holds (kept by an
  // embedded-broker run of this data dir) into JetStream, each deleted here
  // once JetStream has it; from the lag timer, until none is left.
  void MoveLocalDeadLetters();
  void HandleDeadLetters(triggers::ReplyToken token, const std::string& name,
                         const triggers::HttpRequest& request);
  void HandleReplay(triggers::ReplyToken token, const std::string& name,
                    const triggers::HttpRequest& request);
  // A function's host->call: runs call.function for caller (an invocation
  // of caller_name) and answers through reply (controller_calls.cc).
  void HandleCall(const std::string& caller_name, const proto::Invoke& caller, proto::Call call,
                  std::function<void(proto::CallReply)> reply);
  // Publishes the tick of name's schedule due at tick_ms.
  void FireTimer(const std::string& name, int64_t tick_ms);
  // Binds name's triggers: durable ones to the queue, the others to the broker.
  void BindTriggers(const FunctionRecord& record);
  void OnLoadChanged(const std::string& name, bool loaded);
  Status StartBroker();
  void CloseBroker();
  void ReplyError(triggers::ReplyToken token, int status, std::string_view code,
                  std::string_view message);
  void ReplyJson(triggers::ReplyToken token, int status, const std::string& json);
  // In a cluster, answers 503 cluster_not_ready (Retry-After: 1) and returns
  // true while a change made here could not be shared yet: a deploy,
  // rollback or removal is refused before anything changes here.
  bool RefusedUntilClusterWritable(triggers::ReplyToken token);

  Status RestoreDeployments();
  void Install(FunctionRecord record);
  // Drains a dispatcher that no longer serves name; then removes the
  // artifact sha256 if no deployment uses it any more (empty: keep).
  void Retire(const std::string& name, std::unique_ptr<Dispatcher> dispatcher,
              std::shared_ptr<FunctionCounters> counters, std::string sha256);
  void RemoveArtifactIfUnused(const std::string& sha256);
  // Deletes name's versions beyond the newest kVersionsKept and the
  // artifacts no version names any more; a failure is logged.
  void PruneOldVersions(const std::string& name);
  void Describe(const Deployed& deployed, bool with_status, api::Function* fn) const;
  static void DescribeConfig(const FunctionRecord& record, api::FunctionConfig* config);
  std::string DescribeJson(const Deployed& deployed, bool with_status) const;
  void MaybeFinishShutdown();

  uv_loop_t* loop_;
  ControllerOptions options_;
  LoopThread loop_thread_;
  FunctionStore store_;
  InvocationLog invocation_log_;
  Metrics metrics_;
  uv_timer_t* lag_timer_ = nullptr;  // owned; freed in its close callback
  uint64_t lag_expected_ns_ = 0;     // when the lag timer should fire next
  bool local_dead_letters_left_ = false;  // MoveLocalDeadLetters has more to move
  size_t dead_letters_moving_ = 0;        // its stores still unanswered
  std::unique_ptr<loader::ArtifactStore> artifacts_;
  std::unique_ptr<Zygote> zygote_;
  std::unique_ptr<WorkerIdentities> identities_;
  std::unique_ptr<WorkerPool> pool_;
  std::unique_ptr<triggers::HttpServer> server_;
  std::unique_ptr<LogFollowers> log_followers_;  // after server_, closed before it
  std::string token_;  // the control API's bearer token
  // Invocation ids: "<prefix>-<hex counter>", the prefix random per start.
  std::string InvocationId(uint64_t n) const;
  std::string invocation_prefix_;
  uint64_t invocations_started_ = 0;
  std::unique_ptr<triggers::Broker> broker_;
  std::unique_ptr<EventTriggers> events_;
  // Durable triggers. Embedded broker: the events wait in
  // <data dir>/events.db. NATS: in JetStream (jetstream_), dead letters too.
  std::unique_ptr<EventQueue> event_queue_;
  std::unique_ptr<DurableDelivery> durable_;
  std::unique_ptr<JetStreamDelivery> jetstream_;
  // Runs done once every event published so far for durable functions is
  // stored (JetStream's acknowledgements, then the sqlite group commit),
  // with the first error. Loop thread.
  void AfterEventsStored(std::function<void(Status)> done);
  // Timer triggers: each tick is an event on wisp.timer.<name> with the
  // ce-id timer:<name>:<tick ms>; on NATS that subject is always a JetStream
  // one, so the ce-id (Nats-Msg-Id) makes a tick run once across
  // controllers.
  std::unique_ptr<TimerTriggers> timers_;
  std::unique_ptr<ServiceRegistry> services_;
  std::unique_ptr<BrokerRequests> requests_;
  std::unique_ptr<ClusterSync> cluster_;  // with options_.cluster only
  std::unique_ptr<CallForwarding> forwarding_;  // with options_.cluster only
  std::map<std::string, int> loaded_versions_;  // loaded dispatchers per name
  std::map<std::string, std::unique_ptr<Deployed>> functions_;
  std::vector<std::unique_ptr<Retired>> retired_;
  bool shutting_down_ = false;
  bool zygote_closing_ = false;
  bool server_closing_ = false;
  bool broker_closing_ = false;
  int shutdown_waits_ = 0;
  std::function<void()> on_shutdown_;
};

// Splits "host:port" (port 0..65535). InvalidArgument names the text.
Status ParseListenAddress(const std::string& text, std::string* host, int* port);

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_CONTROLLER_H_
