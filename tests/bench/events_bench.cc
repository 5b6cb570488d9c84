// Events benchmark: wisp's NATS paths against raw nats.c in the same run.
//
// Needs a nats-server and a `wisp up --nats` on it with two functions deployed:
//   relay (functions/testing/relay.so) with --subscribe bench.in: each event
//     whose body is "emit bench.done x" makes it emit one event on bench.done;
//   hello (examples/hello.so): answers wisp.fn.hello with "hello, <body>".
// run.sh sets this up. Four measurements, alternated round by round so the
// floor and wisp see the same machine:
//   floor pub/sub   one connection publishes N 128 B messages on a subject,
//                   another's async subscription counts them;
//                   msgs/s = N / (first publish -> last receipt);
//   wisp events     the same publisher publishes N fire-and-forget events
//                   (128 B: "emit bench.done x" plus padding) on bench.in, the
//                   same subscriber counts the N events relay emits on
//                   bench.done: NATS -> controller -> worker -> function ->
//                   emit -> NATS; events/s = N / (first publish -> last
//                   receipt); every event must come back;
//   floor req/rep   natsConnection_Request, sequential, against a responder
//                   (its own connection, an async subscription answering
//                   with the data); p50, p99 after a warm-up;
//   wisp req/rep    the same on wisp.fn.hello (warm after the warm-up).
// Request-reply connections use natsOptions_SetSendAsap (without it nats.c's
// flusher timer adds about 1 ms to every round trip); the throughput
// connections keep nats.c's default buffering.
//
// Usage: wisp_bench_events --nats URL [--floor-msgs N] [--wisp-events N]
//          [--requests N] [--warmup N] [--rounds N] [--idle-timeout-s S]
// Per-round lines go to stderr; stdout gets one line of medians over rounds:
//   events floor_msgs_per_s=.. wisp_events_per_s=.. wisp_sent=.. wisp_received=..
//          floor_req_p50_us=.. floor_req_p99_us=.. wisp_req_p50_us=.. wisp_req_p99_us=..
//          req_failures=..
// (wisp_sent and wisp_received summed over rounds). Exits 1 when an event was
// lost or a request failed, 2 on bad usage.
#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string url;
  long floor_msgs = 200000;
  long wisp_events = 50000;
  int requests = 2000;
  int warmup = 200;
  int rounds = 3;
  int idle_timeout_s = 10;  // no new event for this long: the rest are lost
};

int Usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s --nats URL [--floor-msgs N] [--wisp-events N] [--requests N] "
               "[--warmup N] [--rounds N] [--idle-timeout-s S]\n",
               argv0);
  return 2;
}

bool ParseLong(const char* s, long min, long max, long* out) {
  if (s == nullptr || *s == '\0') return false;
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);
  if (*end != '\0' || v < min || v > max) return false;
  *out = v;
  return true;
}

[[noreturn]] void Fail(const char* what, natsStatus s) {
  std::fprintf(stderr, "events_bench: %s: %s (%s)\n", what, natsStatus_GetText(s),
               nats_GetLastError(nullptr));
  std::exit(1);
}

void Check(natsStatus s, const char* what) {
  if (s != NATS_OK) Fail(what, s);
}

natsConnection* Connect(const std::string& url, const char* name, bool send_asap) {
  natsOptions* o = nullptr;
  Check(natsOptions_Create(&o), "natsOptions_Create");
  Check(natsOptions_SetURL(o, url.c_str()), "natsOptions_SetURL");
  Check(natsOptions_SetName(o, name), "natsOptions_SetName");
  if (send_asap) Check(natsOptions_SetSendAsap(o, true), "natsOptions_SetSendAsap");
  natsConnection* nc = nullptr;
  Check(natsConnection_Connect(&nc, o), "natsConnection_Connect");
  natsOptions_Destroy(o);
  return nc;
}

// Counts the messages of one async subscription; the time of the last one.
struct Counter {
  std::atomic<long> count{0};
  std::atomic<int64_t> last_ns{0};  // steady clock, since epoch
  long want = 0;
  std::mutex mu;
  std::condition_variable cv;

  static void OnMsg(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    auto* self = static_cast<Counter*>(closure);
    natsMsg_Destroy(msg);
    self->last_ns.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    if (self->count.fetch_add(1, std::memory_order_acq_rel) + 1 == self->want) {
      std::lock_guard<std::mutex> lock(self->mu);
      self->cv.notify_all();
    }
  }

  // Waits until `want` arrived, or none arrived for idle_s seconds.
  void Wait(int idle_s) {
    std::unique_lock<std::mutex> lock(mu);
    long seen = -1;
    while (count.load() < want) {
      long now_count = count.load();
      if (now_count == seen) break;  // a whole idle period without progress
      seen = now_count;
      cv.wait_for(lock, std::chrono::seconds(idle_s), [&] { return count.load() >= want; });
    }
  }
};

