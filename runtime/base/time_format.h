// RFC 3339 timestamps from unix time. Pure functions; any thread.
#ifndef WISP_RUNTIME_BASE_TIME_FORMAT_H_
#define WISP_RUNTIME_BASE_TIME_FORMAT_H_

#include <sys/time.h>

#include <cstdint>
#include <cstdio>
#include <ctime>
#include <string>

namespace wisp {

inline int64_t NowUnixMicros() {
  timeval tv{};
  ::gettimeofday(&tv, nullptr);
  return static_cast<int64_t>(tv.tv_sec) * 1000000 + tv.tv_usec;
}

// 2026-11-28T01:02:03.456789Z (UTC, microseconds).
inline std::string FormatUnixMicros(int64_t us) {
  const std::time_t seconds = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[40];
  const size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%06lldZ", static_cast<long long>(us % 1000000));
  return buf;
}

}  // namespace wisp

#endif  // WISP_RUNTIME_BASE_TIME_FORMAT_H_
