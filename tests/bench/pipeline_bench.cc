// Pipeline benchmark: a three-stage event pipeline end to end, through wisp
// and, as the floor, through raw nats.c, in the same run.
//
// wisp (run.sh deploys it, in one of three modes: plain subscriptions on the
// embedded broker, --durable on the embedded broker, --durable on JetStream):
//   stage A  forward.so  --subscribe <subject>    FORWARD_TO=<subject>.a
//   stage B  forward.so  --subscribe <subject>.a  FORWARD_TO=<subject>.b
//   sink     journal.so  --subscribe <subject>.b  JOURNAL=<sink file>
// Events go in through the controller's HTTP API (POST /v1/events/<subject>,
// the control API token as a bearer token, one keep-alive connection per
// publisher); the sink appends one line per event body, which this program
// reads back as it grows (inotify on the file, so an arrival is seen when the
// line is written, with no polling interval).
//   throughput  N events, by P concurrent publishers, each waiting for its
//               202 before the next; events/s = N / (first publish -> the
//               sink holding all N distinct bodies). A durable pipeline may
//               deliver an event twice (at least once): duplicates are
//               counted, not waited for. The accept rate (N / last 202) is
//               reported too.
//   latency     events published one at a time, each waited for at the sink,
//               with a gap between them; the figure is POST sent -> its line
//               at the sink (so it includes the publish's 202 round trip).
// A warm-up (the functions load on their first events) comes first; then
// rounds of throughput and latency, bodies distinct across rounds.
//
// floor (raw nats.c, the same three hops on one nats-server): four
// connections; stage A's and B's async subscriptions republish each message
// on the next subject, the sink's subscription appends the body as a line to a
// file (open, write, close, as journal does) and takes the time.
//   throughput  one connection publishes N messages (nats.c's default
//               buffering), msgs/s = N / (first publish -> the sink's Nth);
//   latency     one message at a time (connections with SendAsap), publish ->
//               written at the sink, with the same gap.
// jsfloor (raw JetStream): a file-storage stream, and sequential js_Publish
// calls each awaiting its PubAck (with a Nats-Msg-Id, as wisp publishes a
// durable event): the latency of storing one event. Then the same three
// hops through JetStream with durable pull consumers and acks (JsPipeline):
// throughput (N events published asynchronously) and latency (one at a
// time, js_Publish -> written at the sink), medians over rounds.
//
// Usage:
//   wisp_bench_pipeline floor   --nats URL --dir DIR [--events N] [--latency-events N]
//                               [--gap-us G] [--rounds R]
//   wisp_bench_pipeline jsfloor --nats URL --dir DIR [--events N] [--latency-events N]
//                               [--gap-us G] [--rounds R]
//   wisp_bench_pipeline wisp    --server HOST:PORT --token T --subject S --sink FILE
//                               [--events N] [--publishers P] [--latency-events N]
//                               [--gap-us G] [--warmup N] [--rounds R] [--idle-timeout-s S]
// stdout: one line "pipeline mode=.. key=value ..." (floor and wisp: medians
// over rounds; wisp's events, received, duplicates and lost summed over them). Progress and errors on stderr. Exits 1 when events were lost or a
// publish failed, 2 on bad usage.
#include <fcntl.h>
#include <nats/nats.h>
#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "runtime/http_client.h"

namespace {

using Clock = std::chrono::steady_clock;

int64_t NowNs() { return Clock::now().time_since_epoch().count(); }

struct Options {
  std::string mode;
  std::string nats_url;
  std::string dir;
  std::string host = "127.0.0.1";
  int port = 0;
  std::string token;
  std::string subject;
  std::string sink;
  long events = 5000;
  int publishers = 4;
  int latency_events = 300;
  int gap_us = 2000;
  int warmup = 50;
  int rounds = 3;
  int idle_timeout_s = 15;
};

int Usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s floor --nats URL --dir DIR [--events N] [--latency-events N] "
               "[--gap-us G] [--rounds R]\n"
               "       %s jsfloor --nats URL --dir DIR [--events N] [--latency-events N] "
               "[--gap-us G] [--rounds R]\n"
               "       %s wisp --server HOST:PORT --token T --subject S --sink FILE [--events N] "
               "[--publishers P] [--latency-events N] [--gap-us G] [--warmup N] [--rounds R] "
               "[--idle-timeout-s S]\n",
               argv0, argv0, argv0);
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

bool ParseHostPort(std::string_view s, Options* o) {
  if (s.starts_with("http://")) s.remove_prefix(7);
  while (s.ends_with("/")) s.remove_suffix(1);
  size_t colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  o->host = std::string(s.substr(0, colon));
  long p = 0;
  if (!ParseLong(std::string(s.substr(colon + 1)).c_str(), 1, 65535, &p)) return false;
  o->port = static_cast<int>(p);
  return true;
}

