// The controller's GET /metrics and the event loop lag it reports.
#include "runtime/base/uv_timer.h"
#include "runtime/controller.h"

namespace wisp::runtime {
namespace {

constexpr uint64_t kLagTickMs = 1000;

}  // namespace

void Controller::StartLoopLagTimer() {
  lag_timer_ = new uv_timer_t;
  uv_timer_init(loop_, lag_timer_);
  lag_timer_->data = this;
  // Not a reason to keep the loop alive on its own.
  uv_unref(reinterpret_cast<uv_handle_t*>(lag_timer_));
  lag_expected_ns_ = uv_hrtime() + kLagTickMs * 1000000;
  uv_timer_start(
      lag_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<Controller*>(t->data);
        const uint64_t now = uv_hrtime();
        const double late = now > self->lag_expected_ns_
                                ? static_cast<double>(now - self->lag_expected_ns_) / 1e9
                                : 0.0;
        self->metrics_.set_loop_lag(late);
        self->lag_expected_ns_ = now + kLagTickMs * 1000000;
        self->MoveLocalDeadLetters();
      },
      kLagTickMs, kLagTickMs);
}

void Controller::HandleMetrics(triggers::ReplyToken token) {
  std::map<std::string, FunctionGauges> gauges;
  for (const auto& [name, deployed] : functions_) {
    FunctionGauges& g = gauges[name];
    g.loaded_workers = deployed->dispatcher->WorkerPids().size();
    g.queue_depth = deployed->dispatcher->queue_depth();
  }
  std::map<std::string, Metrics::Counter> counters;
  if (events_ != nullptr) {
    const EventTriggerCounters& c = events_->counters();
    counters["wisp_events_received_total"] = {"Messages that reached a function's trigger.",
                                              c.received};
    counters["wisp_events_rejected_total"] = {"Malformed or oversized events, refused.", c.rejected};
    counters["wisp_events_failed_total"] = {"Fire-and-forget events whose invocation failed.",
                                            c.failed};
    counters["wisp_events_emitted_total"] = {"Events published for functions.", c.emitted};
    counters["wisp_events_emit_refused_total"] = {
        "Invocations whose emitted events were invalid (none published).", c.emit_refused};
    counters["wisp_events_slow_consumer_dropped_total"] = {
        "Messages the broker dropped because wisp could not keep up.",
        broker_->stats().slow_consumer_dropped};
  }
  if (durable_ != nullptr) {
    const DurableCounters& d = durable_->counters();
    counters["wisp_durable_stored_total"] = {"Events stored for durable functions.", d.stored};
    counters["wisp_durable_duplicates_total"] = {
        "Publishes dropped as duplicates of a ce-id seen within the dedup window.", d.duplicates};
    counters["wisp_durable_acked_total"] = {"Durable events done.", d.acked};
    counters["wisp_durable_retried_total"] = {"Failed attempts scheduled again.", d.retried};
    counters["wisp_durable_dead_lettered_total"] = {"Durable events that failed every attempt.",
                                                    d.dead_lettered};
    counters["wisp_durable_redelivered_total"] = {
        "Durable events in flight when the controller last stopped, run again.", d.redelivered};
    counters["wisp_durable_store_failed_total"] = {"Writes the event database refused.",
                                                   d.store_failed};
  }
  if (jetstream_ != nullptr) {
    const JetStreamCounters& j = jetstream_->counters();
    counters["wisp_jetstream_leases_renewed_total"] = {
        "Leases of durable events held here renewed (+WPI) while they waited or ran.",
        j.leases_renewed};
    counters["wisp_jetstream_lost_pulls_total"] = {
        "JetStream pulls whose end never came, sent again.", j.lost_pulls};
  }
  counters["wisp_invocation_records_dropped_total"] = {
      "Invocation records and log lines lost because the writer fell behind.",
      invocation_log_.dropped()};
  triggers::HttpResponse response;
  response.headers.emplace_back("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  response.body = metrics_.Render(gauges, counters);
  server_->Reply(token, std::move(response));
}

}  // namespace wisp::runtime
