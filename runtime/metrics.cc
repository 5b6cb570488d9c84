#include "runtime/metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>

namespace wisp::runtime {
namespace {

void AppendDouble(double v, std::string* out) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  out->append(buf);
}

void Head(const std::string& name, const char* type, const std::string& help, std::string* out) {
  out->append("# HELP ").append(name).append(" ").append(help).append("\n");
  out->append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void Sample(const std::string& name, const std::string& labels, double value, std::string* out) {
  out->append(name);
  if (!labels.empty()) out->append("{").append(labels).append("}");
  out->push_back(' ');
  AppendDouble(value, out);
  out->push_back('\n');
}

// Function names match ^[a-z0-9][a-z0-9_-]*$: nothing to escape.
std::string FunctionLabel(const std::string& function) { return "function=\"" + function + "\""; }

uint64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t pages = 0;
  uint64_t resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

uint64_t OpenFds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  uint64_t n = 0;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(dir);
  return n > 0 ? n - 1 : 0;  // not the descriptor of the listing itself
}

double CpuSeconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

}  // namespace

void Histogram::Observe(double seconds) {
  const auto it = std::lower_bound(kBounds.begin(), kBounds.end(), seconds);
  if (it != kBounds.end()) ++buckets_[static_cast<size_t>(it - kBounds.begin())];
  ++count_;
  sum_ += seconds;
}

void Histogram::Render(const std::string& name, const std::string& labels,
                       std::string* out) const {
  const std::string prefix = labels.empty() ? "" : labels + ",";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kBounds.size(); ++i) {
    cumulative += buckets_[i];
    char le[32];
    std::snprintf(le, sizeof(le), "%g", kBounds[i]);
    Sample(name + "_bucket", prefix + "le=\"" + le + "\"", static_cast<double>(cumulative), out);
  }
  Sample(name + "_bucket", prefix + "le=\"+Inf\"", static_cast<double>(count_), out);
  Sample(name + "_sum", labels, sum_, out);
  Sample(name + "_count", labels, static_cast<double>(count_), out);
}

void FunctionMetrics::Observe(int status, const std::string& error_code, bool cold,
                              double seconds) {
  ++invocations_by_status[status];
  if (!error_code.empty()) ++errors_by_code[error_code];
  duration.Observe(seconds);
  if (cold) {
    ++cold_starts;
    cold_duration.Observe(seconds);
  }
}

std::shared_ptr<FunctionMetrics> Metrics::For(const std::string& function) {
  std::shared_ptr<FunctionMetrics>& entry = functions_[function];
  if (!entry) entry = std::make_shared<FunctionMetrics>();
  return entry;
}

void Metrics::Forget(const std::string& function) { functions_.erase(function); }

std::string Metrics::Render(const std::map<std::string, FunctionGauges>& gauges,
                            const std::map<std::string, Counter>& counters) const {
  std::set<std::string> names;
  for (const auto& [name, entry] : functions_) names.insert(name);
  for (const auto& [name, g] : gauges) names.insert(name);
  static const FunctionMetrics kNone;
  auto metrics_of = [this](const std::string& name) -> const FunctionMetrics& {
    auto it = functions_.find(name);
    return it == functions_.end() ? kNone : *it->second;
  };
  std::string out;
  out.reserve(4096 + names.size() * 4096);

  Head("wisp_invocations_total", "counter",
       "Completed invocations by function and the HTTP status they got.", &out);
  for (const std::string& name : names) {
    const FunctionMetrics& m = metrics_of(name);
    if (m.invocations_by_status.empty()) {
      Sample("wisp_invocations_total", FunctionLabel(name) + ",status=\"200\"", 0, &out);
    }
    for (const auto& [status, n] : m.invocations_by_status) {
      Sample("wisp_invocations_total",
             FunctionLabel(name) + ",status=\"" + std::to_string(status) + "\"",
             static_cast<double>(n), &out);
    }
  }
  Head("wisp_invocation_errors_total", "counter",
       "Invocations that did not succeed, by function and error code.", &out);
  for (const std::string& name : names) {
    for (const auto& [code, n] : metrics_of(name).errors_by_code) {
      Sample("wisp_invocation_errors_total", FunctionLabel(name) + ",code=\"" + code + "\"",
             static_cast<double>(n), &out);
    }
  }
  Head("wisp_invocation_duration_seconds", "histogram",
       "Time from an invocation's arrival to its outcome, queueing and loading included.", &out);
  for (const std::string& name : names) {
    metrics_of(name).duration.Render("wisp_invocation_duration_seconds", FunctionLabel(name), &out);
  }
  Head("wisp_cold_starts_total", "counter",
       "Invocations that waited for their function to be loaded into a worker.", &out);
  for (const std::string& name : names) {
    Sample("wisp_cold_starts_total", FunctionLabel(name),
           static_cast<double>(metrics_of(name).cold_starts), &out);
  }
  Head("wisp_cold_start_duration_seconds", "histogram",
       "Duration of the invocations that waited for their function to load.", &out);
  for (const std::string& name : names) {
    metrics_of(name).cold_duration.Render("wisp_cold_start_duration_seconds", FunctionLabel(name),
                                          &out);
  }
  Head("wisp_loaded_workers", "gauge", "Workers with the function loaded.", &out);
  for (const auto& [name, g] : gauges) {
    Sample("wisp_loaded_workers", FunctionLabel(name), static_cast<double>(g.loaded_workers), &out);
  }
  Head("wisp_queue_depth", "gauge", "Invocations waiting for a worker of the function.", &out);
  for (const auto& [name, g] : gauges) {
    Sample("wisp_queue_depth", FunctionLabel(name), static_cast<double>(g.queue_depth), &out);
  }
  Head("wisp_trigger_invocations_total", "counter",
       "Completed invocations by what triggered them.", &out);
  Sample("wisp_trigger_invocations_total", "trigger=\"http\"",
         static_cast<double>(http_invocations_), &out);
  Sample("wisp_trigger_invocations_total", "trigger=\"event\"",
         static_cast<double>(event_invocations_), &out);
  Sample("wisp_trigger_invocations_total", "trigger=\"call\"",
         static_cast<double>(call_invocations_), &out);
  for (const auto& [name, counter] : counters) {
    Head(name, "counter", counter.help, &out);
    Sample(name, "", static_cast<double>(counter.value), &out);
  }
  Head("process_resident_memory_bytes", "gauge", "Resident memory of the controller.", &out);
  Sample("process_resident_memory_bytes", "", static_cast<double>(ResidentBytes()), &out);
  Head("process_open_fds", "gauge", "Open file descriptors of the controller.", &out);
  Sample("process_open_fds", "", static_cast<double>(OpenFds()), &out);
  Head("process_cpu_seconds_total", "counter", "CPU time of the controller, user and system.",
       &out);
  Sample("process_cpu_seconds_total", "", CpuSeconds(), &out);
  Head("wisp_event_loop_lag_seconds", "gauge",
       "How late the controller's event loop ran its last periodic tick.", &out);
  Sample("wisp_event_loop_lag_seconds", "", loop_lag_s_, &out);
  return out;
}

}  // namespace wisp::runtime
