// A reference for the events benchmark: the least a relay on NATS must do to
// turn each event into one binary-mode CloudEvent, with nothing else (no
// worker, no function, no queue). Each message on bench.in is published on
// bench.done with the headers a function's emitted event carries through wisp
// (ce-id, ce-source, ce-type, ce-specversion, ce-time, traceparent), through
// nats.c's header API; a request on wisp.fn.hello gets "hello, <data>", so
// wisp_bench_events runs against it unchanged. run.sh reports wisp's events/s
// against this relay's beside the raw pub/sub floor.
//
// Usage: wisp_bench_nats_relay --nats URL   (runs until killed)
#include <nats/nats.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <string>
#include <string_view>

namespace {

natsConnection* connection = nullptr;
std::atomic<uint64_t> next_id{1};

// RFC 3339 UTC with milliseconds, as wisp stamps ce-time.
std::string NowRfc3339Millis() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(
                          now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buf[40];
  const size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(buf + n, sizeof(buf) - n, ".%03dZ", static_cast<int>(millis));
  return buf;
}

void OnEvent(natsConnection*, natsSubscription*, natsMsg* in, void*) {
  const uint64_t id = next_id.fetch_add(1, std::memory_order_relaxed);
  char event_id[40];
  std::snprintf(event_id, sizeof(event_id), "00000000-0000-4000-8000-%012" PRIx64, id);
  char traceparent[64];
  std::snprintf(traceparent, sizeof(traceparent), "00-%016" PRIx64 "%016" PRIx64 "-%016" PRIx64 "-01",
                id, id, id);
  const std::string time = NowRfc3339Millis();
  natsMsg* out = nullptr;
  natsStatus s = natsMsg_Create(&out, "bench.done", nullptr, natsMsg_GetData(in),
                                natsMsg_GetDataLength(in));
  if (s == NATS_OK) s = natsMsgHeader_Add(out, "ce-id", event_id);
  if (s == NATS_OK) s = natsMsgHeader_Add(out, "ce-source", "/wisp/fn/relay");
  if (s == NATS_OK) s = natsMsgHeader_Add(out, "ce-type", "io.wisp.event");
  if (s == NATS_OK) s = natsMsgHeader_Add(out, "ce-specversion", "1.0");
  if (s == NATS_OK) s = natsMsgHeader_Add(out, "ce-time", time.c_str());
  if (s == NATS_OK) s = natsMsgHeader_Add(out, "traceparent", traceparent);
  if (s == NATS_OK) s = natsConnection_PublishMsg(connection, out);
  if (s != NATS_OK) std::fprintf(stderr, "nats_relay: publish: %s\n", natsStatus_GetText(s));
  natsMsg_Destroy(out);
  natsMsg_Destroy(in);
}

void OnHello(natsConnection*, natsSubscription*, natsMsg* in, void*) {
  const char* reply = natsMsg_GetReply(in);
  if (reply != nullptr && *reply != '\0') {
    std::string answer = "hello, ";
    answer.append(natsMsg_GetData(in), static_cast<size_t>(natsMsg_GetDataLength(in)));
    natsConnection_Publish(connection, reply, answer.data(), static_cast<int>(answer.size()));
  }
  natsMsg_Destroy(in);
}

bool Check(natsStatus s, const char* what) {
  if (s == NATS_OK) return true;
  std::fprintf(stderr, "nats_relay: %s: %s\n", what, natsStatus_GetText(s));
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 || std::string_view(argv[1]) != "--nats") {
    std::fprintf(stderr, "usage: %s --nats URL\n", argv[0]);
    return 2;
  }
  natsOptions* options = nullptr;
  natsSubscription* events = nullptr;
  natsSubscription* hello = nullptr;
  // nats.c's default buffering (its flusher thread writes in batches): the
  // relay is measured on throughput. wisp's connection writes once per loop
  // turn, on the loop (the libuv adapter).
  if (!Check(natsOptions_Create(&options), "options") ||
      !Check(natsOptions_SetURL(options, argv[2]), "url") ||
      !Check(natsConnection_Connect(&connection, options), "connect") ||
      !Check(natsConnection_Subscribe(&events, connection, "bench.in", OnEvent, nullptr),
             "subscribe bench.in") ||
      !Check(natsSubscription_SetPendingLimits(events, -1, -1), "pending limits") ||
      !Check(natsConnection_Subscribe(&hello, connection, "wisp.fn.hello", OnHello, nullptr),
             "subscribe wisp.fn.hello") ||
      !Check(natsConnection_Flush(connection), "flush")) {
    return 1;
  }
  std::fprintf(stderr, "nats_relay: relaying bench.in to bench.done\n");
  while (true) ::pause();
}