struct ThroughputResult {
  long sent = 0;
  long received = 0;
  double per_s = 0;
};

// Publishes n copies of payload on `subject` from pub; counts what arrives on
// `listen` at sub (the same subject for the floor, bench.done for wisp).
ThroughputResult MeasureThroughput(natsConnection* pub, natsConnection* sub, const char* subject,
                                   const char* listen, const std::string& payload, long n,
                                   int idle_timeout_s) {
  // Never freed: after a timeout, a late message's callback may still use it.
  Counter& counter = *new Counter;
  counter.want = n;
  natsSubscription* s = nullptr;
  Check(natsConnection_Subscribe(&s, sub, listen, Counter::OnMsg, &counter), "subscribe");
  Check(natsSubscription_SetPendingLimits(s, -1, -1), "natsSubscription_SetPendingLimits");
  Check(natsConnection_Flush(sub), "flush subscriber");

  const auto start = Clock::now();
  for (long i = 0; i < n; ++i) {
    natsStatus st =
        natsConnection_Publish(pub, subject, payload.data(), static_cast<int>(payload.size()));
    if (st != NATS_OK) Fail("publish", st);
  }
  Check(natsConnection_Flush(pub), "flush publisher");
  counter.Wait(idle_timeout_s);

  ThroughputResult r;
  r.sent = n;
  r.received = counter.count.load();
  const int64_t last = counter.last_ns.load();
  const double secs =
      static_cast<double>(last - start.time_since_epoch().count()) / 1e9;  // steady clock, ns
  if (r.received > 0 && secs > 0) r.per_s = static_cast<double>(r.received) / secs;
  natsSubscription_Unsubscribe(s);
  natsSubscription_Destroy(s);
  return r;
}

// The floor's responder: answers every request with its data.
void OnEchoRequest(natsConnection* nc, natsSubscription*, natsMsg* msg, void*) {
  const char* reply = natsMsg_GetReply(msg);
  if (reply != nullptr && *reply != '\0') {
    natsConnection_Publish(nc, reply, natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
  }
  natsMsg_Destroy(msg);
}

// Nearest-rank percentile of sorted samples.
double Percentile(const std::vector<double>& sorted, double pct) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(pct / 100.0 * sorted.size()));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

struct LatencyResult {
  double p50_us = 0;
  double p99_us = 0;
  int failures = 0;
};

