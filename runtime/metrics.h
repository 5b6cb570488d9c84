// Prometheus metrics of the controller: what GET /metrics serves, in the text
// exposition format (version 0.0.4).
//
// Per function: invocations by status, errors by code, a duration histogram,
// cold starts with their own duration histogram; the controller adds loaded
// workers and queue depth per function, per-trigger and event counters, and
// process figures (resident memory, open descriptors, CPU time, event loop
// lag) when it renders.
//
// Ownership: the controller owns one Metrics; FunctionMetrics entries are
// shared with the dispatchers' observers, so an invocation that completes
// after its function was removed (and forgotten) still has one to count in.
// Threading: the loop thread only.
#ifndef WISP_RUNTIME_METRICS_H_
#define WISP_RUNTIME_METRICS_H_

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace wisp::runtime {

// A histogram over fixed buckets, in seconds.
class Histogram {
 public:
  static constexpr std::array<double, 16> kBounds = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
      0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
  void Observe(double seconds);
  // Appends NAME_bucket{LABELS,le=..}, NAME_sum{LABELS} and NAME_count{LABELS};
  // labels is "" or `function="x"`.
  void Render(const std::string& name, const std::string& labels, std::string* out) const;
  uint64_t count() const { return count_; }

 private:
  std::array<uint64_t, kBounds.size()> buckets_{};  // not cumulative
  uint64_t count_ = 0;
  double sum_ = 0;
};

struct FunctionMetrics {
  std::map<int, uint64_t> invocations_by_status;     // HTTP status -> count
  std::map<std::string, uint64_t> errors_by_code;    // "worker_crashed" -> count
  Histogram duration;
  uint64_t cold_starts = 0;
  Histogram cold_duration;  // invocations that waited for the function to load

  // One completed invocation.
  void Observe(int status, const std::string& error_code, bool cold, double seconds);
};

// What the controller knows at render time, per function.
struct FunctionGauges {
  uint64_t loaded_workers = 0;
  uint64_t queue_depth = 0;
};

class Metrics {
 public:
  // The entry of a function, created on first use.
  std::shared_ptr<FunctionMetrics> For(const std::string& function);
  // Drops a removed function's entry.
  void Forget(const std::string& function);

  // One completed invocation by trigger kind, whatever the function.
  enum class Trigger { kHttp, kEvent, kCall };
  void CountTrigger(Trigger trigger) {
    ++(trigger == Trigger::kEvent  ? event_invocations_
       : trigger == Trigger::kCall ? call_invocations_
                                   : http_invocations_);
  }

  // Event loop lag: how late the last periodic tick ran, in seconds.
  void set_loop_lag(double seconds) { loop_lag_s_ = seconds; }

  // The whole exposition text: per-function metrics and gauges (functions
  // without an entry get zeroed counters), trigger counters, the extra
  // counters given as name -> (help, value), and process figures.
  struct Counter {
    std::string help;
    uint64_t value;
  };
  std::string Render(const std::map<std::string, FunctionGauges>& gauges,
                     const std::map<std::string, Counter>& counters) const;

 private:
  std::map<std::string, std::shared_ptr<FunctionMetrics>> functions_;
  uint64_t http_invocations_ = 0;
  uint64_t event_invocations_ = 0;
  uint64_t call_invocations_ = 0;
  double loop_lag_s_ = 0;
};

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_METRICS_H_
