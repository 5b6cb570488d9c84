#include "runtime/duration.h"

#include <charconv>
#include <cmath>

namespace wisp::runtime {

Status ParseDurationUs(std::string_view text, uint64_t* us, uint64_t max_us) {
  const std::string quoted = "invalid duration '" + std::string(text) + "'";
  size_t digits_end = 0;
  while (digits_end < text.size() &&
         ((text[digits_end] >= '0' && text[digits_end] <= '9') || text[digits_end] == '.')) {
    ++digits_end;
  }
  std::string_view number = text.substr(0, digits_end);
  std::string_view unit = text.substr(digits_end);
  if (number.empty() || number.size() > 20) {
    return Status::InvalidArgument(quoted + ": expected a number with a unit, e.g. 30s or 250ms");
  }
  double value = 0;
  auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (ec != std::errc() || end != number.data() + number.size() || !std::isfinite(value)) {
    return Status::InvalidArgument(quoted + ": not a number");
  }
  double factor = 0;
  if (unit == "us") factor = 1;
  else if (unit == "ms") factor = 1000;
  else if (unit == "s" || unit.empty()) factor = 1000 * 1000;
  else if (unit == "m") factor = 60.0 * 1000 * 1000;
  else if (unit == "h") factor = 3600.0 * 1000 * 1000;
  else return Status::InvalidArgument(quoted + ": unknown unit (use us, ms, s, m or h)");
  const double total = value * factor;
  if (total > static_cast<double>(max_us)) {
    return Status::InvalidArgument(quoted + ": longer than " + FormatDurationMs(max_us / 1000));
  }
  *us = static_cast<uint64_t>(std::llround(total));
  return Status::OK();
}

Status ParseDurationMs(std::string_view text, uint64_t* ms, uint64_t max_ms) {
  uint64_t us = 0;
  WISP_RETURN_IF_ERROR(ParseDurationUs(text, &us, max_ms * 1000));
  *ms = (us + 500) / 1000;
  return Status::OK();
}

std::string FormatDurationMs(uint64_t ms) {
  if (ms == 0) return "0s";
  if (ms % 1000 != 0) return std::to_string(ms) + "ms";
  uint64_t s = ms / 1000;
  std::string out;
  if (s >= 3600) {
    out += std::to_string(s / 3600) + "h";
    s %= 3600;
  }
  if (s >= 60) {
    out += std::to_string(s / 60) + "m";
    s %= 60;
  }
  if (s > 0) out += std::to_string(s) + "s";
  return out;
}

}  // namespace wisp::runtime
