// Cluster benchmark: deploy propagation between two controllers of one
// cluster (wisp up --nats URL --cluster NAME) on a nats-server -js.
//
// Each round deploys the .so under a fresh name on controller A (PUT
// /v1/functions/<name>) and polls controller B's /fn/<name> over one
// keep-alive connection until it answers 200: the round's figure is the
// time from sending the deploy to B's first 200 (A's deploy, the KV puts,
// B's hint, reads, artifact check, store and install, and B's cold start).
// The floor, in the same run: a raw JetStream KV put through nats.c, from
// the call to a plain subscriber on the key's subject receiving it.
//
// Usage: wisp_bench_cluster --nats URL --a HOST:PORT --a-token T --b HOST:PORT
//                           --b-token T --so PATH [--rounds N]
// Prints "cluster rounds=N floor_p50_us=.. floor_max_us=.. propagation_p50_us=..
// propagation_max_us=.." on stdout. Exits 1 when a round fails (B never
// serves within 10 s, a deploy is refused), 2 on bad usage.
#include <nats/nats.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "runtime/http_client.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string nats;
  std::string a, a_token, b, b_token, so;
  int rounds = 20;
};

int Usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s --nats URL --a HOST:PORT --a-token T --b HOST:PORT --b-token T "
               "--so PATH [--rounds N]\n",
               argv0);
  return 2;
}

bool SplitHostPort(const std::string& text, std::string* host, int* port) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  *host = text.substr(0, colon);
  *port = std::atoi(text.c_str() + colon + 1);
  return *port > 0 && *port < 65536;
}

int64_t Micros(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

int64_t Percentile(std::vector<int64_t> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

// The floor: a KV put, from the call until a plain subscriber has it.
bool MeasureFloor(const std::string& url, int rounds, std::vector<int64_t>* out) {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  kvStore* kv = nullptr;
  natsSubscription* sub = nullptr;
  natsOptions* opts = nullptr;
  bool ok = natsOptions_Create(&opts) == NATS_OK && natsOptions_SetURL(opts, url.c_str()) == NATS_OK &&
            natsOptions_SetSendAsap(opts, true) == NATS_OK &&
            natsConnection_Connect(&nc, opts) == NATS_OK &&
            natsConnection_JetStream(&js, nc, nullptr) == NATS_OK;
  if (ok) {
    kvConfig config;
    kvConfig_Init(&config);
    config.Bucket = "wisp-bench-floor";
    config.History = 1;
    ok = js_CreateKeyValue(&kv, js, &config) == NATS_OK &&
         natsConnection_SubscribeSync(&sub, nc, "$KV.wisp-bench-floor.key") == NATS_OK &&
         natsConnection_Flush(nc) == NATS_OK;
  }
  const std::string value(512, 'v');
  for (int i = 0; ok && i < rounds; ++i) {
    const auto start = Clock::now();
    uint64_t rev = 0;
    natsMsg* msg = nullptr;
    ok = kvStore_Put(&rev, kv, "key", value.data(), static_cast<int>(value.size())) == NATS_OK &&
         natsSubscription_NextMsg(&msg, sub, 5000) == NATS_OK;
    if (ok) out->push_back(Micros(Clock::now() - start));
    natsMsg_Destroy(msg);
  }
  if (js != nullptr) (void)js_DeleteKeyValue(js, "wisp-bench-floor");
  natsSubscription_Destroy(sub);
  kvStore_Destroy(kv);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  natsOptions_Destroy(opts);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) return Usage(argv[0]);
    const std::string value = argv[++i];
    if (arg == "--nats") o.nats = value;
    else if (arg == "--a") o.a = value;
    else if (arg == "--a-token") o.a_token = value;
    else if (arg == "--b") o.b = value;
    else if (arg == "--b-token") o.b_token = value;
    else if (arg == "--so") o.so = value;
    else if (arg == "--rounds") o.rounds = std::atoi(value.c_str());
    else return Usage(argv[0]);
  }
  std::string a_host, b_host;
  int a_port = 0, b_port = 0;
  if (o.nats.empty() || o.so.empty() || o.rounds < 1 || !SplitHostPort(o.a, &a_host, &a_port) ||
      !SplitHostPort(o.b, &b_host, &b_port)) {
    return Usage(argv[0]);
  }
  std::ifstream in(o.so, std::ios::binary);
  const std::string so((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (so.empty()) {
    std::fprintf(stderr, "cluster_bench: cannot read %s\n", o.so.c_str());
    return 2;
  }

  std::vector<int64_t> floor;
  if (!MeasureFloor(o.nats, o.rounds, &floor)) {
    std::fprintf(stderr, "cluster_bench: the KV floor failed (is the server run with -js?)\n");
    return 1;
  }

  wisp::runtime::HttpClient deployer(a_host, a_port, 10000);
  wisp::runtime::HttpClient caller(b_host, b_port, 10000);
  std::vector<int64_t> propagation;
  const std::string stamp = std::to_string(::time(nullptr));
  for (int i = 0; i < o.rounds; ++i) {
    const std::string name = "bench-" + stamp + "-" + std::to_string(i);
    const auto start = Clock::now();
    auto deployed = deployer.Request("PUT", "/v1/functions/" + name,
                                     {{"Authorization", "Bearer " + o.a_token}}, so);
    if (!deployed.ok() || deployed->status != 201) {
      std::fprintf(stderr, "cluster_bench: deploy of %s failed: %s\n", name.c_str(),
                   deployed.ok() ? deployed->body.c_str() : deployed.status().ToString().c_str());
      return 1;
    }
    bool served = false;
    while (!served && Clock::now() - start < std::chrono::seconds(10)) {
      auto r = caller.Request("POST", "/fn/" + name, {}, "world");
      served = r.ok() && r->status == 200;
      if (!served) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (!served) {
      std::fprintf(stderr, "cluster_bench: %s was not served by B within 10 s\n", name.c_str());
      return 1;
    }
    propagation.push_back(Micros(Clock::now() - start));
    // Removed again (on every node), so the rounds do not pile up workers.
    (void)deployer.Request("DELETE", "/v1/functions/" + name,
                           {{"Authorization", "Bearer " + o.a_token}}, "");
  }
  std::printf("cluster rounds=%d floor_p50_us=%lld floor_max_us=%lld propagation_p50_us=%lld "
              "propagation_max_us=%lld\n",
              o.rounds, static_cast<long long>(Percentile(floor, 0.5)),
              static_cast<long long>(Percentile(floor, 1.0)),
              static_cast<long long>(Percentile(propagation, 0.5)),
              static_cast<long long>(Percentile(propagation, 1.0)));
  return 0;
}