// Nearest-rank percentile of sorted samples.
double Percentile(const std::vector<double>& sorted, double pct) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(pct / 100.0 * sorted.size()));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 == 1 ? v[m] : (v[m - 1] + v[m]) / 2;
}

void SleepUs(int us) {
  if (us > 0) std::this_thread::sleep_for(std::chrono::microseconds(us));
}

// Parses "<prefix><number>" into the number; -1 when it is not one.
long IdOf(std::string_view line, std::string_view prefix) {
  if (!line.starts_with(prefix)) return -1;
  line.remove_prefix(prefix.size());
  if (line.empty() || line.size() > 12) return -1;
  long v = 0;
  for (char c : line) {
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

// ---------------------------------------------------------------- nats.c floor

[[noreturn]] void NatsFail(const char* what, natsStatus s) {
  std::fprintf(stderr, "pipeline_bench: %s: %s (%s)\n", what, natsStatus_GetText(s),
               nats_GetLastError(nullptr));
  std::exit(1);
}

void Check(natsStatus s, const char* what) {
  if (s != NATS_OK) NatsFail(what, s);
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

natsSubscription* Subscribe(natsConnection* nc, const std::string& subject, natsMsgHandler cb,
                            void* closure) {
  natsSubscription* s = nullptr;
  Check(natsConnection_Subscribe(&s, nc, subject.c_str(), cb, closure), "subscribe");
  Check(natsSubscription_SetPendingLimits(s, -1, -1), "natsSubscription_SetPendingLimits");
  return s;
}

// Stage A and B: republish on the next subject (the closure), from the
// subscription's own connection.
void OnForward(natsConnection* nc, natsSubscription*, natsMsg* msg, void* closure) {
  const auto* to = static_cast<const std::string*>(closure);
  natsStatus s = natsConnection_Publish(nc, to->c_str(), natsMsg_GetData(msg),
                                        natsMsg_GetDataLength(msg));
  if (s != NATS_OK) std::fprintf(stderr, "pipeline_bench: forward: %s\n", natsStatus_GetText(s));
  natsMsg_Destroy(msg);
}

// The floor's sink: appends the body and a newline to its file, as journal
// does, then counts it and takes the time.
struct FloorSink {
  std::string path;
  std::mutex mu;
  std::condition_variable cv;
  long count = 0;
  long want = 0;
  int64_t last_ns = 0;

  static void OnMsg(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    static_cast<FloorSink*>(closure)->Append(msg);
    natsMsg_Destroy(msg);
  }

  void Append(natsMsg* msg) {
    const int len = natsMsg_GetDataLength(msg);
    std::string line(natsMsg_GetData(msg), static_cast<size_t>(len));
    line.push_back('\n');
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      ssize_t ignored = ::write(fd, line.data(), line.size());
      (void)ignored;
      ::close(fd);
    }
    const int64_t now = NowNs();
    std::lock_guard<std::mutex> lock(mu);
    last_ns = now;
    if (++count >= want) cv.notify_all();
  }

  void Reset(long n) {
    std::lock_guard<std::mutex> lock(mu);
    count = 0;
    want = n;
    last_ns = 0;
  }

  // Waits until `want` arrived or none arrived for idle_s; the count.
  long Wait(int idle_s) {
    std::unique_lock<std::mutex> lock(mu);
    long seen = -1;
    while (count < want && count != seen) {
      seen = count;
      cv.wait_for(lock, std::chrono::seconds(idle_s), [&] { return count >= want; });
    }
    return count;
  }
};

// One three-hop chain on four connections: <prefix>.new -> A -> <prefix>.a ->
// B -> <prefix>.b -> sink.
struct FloorChain {
  natsConnection* pub = nullptr;
  natsConnection* conns[3] = {};
  natsSubscription* subs[3] = {};
  std::string subjects[3];
  std::string to_a, to_b;
  FloorSink sink;

  FloorChain(const std::string& url, const std::string& prefix, const std::string& sink_path,
             bool send_asap) {
    subjects[0] = prefix + ".new";
    subjects[1] = prefix + ".a";
    subjects[2] = prefix + ".b";
    to_a = subjects[1];
    to_b = subjects[2];
    sink.path = sink_path;
    pub = Connect(url, "pipeline-pub", send_asap);
    conns[0] = Connect(url, "pipeline-stage-a", send_asap);
    conns[1] = Connect(url, "pipeline-stage-b", send_asap);
    conns[2] = Connect(url, "pipeline-sink", send_asap);
    subs[0] = Subscribe(conns[0], subjects[0], OnForward, &to_a);
    subs[1] = Subscribe(conns[1], subjects[1], OnForward, &to_b);
    subs[2] = Subscribe(conns[2], subjects[2], FloorSink::OnMsg, &sink);
    for (natsConnection* nc : conns) Check(natsConnection_Flush(nc), "flush");
  }

  ~FloorChain() {
    for (natsSubscription* s : subs) {
      natsSubscription_Unsubscribe(s);
      natsSubscription_Destroy(s);
    }
    for (natsConnection* nc : conns) natsConnection_Destroy(nc);
    natsConnection_Destroy(pub);
  }

  void Publish(const std::string& body) {
    natsStatus s = natsConnection_Publish(pub, subjects[0].c_str(), body.data(),
                                          static_cast<int>(body.size()));
    if (s != NATS_OK) NatsFail("publish", s);
  }
};

struct Rate {
  long sent = 0;
  long received = 0;
  long duplicates = 0;
  double per_s = 0;
  double accept_per_s = 0;  // wisp: N / last 202
};

struct Latency {
  double p50_us = 0;
  double p99_us = 0;
  double max_us = 0;
  int n = 0;
  int failures = 0;
};

Latency Summarize(std::vector<double> micros, int failures) {
  Latency l;
  std::sort(micros.begin(), micros.end());
  l.n = static_cast<int>(micros.size());
  l.p50_us = Percentile(micros, 50);
  l.p99_us = Percentile(micros, 99);
  l.max_us = micros.empty() ? 0 : micros.back();
  l.failures = failures;
  return l;
}

Rate FloorThroughput(FloorChain& chain, long n, int idle_s) {
  chain.sink.Reset(n);
  const int64_t start = NowNs();
  for (long i = 0; i < n; ++i) chain.Publish("t-" + std::to_string(i));
  Check(natsConnection_Flush(chain.pub), "flush publisher");
  Rate r;
  r.sent = n;
  r.received = chain.sink.Wait(idle_s);
  int64_t last;
  {
    std::lock_guard<std::mutex> lock(chain.sink.mu);
    last = chain.sink.last_ns;
  }
  const double secs = static_cast<double>(last - start) / 1e9;
  if (r.received > 0 && secs > 0) r.per_s = static_cast<double>(r.received) / secs;
  return r;
}

Latency FloorLatency(FloorChain& chain, int warmup, int n, int gap_us, int idle_s) {
  std::vector<double> micros;
  int failures = 0;
  for (int i = 0; i < warmup + n; ++i) {
    chain.sink.Reset(1);
    const int64_t t0 = NowNs();
    chain.Publish("l-" + std::to_string(i));
    if (chain.sink.Wait(idle_s) < 1) {
      ++failures;
      continue;
    }
    int64_t t1;
    {
      std::lock_guard<std::mutex> lock(chain.sink.mu);
      t1 = chain.sink.last_ns;
    }
    if (i >= warmup) micros.push_back(static_cast<double>(t1 - t0) / 1e3);
    SleepUs(gap_us);
  }
  return Summarize(std::move(micros), failures);
}

int RunFloor(const Options& opt) {
  if (opt.nats_url.empty() || opt.dir.empty()) return 2;
  Check(nats_Open(-1), "nats_Open");
  int rc = 0;
  {
    FloorChain tp(opt.nats_url, "pipefloor.tp", opt.dir + "/floor-sink.txt", false);
    FloorChain lat(opt.nats_url, "pipefloor.lat", opt.dir + "/floor-sink-latency.txt", true);
    FloorThroughput(tp, std::min<long>(opt.events, 2000), opt.idle_timeout_s);  // warm-up
    std::vector<double> rates, p50s, p99s;
    long lost = 0;
    for (int round = 1; round <= opt.rounds; ++round) {
      Rate r = FloorThroughput(tp, opt.events, opt.idle_timeout_s);
      Latency l = FloorLatency(lat, round == 1 ? 50 : 10, opt.latency_events, opt.gap_us,
                               opt.idle_timeout_s);
      std::fprintf(stderr,
                   "pipeline_bench: floor round %d: %ld/%ld msgs, %.0f msgs/s; latency p50 %.1f "
                   "us, p99 %.1f us (n=%d)\n",
                   round, r.received, r.sent, r.per_s, l.p50_us, l.p99_us, l.n);
      rates.push_back(r.per_s);
      p50s.push_back(l.p50_us);
      p99s.push_back(l.p99_us);
      lost += (r.sent - r.received) + l.failures;
    }
    std::printf("pipeline mode=floor events=%ld events_per_s=%.0f p50_us=%.1f p99_us=%.1f "
                "lost=%ld rounds=%d\n",
                opt.events, Median(rates), Median(p50s), Median(p99s), lost, opt.rounds);
    std::fflush(stdout);
    if (lost > 0) rc = 1;
  }
  nats_Close();
  return rc;
}

// Adds a file-storage stream named name on the subjects matching pattern.
natsStatus AddFileStream(jsCtx* js, const char* name, const char* pattern,
                         jsErrCode* jerr = nullptr) {
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = name;
  const char* subjects[] = {pattern};
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  jsStreamInfo* si = nullptr;
  natsStatus s = js_AddStream(&si, js, &cfg, nullptr, jerr);
  jsStreamInfo_Destroy(si);
  return s;
}

// The same three hops through JetStream (the floor of wisp's durable
// pipeline on JetStream): a file-storage stream, durable pull consumers with
// explicit acks for A, B and the sink, each on its own connection and thread.
// A and B publish a fetched batch to the next subject (Nats-Msg-Id set, as
// wisp does) and ack the batch once its PubAcks came, as wisp acks an event
// once what it emitted is stored; the sink appends each body, then acks.
class JsPipeline {
 public:
  static constexpr const char* kStream = "WISP_BENCH_JSPIPE";

  JsPipeline(const std::string& url, const std::string& sink_path) {
    sink_.path = sink_path;
    ::unlink(sink_path.c_str());
    pub_ = Connect(url, "jspipe-pub", true);
    Check(natsConnection_JetStream(&pub_js_, pub_, nullptr), "natsConnection_JetStream");
    Check(AddFileStream(pub_js_, kStream, "jspipe.>"), "js_AddStream (pipeline)");
    jsErrCode jerr = static_cast<jsErrCode>(0);
    const char* from[] = {"jspipe.new", "jspipe.a", "jspipe.b"};
    const char* to[] = {"jspipe.a", "jspipe.b", ""};
    const char* durable[] = {"jspipe-a", "jspipe-b", "jspipe-sink"};
    for (int i = 0; i < 3; ++i) {
      Stage& stage = stages_[i];
      stage.nc = Connect(url, durable[i], true);
      Check(natsConnection_JetStream(&stage.js, stage.nc, nullptr), "natsConnection_JetStream");
      jsSubOptions so;
      jsSubOptions_Init(&so);
      so.Stream = kStream;
      so.Config.AckPolicy = js_AckExplicit;
      Check(js_PullSubscribe(&stage.sub, stage.js, from[i], durable[i], nullptr, &so, &jerr),
            "js_PullSubscribe");
      stage.next = to[i];
    }
    for (Stage& stage : stages_) stage.thread = std::thread([this, &stage] { Run(&stage); });
  }

  ~JsPipeline() {
    stop_ = true;
    for (Stage& stage : stages_) {
      stage.thread.join();
      natsSubscription_Destroy(stage.sub);
      jsCtx_Destroy(stage.js);
      natsConnection_Destroy(stage.nc);
    }
    js_DeleteStream(pub_js_, kStream, nullptr, nullptr);
    jsCtx_Destroy(pub_js_);
    natsConnection_Destroy(pub_);
  }

  // n events published asynchronously (each with its Nats-Msg-Id), then
  // every PubAck awaited; events/s = n / (first publish -> the sink's nth).
  Rate Throughput(const std::string& prefix, long n, int idle_s) {
    sink_.Reset(n);
    const int64_t t0 = NowNs();
    for (long i = 0; i < n; ++i) {
      const std::string body = prefix + std::to_string(i);
      jsPubOptions po;
      jsPubOptions_Init(&po);
      po.MsgId = body.c_str();
      Check(js_PublishAsync(pub_js_, "jspipe.new", body.data(), static_cast<int>(body.size()), &po),
            "js_PublishAsync");
    }
    Check(js_PublishAsyncComplete(pub_js_, nullptr), "js_PublishAsyncComplete");
    Rate r;
    r.sent = n;
    r.received = sink_.Wait(idle_s);
    std::lock_guard<std::mutex> lock(sink_.mu);
    const double secs = static_cast<double>(sink_.last_ns - t0) / 1e9;
    r.per_s = secs > 0 ? static_cast<double>(r.received) / secs : 0;
    return r;
  }

  // One event at a time: js_Publish (awaiting its PubAck) -> its line at
  // the sink, with gap_us between events.
  Latency OneAtATime(const std::string& prefix, int warmup, int n, int gap_us, int idle_s) {
    std::vector<double> micros;
    int failures = 0;
    for (int i = 0; i < warmup + n; ++i) {
      const std::string body = prefix + std::to_string(i);
      jsPubOptions po;
      jsPubOptions_Init(&po);
      po.MsgId = body.c_str();
      sink_.Reset(1);
      jsPubAck* ack = nullptr;
      const int64_t t0 = NowNs();
      natsStatus s = js_Publish(&ack, pub_js_, "jspipe.new", body.data(),
                                static_cast<int>(body.size()), &po, nullptr);
      jsPubAck_Destroy(ack);
      if (s != NATS_OK || sink_.Wait(idle_s) < 1) {
        ++failures;
        continue;
      }
      {
        std::lock_guard<std::mutex> lock(sink_.mu);
        if (i >= warmup) micros.push_back(static_cast<double>(sink_.last_ns - t0) / 1e3);
      }
      SleepUs(gap_us);
    }
    return Summarize(std::move(micros), failures);
  }

 private:
  struct Stage {
    natsConnection* nc = nullptr;
    jsCtx* js = nullptr;
    natsSubscription* sub = nullptr;
    std::string next;  // empty: the sink
    std::thread thread;
  };

  void Run(Stage* stage) {
    while (!stop_) {
      natsMsgList list{};
      if (natsSubscription_Fetch(&list, stage->sub, 64, 100, nullptr) != NATS_OK) continue;
      for (int i = 0; i < list.Count; ++i) {
        natsMsg* msg = list.Msgs[i];
        if (stage->next.empty()) {
          sink_.Append(msg);
          continue;
        }
        const std::string id = std::string(natsMsg_GetData(msg), natsMsg_GetDataLength(msg)) +
                               "." + stage->next;
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MsgId = id.c_str();
        Check(js_PublishAsync(stage->js, stage->next.c_str(), natsMsg_GetData(msg),
                              natsMsg_GetDataLength(msg), &po),
              "js_PublishAsync (stage)");
      }
      if (!stage->next.empty()) {
        Check(js_PublishAsyncComplete(stage->js, nullptr), "js_PublishAsyncComplete (stage)");
      }
      for (int i = 0; i < list.Count; ++i) natsMsg_Ack(list.Msgs[i], nullptr);
      natsMsgList_Destroy(&list);
    }
  }

  natsConnection* pub_ = nullptr;
  jsCtx* pub_js_ = nullptr;
  FloorSink sink_;
  Stage stages_[3];
  std::atomic<bool> stop_{false};
};

// Raw JetStream: sequential js_Publish, each awaiting its PubAck.
int RunJsFloor(const Options& opt) {
  if (opt.nats_url.empty() || opt.dir.empty()) return 2;
  Check(nats_Open(-1), "nats_Open");
  natsConnection* nc = Connect(opt.nats_url, "pipeline-js", true);
  jsCtx* js = nullptr;
  Check(natsConnection_JetStream(&js, nc, nullptr), "natsConnection_JetStream");
  const char* stream = "WISP_BENCH_FLOOR";
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = AddFileStream(js, stream, "benchfloor.>", &jerr);
  if (s != NATS_OK) {
    std::fprintf(stderr, "pipeline_bench: js_AddStream: %s (js error %d)\n", natsStatus_GetText(s),
                 static_cast<int>(jerr));
    return 1;
  }

  std::vector<double> micros;
  int failures = 0;
  const int warmup = 50;
  for (int i = 0; i < warmup + opt.latency_events; ++i) {
    const std::string body = "l-" + std::to_string(i);
    const std::string id = "benchfloor-" + std::to_string(i);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = id.c_str();
    jsPubAck* ack = nullptr;
    const int64_t t0 = NowNs();
    s = js_Publish(&ack, js, "benchfloor.new", body.data(), static_cast<int>(body.size()), &po,
                   &jerr);
    const int64_t t1 = NowNs();
    jsPubAck_Destroy(ack);
    if (s != NATS_OK) {
      if (failures++ < 5) {
        std::fprintf(stderr, "pipeline_bench: js_Publish: %s (js error %d)\n",
                     natsStatus_GetText(s), static_cast<int>(jerr));
      }
      continue;
    }
    if (i >= warmup) micros.push_back(static_cast<double>(t1 - t0) / 1e3);
    SleepUs(opt.gap_us);
  }
  Latency l = Summarize(std::move(micros), failures);
  // A sequential, back-to-back run for the stored-publish rate of one publisher.
  const int back_to_back = std::max(opt.latency_events, 1000);
  const int64_t b0 = NowNs();
  int ok = 0;
  for (int i = 0; i < back_to_back; ++i) {
    const std::string id = "benchfloor-b-" + std::to_string(i);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = id.c_str();
    jsPubAck* ack = nullptr;
    if (js_Publish(&ack, js, "benchfloor.new", id.data(), static_cast<int>(id.size()), &po,
                   &jerr) == NATS_OK) {
      ++ok;
    } else {
      ++failures;
    }
    jsPubAck_Destroy(ack);
  }
  const double secs = static_cast<double>(NowNs() - b0) / 1e9;
  std::fprintf(stderr,
               "pipeline_bench: jsfloor: stored publish p50 %.1f us, p99 %.1f us (n=%d); %d "
               "back to back: %.0f/s\n",
               l.p50_us, l.p99_us, l.n, back_to_back, secs > 0 ? ok / secs : 0);
  js_DeleteStream(js, stream, nullptr, nullptr);

  // The three durable hops, medians over rounds.
  std::vector<double> rates, p50s, p99s;
  long lost = 0;
  {
    JsPipeline pipe(opt.nats_url, opt.dir + "/jsfloor-sink.txt");
    pipe.Throughput("w-", std::min<long>(opt.events, 1000), opt.idle_timeout_s);  // warm-up
    for (int round = 1; round <= opt.rounds; ++round) {
      const std::string tag = "r" + std::to_string(round) + "-";
      Rate r = pipe.Throughput("t" + tag, opt.events, opt.idle_timeout_s);
      Latency pl = pipe.OneAtATime("l" + tag, round == 1 ? 50 : 10, opt.latency_events,
                                   opt.gap_us, opt.idle_timeout_s);
      std::fprintf(stderr,
                   "pipeline_bench: jsfloor pipeline round %d: %ld/%ld events, %.0f events/s; "
                   "latency p50 %.1f us, p99 %.1f us\n",
                   round, r.received, r.sent, r.per_s, pl.p50_us, pl.p99_us);
      lost += r.sent - std::min(r.sent, r.received);
      failures += pl.failures;
      rates.push_back(r.per_s);
      p50s.push_back(pl.p50_us);
      p99s.push_back(pl.p99_us);
    }
  }
  std::printf("pipeline mode=jsfloor p50_us=%.1f p99_us=%.1f sequential_per_s=%.0f "
              "pipe_events_per_s=%.0f pipe_p50_us=%.1f pipe_p99_us=%.1f pipe_lost=%ld "
              "failures=%d\n",
              l.p50_us, l.p99_us, secs > 0 ? ok / secs : 0, Median(rates), Median(p50s),
              Median(p99s), lost, failures);
  std::fflush(stdout);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  nats_Close();
  return failures == 0 && lost == 0 ? 0 : 1;
}

// ---------------------------------------------------------------- wisp

// Reads the sink file as it grows: inotify (IN_MODIFY) wakes Poll when the
// sink writes; complete lines are handed out.
class SinkReader {
 public:
  bool Open(const std::string& path) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    ::close(fd);
    ino_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (ino_ < 0 || ::inotify_add_watch(ino_, path.c_str(), IN_MODIFY) < 0) return false;
    file_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    return file_ >= 0;
  }

  ~SinkReader() {
    if (ino_ >= 0) ::close(ino_);
    if (file_ >= 0) ::close(file_);
  }

  // Waits up to timeout_ms for the file to change, then appends its new
  // complete lines to *lines; returns the time the wait ended.
  int64_t Poll(int timeout_ms, std::vector<std::string>* lines) {
    pollfd p{ino_, POLLIN, 0};
    ::poll(&p, 1, timeout_ms);
    const int64_t now = NowNs();
    char events[4096];
    while (::read(ino_, events, sizeof events) > 0) {
    }
    ReadLines(lines);
    return now;
  }

  // Drops what the file holds already.
  void SkipToEnd() {
    std::vector<std::string> ignored;
    ReadLines(&ignored);
  }

 private:
  void ReadLines(std::vector<std::string>* lines) {
    char buf[65536];
    while (true) {
      ssize_t n = ::read(file_, buf, sizeof buf);
      if (n <= 0) break;
      partial_.append(buf, static_cast<size_t>(n));
    }
    size_t begin = 0;
    while (true) {
      size_t nl = partial_.find('\n', begin);
      if (nl == std::string::npos) break;
      lines->emplace_back(partial_, begin, nl - begin);
      begin = nl + 1;
    }
    partial_.erase(0, begin);
  }

  int ino_ = -1;
  int file_ = -1;
  std::string partial_;
};

struct Publisher {
  const Options& opt;
  std::string target;
  wisp::triggers::HeaderList headers;
  std::atomic<int> errors{0};
  std::atomic<bool> stop{false};

  explicit Publisher(const Options& o)
      : opt(o),
        target("/v1/events/" + o.subject),
        headers{{"Authorization", "Bearer " + o.token}} {}

  // Publishes one body until a 202 (retrying errors, 5xx and 429 for up to
  // the idle timeout; a 4xx stops every publisher); false if it never got one.
  bool Send(wisp::runtime::HttpClient& client, const std::string& body) {
    const int64_t deadline = NowNs() + static_cast<int64_t>(opt.idle_timeout_s) * 1000000000;
    while (!stop.load() && NowNs() < deadline) {
      auto r = client.Request("POST", target, headers, body);
      if (r.ok() && r->status == 202) return true;
      if (errors.fetch_add(1) < 5) {
        std::fprintf(stderr, "pipeline_bench: POST %s: %s\n", target.c_str(),
                     r.ok() ? ("status " + std::to_string(r->status) + " " + r->body).c_str()
                            : r.status().ToString().c_str());
      }
      if (r.ok() && r->status >= 400 && r->status < 500 && r->status != 429) {
        stop.store(true);  // a refusal no retry changes (token, subject): give up
        return false;
      }
      if (!r.ok()) client.Close();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }
};

// N events by opt.publishers threads; waits at the sink for all N distinct
// bodies "<prefix><i>".
Rate WispThroughput(const Options& opt, SinkReader& reader, const std::string& prefix, long n,
                    int* publish_failures) {
  reader.SkipToEnd();
  Publisher pub(opt);
  std::atomic<long> failed{0};
  std::atomic<int> done_publishers{0};
  std::atomic<int64_t> last_accept{0};
  std::vector<std::thread> threads;
  const int64_t start = NowNs();
  for (int t = 0; t < opt.publishers; ++t) {
    threads.emplace_back([&, t] {
      wisp::runtime::HttpClient client(opt.host, opt.port, 10000);
      for (long i = t; i < n && !pub.stop.load(); i += opt.publishers) {
        if (!pub.Send(client, prefix + std::to_string(i))) failed.fetch_add(1);
      }
      const int64_t now = NowNs();
      int64_t prev = last_accept.load();
      while (prev < now && !last_accept.compare_exchange_weak(prev, now)) {
      }
      done_publishers.fetch_add(1);
    });
  }
  std::vector<char> seen(static_cast<size_t>(n), 0);
  Rate r;
  r.sent = n;
  int64_t last_arrival = start;
  int64_t last_progress = start;
  std::vector<std::string> lines;
  while (r.received < n) {
    lines.clear();
    const int64_t now = reader.Poll(100, &lines);
    for (const std::string& line : lines) {
      const long id = IdOf(line, prefix);
      if (id < 0 || id >= n) continue;
      if (seen[static_cast<size_t>(id)]) {
        ++r.duplicates;
        continue;
      }
      seen[static_cast<size_t>(id)] = 1;
      ++r.received;
      last_arrival = now;
      last_progress = now;
    }
    if (done_publishers.load() == opt.publishers &&
        (r.received + failed.load() >= n || pub.stop.load())) {
      break;
    }
    if (now - last_progress > static_cast<int64_t>(opt.idle_timeout_s) * 1000000000) {
      std::fprintf(stderr, "pipeline_bench: no event at the sink for %d s: %ld of %ld arrived\n",
                   opt.idle_timeout_s, r.received, n);
      break;
    }
  }
  pub.stop.store(true);
  for (std::thread& t : threads) t.join();
  // Duplicates still in flight are not waited for; count what is there.
  lines.clear();
  reader.Poll(0, &lines);
  for (const std::string& line : lines) {
    const long id = IdOf(line, prefix);
    if (id >= 0 && id < n && seen[static_cast<size_t>(id)]) ++r.duplicates;
  }
  const double secs = static_cast<double>(last_arrival - start) / 1e9;
  if (r.received > 0 && secs > 0) r.per_s = static_cast<double>(r.received) / secs;
  const double accept_secs = static_cast<double>(last_accept.load() - start) / 1e9;
  if (accept_secs > 0) r.accept_per_s = static_cast<double>(n - failed.load()) / accept_secs;
  *publish_failures += static_cast<int>(failed.load());
  return r;
}

Latency WispLatency(const Options& opt, SinkReader& reader, const std::string& prefix,
                    int warmup, int n) {
  reader.SkipToEnd();
  Publisher pub(opt);
  wisp::runtime::HttpClient client(opt.host, opt.port, 10000);
  std::vector<double> micros;
  int failures = 0;
  std::vector<std::string> lines;
  for (int i = 0; i < warmup + n; ++i) {
    const std::string body = prefix + std::to_string(i);
    const int64_t t0 = NowNs();
    if (!pub.Send(client, body)) {
      ++failures;
      continue;
    }
    int64_t t1 = 0;
    const int64_t deadline = t0 + static_cast<int64_t>(opt.idle_timeout_s) * 1000000000;
    while (t1 == 0) {
      lines.clear();
      const int64_t now = reader.Poll(100, &lines);
      for (const std::string& line : lines) {
        if (line == body) t1 = now;
      }
      if (t1 == 0 && now > deadline) break;
    }
    if (t1 == 0) {
      if (failures++ < 5) {
        std::fprintf(stderr, "pipeline_bench: latency event %s never reached the sink\n",
                     body.c_str());
      }
      continue;
    }
    if (i >= warmup) micros.push_back(static_cast<double>(t1 - t0) / 1e3);
    SleepUs(opt.gap_us);
  }
  return Summarize(std::move(micros), failures);
}

int RunWisp(const Options& opt) {
  if (opt.port == 0 || opt.token.empty() || opt.subject.empty() || opt.sink.empty()) return 2;
  SinkReader reader;
  if (!reader.Open(opt.sink)) {
    std::fprintf(stderr, "pipeline_bench: cannot watch %s: %s\n", opt.sink.c_str(),
                 std::strerror(errno));
    return 1;
  }
  int publish_failures = 0;
  // Warm-up: the three functions load on their first events.
  if (opt.warmup > 0) {
    Rate w = WispThroughput(opt, reader, "w-", opt.warmup, &publish_failures);
    std::fprintf(stderr, "pipeline_bench: warm-up: %ld/%ld events at the sink\n", w.received,
                 w.sent);
    if (w.received < w.sent) return 1;
  }
  std::vector<double> rates, accepts, p50s, p99s, maxes;
  long sent = 0, received = 0, duplicates = 0, lost = 0;
  for (int round = 1; round <= opt.rounds; ++round) {
    // Each round's bodies are distinct: "t<round>-<i>", "l<round>-<i>".
    Rate r = WispThroughput(opt, reader, "t" + std::to_string(round) + "-", opt.events,
                            &publish_failures);
    std::fprintf(stderr,
                 "pipeline_bench: round %d throughput: %ld/%ld events at the sink, %.0f events/s "
                 "(accepted %.0f/s), %ld duplicates\n",
                 round, r.received, r.sent, r.per_s, r.accept_per_s, r.duplicates);
    Latency l = WispLatency(opt, reader, "l" + std::to_string(round) + "-", round == 1 ? 20 : 5,
                            opt.latency_events);
    std::fprintf(stderr,
                 "pipeline_bench: round %d latency: p50 %.1f us, p99 %.1f us, max %.1f us "
                 "(n=%d)\n",
                 round, l.p50_us, l.p99_us, l.max_us, l.n);
    rates.push_back(r.per_s);
    accepts.push_back(r.accept_per_s);
    p50s.push_back(l.p50_us);
    p99s.push_back(l.p99_us);
    maxes.push_back(l.max_us);
    sent += r.sent;
    received += r.received;
    duplicates += r.duplicates;
    lost += (r.sent - r.received) + l.failures;
    if (r.received < r.sent) break;  // stuck: later rounds would only wait again
  }
  std::printf("pipeline mode=wisp events=%ld sent=%ld received=%ld duplicates=%ld "
              "events_per_s=%.0f accept_per_s=%.0f p50_us=%.1f p99_us=%.1f max_us=%.1f lost=%ld "
              "publish_failures=%d rounds=%zu\n",
              opt.events, sent, received, duplicates, Median(rates), Median(accepts),
              Median(p50s), Median(p99s), *std::max_element(maxes.begin(), maxes.end()), lost,
              publish_failures, rates.size());
  std::fflush(stdout);
  return lost == 0 && publish_failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage(argv[0]);
  Options opt;
  opt.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string_view arg = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    long n = 0;
    if (v == nullptr) return Usage(argv[0]);
    if (arg == "--nats") {
      opt.nats_url = v;
    } else if (arg == "--dir") {
      opt.dir = v;
    } else if (arg == "--server") {
      if (!ParseHostPort(v, &opt)) return Usage(argv[0]);
    } else if (arg == "--token") {
      opt.token = v;
    } else if (arg == "--subject") {
      opt.subject = v;
    } else if (arg == "--sink") {
      opt.sink = v;
    } else if (arg == "--events" && ParseLong(v, 1, 10000000, &n)) {
      opt.events = n;
    } else if (arg == "--publishers" && ParseLong(v, 1, 64, &n)) {
      opt.publishers = static_cast<int>(n);
    } else if (arg == "--latency-events" && ParseLong(v, 1, 1000000, &n)) {
      opt.latency_events = static_cast<int>(n);
    } else if (arg == "--gap-us" && ParseLong(v, 0, 10000000, &n)) {
      opt.gap_us = static_cast<int>(n);
    } else if (arg == "--warmup" && ParseLong(v, 0, 1000000, &n)) {
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
  int rc = 2;
  if (opt.mode == "floor") {
    rc = RunFloor(opt);
  } else if (opt.mode == "jsfloor") {
    rc = RunJsFloor(opt);
  } else if (opt.mode == "wisp") {
    rc = RunWisp(opt);
  }
  return rc == 2 ? Usage(argv[0]) : rc;
}
