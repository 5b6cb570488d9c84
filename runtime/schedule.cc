#include "runtime/schedule.h"

#include <charconv>
#include <ctime>
#include <vector>

namespace wisp::runtime {
namespace {

struct Field {
  const char* name;
  int min, max;
};

constexpr Field kFields[] = {
    {"minute", 0, 59}, {"hour", 0, 23}, {"day of month", 1, 31}, {"month", 1, 12},
    {"day of week", 0, 7}};

bool ParseInt(std::string_view text, int* out) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

// One comma-separated item of a field: *, n, a-b, with an optional /step.
Status ParseItem(const Field& field, std::string_view item, std::vector<bool>* bits) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("cron " + std::string(field.name) + " field: '" +
                                   std::string(item) + "' " + why);
  };
  int step = 1;
  const size_t slash = item.find('/');
  std::string_view range = item.substr(0, slash);
  if (slash != std::string_view::npos) {
    if (!ParseInt(item.substr(slash + 1), &step) || step < 1) return bad("has a bad step");
  }
  int low = field.min;
  int high = field.max;
  if (range != "*") {
    const size_t dash = range.find('-');
    if (!ParseInt(range.substr(0, dash), &low)) return bad("is not a number, range or *");
    if (dash != std::string_view::npos) {
      if (!ParseInt(range.substr(dash + 1), &high)) return bad("has a bad range end");
    } else if (slash == std::string_view::npos) {
      high = low;  // a single value; "a/n" runs from a to the end
    }
  }
  if (low < field.min || high > field.max || low > high) {
    return bad("is outside " + std::to_string(field.min) + "-" + std::to_string(field.max));
  }
  for (int v = low; v <= high; v += step) (*bits)[static_cast<size_t>(v)] = true;
  return Status::OK();
}

std::string_view Expand(std::string_view text) {
  if (text == "@hourly") return "0 * * * *";
  if (text == "@daily" || text == "@midnight") return "0 0 * * *";
  if (text == "@weekly") return "0 0 * * 0";
  if (text == "@monthly") return "0 0 1 * *";
  if (text == "@yearly" || text == "@annually") return "0 0 1 1 *";
  return text;
}

}  // namespace

StatusOr<CronExpr> ParseCron(std::string_view text) {
  text = Expand(text);
  std::vector<std::string_view> fields;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && text[i] == ' ') ++i;
    const size_t start = i;
    while (i < text.size() && text[i] != ' ') ++i;
    if (i > start) fields.push_back(text.substr(start, i - start));
  }
  if (fields.size() != 5) {
    return Status::InvalidArgument("a cron expression has 5 fields (minute hour day-of-month "
                                   "month day-of-week), got " +
                                   std::to_string(fields.size()));
  }
  CronExpr expr;
  for (size_t f = 0; f < 5; ++f) {
    std::vector<bool> bits(static_cast<size_t>(kFields[f].max) + 1, false);
    std::string_view rest = fields[f];
    while (true) {
      const size_t comma = rest.find(',');
      WISP_RETURN_IF_ERROR(ParseItem(kFields[f], rest.substr(0, comma), &bits));
      if (comma == std::string_view::npos) break;
      rest = rest.substr(comma + 1);
    }
    for (size_t v = 0; v < bits.size(); ++v) {
      if (!bits[v]) continue;
      switch (f) {
        case 0: expr.minutes.set(v); break;
        case 1: expr.hours.set(v); break;
        case 2: expr.days.set(v); break;
        case 3: expr.months.set(v); break;
        case 4: expr.weekdays.set(v % 7); break;
      }
    }
  }
  // As in Vixie cron, a day field starting with '*' (also "*/2") does not
  // restrict by itself.
  expr.days_restricted = fields[2][0] != '*';
  expr.weekdays_restricted = fields[4][0] != '*';
  return expr;
}

int64_t NextCronMs(const CronExpr& expr, int64_t after_ms) {
  // Start at the next whole minute.
  std::time_t t = static_cast<std::time_t>(after_ms / 60000 * 60 + 60);
  const std::time_t limit = t + std::time_t{5} * 366 * 24 * 3600;
  std::tm tm{};
  while (t < limit) {
    gmtime_r(&t, &tm);
    if (!expr.months[static_cast<size_t>(tm.tm_mon + 1)]) {
      tm.tm_mon += 1;  // the first minute of the next month
      tm.tm_mday = 1;
      tm.tm_hour = 0;
      tm.tm_min = 0;
      tm.tm_sec = 0;
      t = timegm(&tm);
      continue;
    }
    const bool day = expr.days[static_cast<size_t>(tm.tm_mday)];
    const bool weekday = expr.weekdays[static_cast<size_t>(tm.tm_wday)];
    const bool day_ok = expr.days_restricted && expr.weekdays_restricted
                            ? (day || weekday)
                            : (day && weekday);
    if (!day_ok) {
      tm.tm_mday += 1;
      tm.tm_hour = 0;
      tm.tm_min = 0;
      tm.tm_sec = 0;
      t = timegm(&tm);
      continue;
    }
    if (!expr.hours[static_cast<size_t>(tm.tm_hour)]) {
      tm.tm_hour += 1;
      tm.tm_min = 0;
      tm.tm_sec = 0;
      t = timegm(&tm);
      continue;
    }
    if (!expr.minutes[static_cast<size_t>(tm.tm_min)]) {
      t += 60;
      continue;
    }
    return static_cast<int64_t>(t) * 1000;
  }
  return -1;
}

}  // namespace wisp::runtime
