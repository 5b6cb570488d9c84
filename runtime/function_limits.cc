#include "runtime/function_limits.h"

#include <array>
#include <utility>

#include "runtime/base/ascii.h"
#include "runtime/duration.h"

namespace wisp::runtime {
namespace {

Status OutOfRange(std::string_view key, std::string_view value, const std::string& range) {
  return Status::InvalidArgument(std::string(key) + " must be " + range + ", got '" +
                                 std::string(value) + "'");
}

Status ApplyBytes(std::string_view key, std::string_view value, uint64_t min, uint64_t max,
                  uint64_t* out) {
  uint64_t bytes = 0;
  if (!ParseByteSize(value, &bytes).ok() || bytes < min || bytes > max) {
    return OutOfRange(key, value,
                      "a size from " + FormatByteSize(min) + " to " + FormatByteSize(max) +
                          " (e.g. 256MiB)");
  }
  *out = bytes;
  return Status::OK();
}

Status ApplyCount(std::string_view key, std::string_view value, uint32_t min, uint32_t max,
                  uint32_t* out) {
  uint64_t n = 0;
  if (!ParseUint(value, &n) || n < min || n > max) {
    return OutOfRange(key, value,
                      "a number from " + std::to_string(min) + " to " + std::to_string(max));
  }
  *out = static_cast<uint32_t>(n);
  return Status::OK();
}

}  // namespace

bool IsLimitKey(std::string_view key) {
  for (std::string_view known : {"memory", "cpu", "open_files", "processes", "max_request",
                                 "max_reply", "max_events"}) {
    if (key == known) return true;
  }
  return false;
}

Status ApplyLimit(std::string_view key, std::string_view value, FunctionLimits* limits) {
  if (key == "memory") {
    return ApplyBytes(key, value, kMinMemoryBytes, kMaxMemoryBytes, &limits->memory_bytes);
  }
  if (key == "cpu") {
    uint64_t ms = 0;
    if (!ParseDurationMs(value, &ms, kMaxCpuMs).ok()) {
      return OutOfRange(key, value, "a duration up to 24h (e.g. 2s; 0: none)");
    }
    // RLIMIT_CPU counts whole seconds.
    limits->cpu_ms = (ms + 999) / 1000 * 1000;
    return Status::OK();
  }
  if (key == "open_files") {
    return ApplyCount(key, value, kMinOpenFiles, kMaxOpenFiles, &limits->open_files);
  }
  if (key == "processes") {
    return ApplyCount(key, value, kMinProcesses, kMaxProcesses, &limits->processes);
  }
  if (key == "max_request") {
    return ApplyBytes(key, value, 0, kMaxPayloadLimitBytes, &limits->max_request_bytes);
  }
  if (key == "max_reply") {
    return ApplyBytes(key, value, 1024, kMaxPayloadLimitBytes, &limits->max_reply_bytes);
  }
  if (key == "max_events") {
    return ApplyCount(key, value, 0, kMaxEventsLimit, &limits->max_events);
  }
  return Status::InvalidArgument("'" + std::string(key) + "' is not a limit (known: " +
                                 kLimitKeys + ")");
}

Status ParseByteSize(std::string_view text, uint64_t* bytes) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  uint64_t number = 0;
  if (!ParseUint(text.substr(0, digits), &number)) {
    return Status::InvalidArgument("'" + std::string(text) + "' is not a size (e.g. 64MiB)");
  }
  static constexpr std::array<std::pair<std::string_view, uint64_t>, 13> kUnits{{
      {"", 1}, {"B", 1}, {"K", 1ull << 10}, {"KiB", 1ull << 10}, {"KB", 1000},
      {"M", 1ull << 20}, {"MiB", 1ull << 20}, {"MB", 1000ull * 1000},
      {"G", 1ull << 30}, {"GiB", 1ull << 30}, {"GB", 1000ull * 1000 * 1000},
      {"TiB", 1ull << 40}, {"TB", 1000ull * 1000 * 1000 * 1000},
  }};
  const std::string_view unit = text.substr(digits);
  for (const auto& [name, scale] : kUnits) {
    if (unit != name) continue;
    if (number > UINT64_MAX / scale) break;
    *bytes = number * scale;
    return Status::OK();
  }
  return Status::InvalidArgument("'" + std::string(text) +
                                 "' is not a size (a number with B, KiB, MiB, GiB, KB, MB or GB)");
}

std::string FormatByteSize(uint64_t bytes) {
  static constexpr std::array<std::pair<const char*, int>, 4> kUnits{
      {{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}}};
  for (const auto& [name, shift] : kUnits) {
    const uint64_t scale = 1ull << shift;
    if (bytes >= scale && bytes % scale == 0) return std::to_string(bytes / scale) + name;
  }
  return std::to_string(bytes) + "B";
}

}  // namespace wisp::runtime
