#include "runtime/health_json.h"

#include "triggers/json_text.h"

namespace wisp::runtime {
namespace {

void AppendEvents(const api::EventCounters& e, triggers::JsonObjectText* out) {
  out->BeginObject("events");
  out->String("broker", e.broker());
  out->Uint64("received", e.received());
  out->Uint64("rejected", e.rejected());
  out->Uint64("failed", e.failed());
  out->Uint64("emitted", e.emitted());
  out->Uint64("emit_refused", e.emit_refused());
  out->Uint64("slow_consumer_dropped", e.slow_consumer_dropped());
  out->Uint64("durable_stored", e.durable_stored());
  out->Uint64("durable_duplicates", e.durable_duplicates());
  out->Uint64("durable_retried", e.durable_retried());
  out->Uint64("durable_dead_lettered", e.durable_dead_lettered());
  out->Uint64("durable_redelivered", e.durable_redelivered());
  out->Uint64("durable_waiting", e.durable_waiting());
  out->Uint64("durable_leases_renewed", e.durable_leases_renewed());
  out->Uint64("durable_lost_pulls", e.durable_lost_pulls());
  out->EndObject();
}

void AppendCluster(const api::ClusterState& c, triggers::JsonObjectText* out) {
  out->BeginObject("cluster");
  out->String("name", c.name());
  out->String("node", c.node());
  out->Uint64("applied", c.applied());
  out->Uint64("removed", c.removed());
  out->Uint64("refused", c.refused());
  out->Uint64("conflicts", c.conflicts());
  out->Uint64("forwarded", c.forwarded());
  out->Uint64("unplaced", c.unplaced());
  out->Uint64("taken", c.taken());
  out->Uint64("forwards_refused", c.forwards_refused());
  out->BeginArray("offering");
  for (const std::string& name : c.offering()) out->ArrayString(name);
  out->EndArray();
  out->Uint64("artifacts_removed", c.artifacts_removed());
  out->Bool("joined", c.joined());
  out->EndObject();
}

}  // namespace

std::string HealthJson(const api::Health& health) {
  triggers::JsonObjectText out;
  out.String("status", health.status());
  out.String("version", health.version());
  if (health.has_events()) AppendEvents(health.events(), &out);
  if (health.has_cluster()) AppendCluster(health.cluster(), &out);
  std::string text = out.Finish();
  text.push_back('\n');
  return text;
}

}  // namespace wisp::runtime