// Sequential requests; only those after the warm-up are timed. A reply must be
// `expect` and carry no service error.
LatencyResult MeasureRequests(natsConnection* nc, const char* subject, const std::string& data,
                              const std::string& expect, int warmup, int n) {
  LatencyResult r;
  std::vector<double> micros;
  micros.reserve(static_cast<size_t>(n));
  for (int i = 0; i < warmup + n; ++i) {
    natsMsg* reply = nullptr;
    const auto t0 = Clock::now();
    natsStatus s = natsConnection_Request(&reply, nc, subject, data.data(),
                                          static_cast<int>(data.size()), 5000);
    const auto t1 = Clock::now();
    bool ok = s == NATS_OK;
    if (ok) {
      std::string_view got(natsMsg_GetData(reply), static_cast<size_t>(natsMsg_GetDataLength(reply)));
      const char* error = nullptr;
      if (natsMsgHeader_Get(reply, "Nats-Service-Error", &error) == NATS_OK) ok = false;
      if (got != expect) ok = false;
      if (!ok && r.failures < 5) {
        std::fprintf(stderr, "events_bench: request %s: reply \"%.*s\"%s%s\n", subject,
                     static_cast<int>(got.size()), got.data(), error ? ", error: " : "",
                     error ? error : "");
      }
    } else if (r.failures < 5) {
      std::fprintf(stderr, "events_bench: request %s: %s\n", subject, natsStatus_GetText(s));
    }
    natsMsg_Destroy(reply);
    if (!ok) {
      ++r.failures;
      continue;
    }
    if (i >= warmup) micros.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  std::sort(micros.begin(), micros.end());
  r.p50_us = Percentile(micros, 50);
  r.p99_us = Percentile(micros, 99);
  return r;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 == 1 ? v[m] : (v[m - 1] + v[m]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    long n = 0;
    if (arg == "--nats" && v != nullptr) {
      opt.url = v;
    } else if (arg == "--floor-msgs" && ParseLong(v, 1, 100000000, &n)) {
      opt.floor_msgs = n;
    } else if (arg == "--wisp-events" && ParseLong(v, 1, 10000000, &n)) {
      opt.wisp_events = n;
    } else if (arg == "--requests" && ParseLong(v, 1, 10000000, &n)) {
      opt.requests = static_cast<int>(n);
    } else if (arg == "--warmup" && ParseLong(v, 0, 10000000, &n)) {
      opt.warmup = static_cast<int>(n);
    } else if (arg == "--rounds" && ParseLong(v, 1, 100, &n)) {
      opt.rounds = static_cast<int>(n);
    } else if (arg == "--idle-timeout-s" && ParseLong(v, 1, 3600, &n)) {
      opt.idle_timeout_s = static_cast<int>(n);
    } else {
      return Usage(argv[0]);
    }
    ++i;
  }
  if (opt.url.empty()) return Usage(argv[0]);

  Check(nats_Open(-1), "nats_Open");
  natsConnection* pub = Connect(opt.url, "bench-pub", false);
  natsConnection* sub = Connect(opt.url, "bench-sub", false);
  natsConnection* req = Connect(opt.url, "bench-req", true);
  natsConnection* resp = Connect(opt.url, "bench-resp", true);

  natsSubscription* responder = nullptr;
  Check(natsConnection_Subscribe(&responder, resp, "bench.echo", OnEchoRequest, nullptr),
        "subscribe bench.echo");
  Check(natsConnection_Flush(resp), "flush responder");

  const std::string floor_payload(128, 'x');
  // relay ignores lines that are not commands: pad its body to the same 128 B.
  std::string wisp_payload = "emit bench.done x\n";
  wisp_payload.resize(128, '#');
  const std::string rr_data = "world";

  // Warm up wisp: relay loads on its first event, hello on its first request.
  {
    ThroughputResult w = MeasureThroughput(pub, sub, "bench.in", "bench.done", wisp_payload, 200,
                                           opt.idle_timeout_s);
    if (w.received != w.sent) {
      std::fprintf(stderr, "events_bench: warm-up: %ld of %ld events came back\n", w.received,
                   w.sent);
      return 1;
    }
  }

  std::vector<double> floor_rate, wisp_rate, floor_p50, floor_p99, wisp_p50, wisp_p99;
  long wisp_sent = 0, wisp_received = 0;
  int req_failures = 0;
  for (int round = 1; round <= opt.rounds; ++round) {
    ThroughputResult f = MeasureThroughput(pub, sub, "bench.floor", "bench.floor", floor_payload,
                                           opt.floor_msgs, opt.idle_timeout_s);
    std::fprintf(stderr, "events_bench: round %d floor pub/sub: %ld/%ld msgs, %.0f msgs/s\n",
                 round, f.received, f.sent, f.per_s);
    ThroughputResult w = MeasureThroughput(pub, sub, "bench.in", "bench.done", wisp_payload,
                                           opt.wisp_events, opt.idle_timeout_s);
    std::fprintf(stderr, "events_bench: round %d wisp events: %ld/%ld events, %.0f events/s\n",
                 round, w.received, w.sent, w.per_s);
    floor_rate.push_back(f.per_s);
    wisp_rate.push_back(w.per_s);
    wisp_sent += w.sent;
    wisp_received += w.received;

    LatencyResult fr = MeasureRequests(req, "bench.echo", rr_data, rr_data,
                                       round == 1 ? opt.warmup : opt.warmup / 4, opt.requests);
    std::fprintf(stderr, "events_bench: round %d floor request-reply: p50 %.1f us, p99 %.1f us\n",
                 round, fr.p50_us, fr.p99_us);
    LatencyResult wr = MeasureRequests(req, "wisp.fn.hello", rr_data, "hello, " + rr_data,
                                       round == 1 ? opt.warmup : opt.warmup / 4, opt.requests);
    std::fprintf(stderr, "events_bench: round %d wisp request-reply: p50 %.1f us, p99 %.1f us%s\n",
                 round, wr.p50_us, wr.p99_us, wr.failures > 0 ? " (with failures)" : "");
    floor_p50.push_back(fr.p50_us);
    floor_p99.push_back(fr.p99_us);
    wisp_p50.push_back(wr.p50_us);
    wisp_p99.push_back(wr.p99_us);
    req_failures += fr.failures + wr.failures;
  }

  std::printf(
      "events floor_msgs_per_s=%.0f wisp_events_per_s=%.0f wisp_sent=%ld wisp_received=%ld "
      "floor_req_p50_us=%.1f floor_req_p99_us=%.1f wisp_req_p50_us=%.1f wisp_req_p99_us=%.1f "
      "req_failures=%d\n",
      Median(floor_rate), Median(wisp_rate), wisp_sent, wisp_received, Median(floor_p50),
      Median(floor_p99), Median(wisp_p50), Median(wisp_p99), req_failures);
  std::fflush(stdout);

  natsSubscription_Unsubscribe(responder);
  natsSubscription_Destroy(responder);
  natsConnection_Destroy(pub);
  natsConnection_Destroy(sub);
  natsConnection_Destroy(req);
  natsConnection_Destroy(resp);
  nats_Close();
  return wisp_received == wisp_sent && req_failures == 0 ? 0 : 1;
}
