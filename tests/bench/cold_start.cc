// Cold-start benchmark: calls POST /fn/<name> once per name, over one
// keep-alive connection, and reports the latency distribution. Each name must
// be deployed and never called before, so every call is a cold start (the
// controller loads the function into a worker on demand).
//
// Usage: wisp_bench_cold_start --server HOST:PORT [--body B] [--expect E] [--gap-ms N]
//                              [--each] NAME...
// --gap-ms N sleeps N ms between calls (default 0: back to back); the sleep is
// not part of any sample. With a gap, each call is an independent cold start
// (the controller refills its warm pool in between); without, calls beyond the
// warm pool's size compete with its refill.
// Prints "cold_start n=N p50_us=.. p99_us=.. max_us=.." on stdout. Exits 1 if a
// call fails or a reply is not E (default "hello, world"), 2 on bad usage.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "runtime/http_client.h"

namespace {

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string body = "world";
  std::string expect = "hello, world";
  int gap_ms = 0;     // sleep between calls, not timed
  bool each = false;  // print every call's latency on stderr
  std::vector<std::string> names;
};

int Usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s --server HOST:PORT [--body B] [--expect E] [--gap-ms N] [--each] "
               "NAME...\n",
               argv0);
  return 2;
}

bool ParseHostPort(std::string_view s, Options* o) {
  if (s.starts_with("http://")) s.remove_prefix(7);
  while (s.ends_with("/")) s.remove_suffix(1);
  size_t colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  o->host = std::string(s.substr(0, colon));
  char* end = nullptr;
  std::string port(s.substr(colon + 1));
  long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p <= 0 || p > 65535) return false;
  o->port = static_cast<int>(p);
  return true;
}

// Nearest-rank percentile of sorted samples.
double Percentile(const std::vector<double>& sorted, double pct) {
  size_t rank = static_cast<size_t>(std::ceil(pct / 100.0 * sorted.size()));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (arg == "--server") {
      const char* v = next();
      if (v == nullptr || !ParseHostPort(v, &opt)) return Usage(argv[0]);
    } else if (arg == "--body") {
      const char* v = next();
      if (v == nullptr) return Usage(argv[0]);
      opt.body = v;
    } else if (arg == "--expect") {
      const char* v = next();
      if (v == nullptr) return Usage(argv[0]);
      opt.expect = v;
    } else if (arg == "--gap-ms") {
      const char* v = next();
      if (v == nullptr) return Usage(argv[0]);
      char* end = nullptr;
      long ms = std::strtol(v, &end, 10);
      if (*v == '\0' || *end != '\0' || ms < 0 || ms > 60000) return Usage(argv[0]);
      opt.gap_ms = static_cast<int>(ms);
    } else if (arg == "--each") {
      opt.each = true;
    } else if (arg.starts_with("--")) {
      return Usage(argv[0]);
    } else {
      opt.names.emplace_back(arg);
    }
  }
  if (opt.port == 0 || opt.names.empty()) return Usage(argv[0]);

  wisp::runtime::HttpClient client(opt.host, opt.port, /*timeout_ms=*/10000);
  // Open the connection before timing, so no sample pays for the TCP handshake.
  {
    auto r = client.Request("GET", "/healthz");
    if (!r.ok()) {
      std::fprintf(stderr, "cold_start: GET /healthz: %s\n", r.status().ToString().c_str());
      return 1;
    }
  }

  std::vector<double> micros;
  micros.reserve(opt.names.size());
  int failures = 0;
  bool first = true;
  for (const std::string& name : opt.names) {
    if (opt.gap_ms > 0 && !first) {
      std::this_thread::sleep_for(std::chrono::milliseconds(opt.gap_ms));
    }
    first = false;
    std::string target = "/fn/" + name;
    auto start = std::chrono::steady_clock::now();
    auto r = client.Request("POST", target, {}, opt.body);
    auto end = std::chrono::steady_clock::now();
    if (!r.ok()) {
      std::fprintf(stderr, "cold_start: POST %s: %s\n", target.c_str(),
                   r.status().ToString().c_str());
      ++failures;
      continue;
    }
    if (r->status != 200 || r->body != opt.expect) {
      std::fprintf(stderr, "cold_start: POST %s: status %d, body \"%s\" (want 200 \"%s\")\n",
                   target.c_str(), r->status, r->body.c_str(), opt.expect.c_str());
      ++failures;
      continue;
    }
    double us = std::chrono::duration<double, std::micro>(end - start).count();
    if (opt.each) std::fprintf(stderr, "cold_start %s %.0f us\n", name.c_str(), us);
    micros.push_back(us);
  }
  if (micros.empty()) {
    std::fprintf(stderr, "cold_start: no successful calls\n");
    return 1;
  }
  std::sort(micros.begin(), micros.end());
  std::printf("cold_start n=%zu p50_us=%.0f p99_us=%.0f max_us=%.0f\n", micros.size(),
              Percentile(micros, 50), Percentile(micros, 99), micros.back());
  if (failures > 0) {
    std::fprintf(stderr, "cold_start: %d of %zu calls failed\n", failures, opt.names.size());
    return 1;
  }
  return 0;
}
