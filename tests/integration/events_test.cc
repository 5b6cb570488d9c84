// Events end to end: functions triggered by published events, request-reply,
// emitted events, the NATS service API, malformed events. Every test runs
// against the embedded broker and against a real nats-server started by the
// test; a few use a plain nats.c client as an outside party.
#include <gtest/gtest.h>
#include <nats/nats.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "api.pb.h"
#include "google/protobuf/util/json_util.h"
#include "tests/integration/harness.h"
#include "tests/support/nats_server.h"

namespace wisp::testing {
namespace {

enum class BrokerKind { kEmbedded, kNats };

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) out.push_back(line);
  return out;
}

template <typename Message>
bool ParseJson(const std::string& json, Message* message) {
  return google::protobuf::util::JsonStringToMessage(json, message).ok();
}

// A plain nats.c client, blocking API, for the test thread.
class NatsClient {
 public:
  ~NatsClient() {
    if (nc_ != nullptr) natsConnection_Destroy(nc_);
  }
  bool Connect(const std::string& url) {
    return natsConnection_ConnectTo(&nc_, url.c_str()) == NATS_OK;
  }
  natsConnection* nc() { return nc_; }

  // Sends a request with headers; returns the reply (owned) or nullptr.
  natsMsg* Request(const std::string& subject, const std::string& data,
                   const std::vector<std::pair<std::string, std::string>>& headers = {},
                   int timeout_ms = 5000) {
    natsMsg* msg = nullptr;
    if (natsMsg_Create(&msg, subject.c_str(), nullptr, data.data(), static_cast<int>(data.size())) !=
        NATS_OK) {
      return nullptr;
    }
    for (const auto& [k, v] : headers) natsMsgHeader_Add(msg, k.c_str(), v.c_str());
    natsMsg* reply = nullptr;
    natsStatus s = natsConnection_RequestMsg(&reply, nc_, msg, timeout_ms);
    natsMsg_Destroy(msg);
    return s == NATS_OK ? reply : nullptr;
  }

  bool Publish(const std::string& subject, const std::string& data,
               const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    natsMsg* msg = nullptr;
    if (natsMsg_Create(&msg, subject.c_str(), nullptr, data.data(), static_cast<int>(data.size())) !=
        NATS_OK) {
      return false;
    }
    for (const auto& [k, v] : headers) natsMsgHeader_Add(msg, k.c_str(), v.c_str());
    const natsStatus s = natsConnection_PublishMsg(nc_, msg);
    natsMsg_Destroy(msg);
    return s == NATS_OK;
  }

 private:
  natsConnection* nc_ = nullptr;
};

std::string Header(natsMsg* msg, const char* name) {
  const char* value = nullptr;
  if (natsMsgHeader_Get(msg, name, &value) != NATS_OK || value == nullptr) return "";
  return value;
}

std::string Data(natsMsg* msg) {
  return std::string(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg)));
}

class EventsTest : public ::testing::TestWithParam<BrokerKind> {
 protected:
  void SetUp() override {
    std::vector<std::string> args = {"--max-body", "4096"};
    if (GetParam() == BrokerKind::kNats) {
      ASSERT_TRUE(nats_.Start());
      args.push_back("--nats");
      args.push_back(nats_.url());
    }
    journal_ = dir_.path() + "/journal";
    controller_ = std::make_unique<Controller>(dir_.path(), args);
    std::string error;
    ASSERT_TRUE(controller_->Start(&error)) << error;
    if (GetParam() == BrokerKind::kNats) {
      ASSERT_TRUE(client_.Connect(nats_.url()));
    }
  }

  void TearDown() override {
    if (HasFailure() && controller_) {
      std::fprintf(stderr, "---- controller log ----\n%s------------------------\n",
                   controller_->Log().c_str());
    }
    if (controller_) controller_->Stop();
  }

  bool nats() const { return GetParam() == BrokerKind::kNats; }

  void DeployOk(const std::string& so_path, const std::string& name,
                std::vector<std::string> extra = {}) {
    CliResult r = controller_->Deploy(so_path, name, std::move(extra));
    ASSERT_EQ(r.exit_code, 0) << "deploy " << name << " failed: " << r.err << r.out;
  }

  void PublishOk(const std::string& subject, const std::string& data,
                 std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"publish", "--server", controller_->url(), subject, data};
    args.insert(args.end(), extra.begin(), extra.end());
    CliResult r = RunCli(args);
    ASSERT_EQ(r.exit_code, 0) << "publish on " << subject << " failed: " << r.err;
    EXPECT_NE(r.out.find("published "), std::string::npos) << r.out;
  }

  runtime::HttpClientResponse Request(const std::string& subject, const std::string& data) {
    return controller_->Call("POST", "/v1/requests/" + subject + "?timeout=5s", data);
  }

  // Waits until the journal has at least n lines; returns them.
  std::vector<std::string> WaitForJournal(size_t n, int timeout_ms = 10000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    std::vector<std::string> lines;
    do {
      lines = Lines(ReadFileOrEmpty(journal_));
      if (lines.size() >= n) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    } while (std::chrono::steady_clock::now() < deadline);
    return lines;
  }

  NatsServerProcess nats_;
  TempDir dir_;
  std::string journal_;
  std::unique_ptr<Controller> controller_;
  NatsClient client_;
};

TEST_P(EventsTest, PublishedEventRunsTheFunctionAndWhatItEmitsRunsTheNext) {
  DeployOk(TestFunctionPath("relay"), "relay", {"--subscribe", "orders.*"});
  DeployOk(TestFunctionPath("journal"), "audit",
           {"--subscribe", "audit.>", "--env", "JOURNAL=" + journal_});
  natsSubscription* outside = nullptr;
  if (nats()) {
    ASSERT_EQ(natsConnection_SubscribeSync(&outside, client_.nc(), "audit.>"), NATS_OK);
    ASSERT_EQ(natsConnection_Flush(client_.nc()), NATS_OK);
  }
  PublishOk("orders.new", "emit audit.order.new hello");
  std::vector<std::string> lines = WaitForJournal(1);
  EXPECT_EQ(lines, std::vector<std::string>{"hello"})
      << "the audit function should have run once on the event relay emitted";
  if (nats()) {
    natsMsg* msg = nullptr;
    ASSERT_EQ(natsSubscription_NextMsg(&msg, outside, 5000), NATS_OK)
        << "a plain nats.c subscriber did not see the emitted event";
    EXPECT_EQ(std::string(natsMsg_GetSubject(msg)), "audit.order.new");
    EXPECT_EQ(Data(msg), "hello");
    EXPECT_EQ(Header(msg, "ce-source"), "/wisp/fn/relay");
    EXPECT_EQ(Header(msg, "ce-specversion"), "1.0");
    EXPECT_EQ(Header(msg, "ce-type"), "io.wisp.event");
    EXPECT_FALSE(Header(msg, "ce-id").empty()) << "emitted events get an id";
    EXPECT_FALSE(Header(msg, "ce-time").empty()) << "emitted events get a time";
    EXPECT_EQ(Header(msg, "x-relay"), "yes") << "the function's own header";
    natsMsg_Destroy(msg);
    natsSubscription_Destroy(outside);
  }
}

TEST_P(EventsTest, TheFunctionSeesTheSubjectAndCloudEventsAttributes) {
  DeployOk(TestFunctionPath("relay"), "relay", {"--subscribe", "orders.*"});
  runtime::HttpClientResponse r =
      controller_->Call("POST", "/v1/requests/orders.created?timeout=5s", "");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("trigger=event subject=orders.created "), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("ce-source=/wisp/api "), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("ce-type=io.wisp.event "), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("ce-id= "), std::string::npos) << "no id was given: " << r.body;
  EXPECT_NE(r.body.find("attempt=1"), std::string::npos) << r.body;

  // Structured mode: the attributes travel in a JSON body.
  r = controller_->Call(
      "POST", "/v1/requests/orders.structured?timeout=5s",
      R"({"specversion":"1.0","id":"s-1","source":"/json","type":"com.example.json","data":{"n":1}})",
      {{"Content-Type", "application/cloudevents+json"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("ce-id=s-1 ce-source=/json ce-type=com.example.json"), std::string::npos)
      << r.body;

  if (nats()) {
    natsMsg* reply = client_.Request("orders.given", "",
                                     {{"ce-id", "abc-1"}, {"ce-type", "com.example.order"},
                                      {"ce-source", "/shop"}, {"ce-specversion", "1.0"}});
    ASSERT_NE(reply, nullptr) << "a nats.c request on a subscribed subject got no reply";
    const std::string body = Data(reply);
    EXPECT_NE(body.find("ce-id=abc-1 ce-source=/shop ce-type=com.example.order"), std::string::npos)
        << body;
    natsMsg_Destroy(reply);
  }
}

TEST_P(EventsTest, WildcardsMatchWholeTokens) {
  DeployOk(TestFunctionPath("journal"), "tally",
           {"--subscribe", "w.*.end", "--subscribe", "deep.>", "--max-workers", "1", "--env",
            "JOURNAL=" + journal_});
  PublishOk("w.a.end", "1");
  PublishOk("w.a.b.end", "2");
  PublishOk("deep.x.y.z", "3");
  PublishOk("deep", "4");
  PublishOk("w.z.end", "5");
  std::vector<std::string> lines = WaitForJournal(3);
  std::sort(lines.begin(), lines.end());
  EXPECT_EQ(lines, (std::vector<std::string>{"1", "3", "5"}))
      << "w.*.end matches one token, deep.> one or more";
}

TEST_P(EventsTest, RequestReplyCarriesSuccessAndServiceErrors) {
  DeployOk(TestFunctionPath("status"), "status");
  runtime::HttpClientResponse ok = Request("wisp.fn.status", "hi there");
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(ok.body, "hi there");
  runtime::HttpClientResponse not_found = Request("wisp.fn.status", "404");
  EXPECT_EQ(not_found.status, 404) << not_found.body;
  runtime::HttpClientResponse failed = Request("wisp.fn.status", "fail");
  EXPECT_EQ(failed.status, 500) << failed.body;
  EXPECT_NE(failed.body.find("function_error"), std::string::npos) << failed.body;

  if (nats()) {
    natsMsg* reply = client_.Request("wisp.fn.status", "hello");
    ASSERT_NE(reply, nullptr);
    EXPECT_EQ(Data(reply), "hello");
    EXPECT_EQ(Header(reply, "Nats-Service-Error-Code"), "") << "a success has no error header";
    natsMsg_Destroy(reply);
    reply = client_.Request("wisp.fn.status", "409");
    ASSERT_NE(reply, nullptr);
    EXPECT_EQ(Header(reply, "Nats-Service-Error-Code"), "409");
    EXPECT_EQ(Header(reply, "Nats-Service-Error"), "Conflict");
    natsMsg_Destroy(reply);
    reply = client_.Request("wisp.fn.status", "499");
    ASSERT_NE(reply, nullptr);
    EXPECT_EQ(Header(reply, "Nats-Service-Error-Code"), "499");
    EXPECT_EQ(Header(reply, "Nats-Service-Error"), "status 499");
    natsMsg_Destroy(reply);
    reply = client_.Request("wisp.fn.status", "fail");
    ASSERT_NE(reply, nullptr);
    EXPECT_EQ(Header(reply, "Nats-Service-Error-Code"), "500");
    EXPECT_NE(Header(reply, "Nats-Service-Error").find("wisp_handle returned 1"), std::string::npos)
        << Header(reply, "Nats-Service-Error");
    natsMsg_Destroy(reply);
  }
}

TEST_P(EventsTest, ARequestNobodyServesIsRefusedAtOnce) {
  const auto start = std::chrono::steady_clock::now();
  runtime::HttpClientResponse r = Request("nobody.home", "x");
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_NE(r.body.find("no_responders"), std::string::npos) << r.body;
  EXPECT_LT(waited, std::chrono::seconds(4)) << "should not wait for the 5 s timeout";
}

TEST_P(EventsTest, ServiceApiAnswersWhileLoadedAndNotAfterUnload) {
  DeployOk(ExamplePath("hello"), "hello",
           {"--idle", "700ms", "--subscribe", "greet.*", "--version", "1.4.2"});
  // Deployed but not loaded: not a service yet.
  runtime::HttpClientResponse ping = Request("$SRV.PING.hello", "");
  EXPECT_EQ(ping.status, 503) << "an unloaded function answered $SRV.PING: " << ping.body;

  // An event loads it.
  runtime::HttpClientResponse call = Request("wisp.fn.hello", "ann");
  ASSERT_EQ(call.status, 200) << call.body;
  EXPECT_EQ(call.body, "hello, ann");
  ASSERT_EQ(Request("greet.x", "bob").status, 200);

  ping = Request("$SRV.PING.hello", "");
  ASSERT_EQ(ping.status, 200) << ping.body;
  api::ServicePing p;
  ASSERT_TRUE(ParseJson(ping.body, &p)) << ping.body;
  EXPECT_EQ(p.type(), "io.nats.micro.v1.ping_response");
  EXPECT_EQ(p.name(), "hello");
  EXPECT_EQ(p.version(), "1.4.2");
  EXPECT_EQ(p.id().size(), 22u) << p.id();
  EXPECT_NE(ping.body.find("\"metadata\":{"), std::string::npos) << ping.body;

  runtime::HttpClientResponse info_reply = Request("$SRV.INFO.hello." + p.id(), "");
  ASSERT_EQ(info_reply.status, 200) << info_reply.body;
  api::ServiceInfo info;
  ASSERT_TRUE(ParseJson(info_reply.body, &info)) << info_reply.body;
  EXPECT_EQ(info.type(), "io.nats.micro.v1.info_response");
  ASSERT_EQ(info.endpoints_size(), 2) << info_reply.body;
  EXPECT_EQ(info.endpoints(0).subject(), "wisp.fn.hello");
  EXPECT_EQ(info.endpoints(0).queue_group(), "q");
  EXPECT_EQ(info.endpoints(1).subject(), "greet.*");
  EXPECT_EQ(info.endpoints(1).queue_group(), "wisp.hello");

  runtime::HttpClientResponse stats_reply = Request("$SRV.STATS", "");
  ASSERT_EQ(stats_reply.status, 200) << stats_reply.body;
  api::ServiceStats stats;
  ASSERT_TRUE(ParseJson(stats_reply.body, &stats)) << stats_reply.body;
  EXPECT_EQ(stats.type(), "io.nats.micro.v1.stats_response");
  ASSERT_EQ(stats.endpoints_size(), 2);
  EXPECT_GE(stats.endpoints(1).num_requests(), 1) << stats_reply.body;
  EXPECT_GT(stats.endpoints(1).processing_time(), 0) << stats_reply.body;
  EXPECT_EQ(stats.started().size(), std::string("2026-11-27T23:04:54.123Z").size()) << stats.started();
  // JSON numbers, as nats.go writes them, not strings.
  EXPECT_NE(stats_reply.body.find("\"num_requests\":"), std::string::npos);
  EXPECT_EQ(stats_reply.body.find("\"num_requests\":\""), std::string::npos) << stats_reply.body;

  CliResult services = RunCli({"services", "--server", controller_->url()});
  EXPECT_EQ(services.exit_code, 0) << services.err;
  EXPECT_NE(services.out.find("hello"), std::string::npos) << services.out;
  EXPECT_NE(services.out.find(p.id()), std::string::npos) << services.out;

  // Idle unload: the service goes away.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  api::Function fn;
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_TRUE(controller_->Describe("hello", &fn));
  } while (fn.status().loaded() && std::chrono::steady_clock::now() < deadline);
  ASSERT_FALSE(fn.status().loaded()) << "hello was never unloaded";
  // The worker may still be exiting after its pid left the list.
  runtime::HttpClientResponse after;
  for (int i = 0; i < 50; ++i) {
    after = Request("$SRV.PING.hello", "");
    if (after.status == 503) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(after.status, 503) << "an unloaded function still answers $SRV.PING: " << after.body;

  // The next event loads it again, as a new instance.
  ASSERT_EQ(Request("wisp.fn.hello", "cy").status, 200);
  ping = Request("$SRV.PING.hello", "");
  ASSERT_EQ(ping.status, 200) << ping.body;
  api::ServicePing again;
  ASSERT_TRUE(ParseJson(ping.body, &again)) << ping.body;
  EXPECT_NE(again.id(), p.id()) << "a reload is a new service instance";
}

TEST_P(EventsTest, MalformedEventsGetClearErrorsAndTheStreamGoesOn) {
  DeployOk(TestFunctionPath("journal"), "tally",
           {"--subscribe", "in.*", "--max-workers", "1", "--env", "JOURNAL=" + journal_});
  CliResult r = RunCli({"publish", "--server", controller_->url(), "in.x", "bad-version",
                        "--header", "ce-specversion=2.0"});
  EXPECT_NE(r.exit_code, 0) << "a CloudEvent of specversion 2.0 was accepted";
  EXPECT_NE(r.err.find("specversion"), std::string::npos) << r.err;
  r = RunCli({"publish", "--server", controller_->url(), "in.x", std::string(5000, 'x')});
  EXPECT_NE(r.exit_code, 0) << "an oversized event was accepted";
  EXPECT_NE(r.err.find("payload_too_large"), std::string::npos) << r.err;
  r = RunCli({"publish", "--server", controller_->url(), "in.*", "x"});
  EXPECT_EQ(r.exit_code, 2) << "a wildcard is not a publish subject: " << r.err;
  for (const char* reserved : {"_INBOX.x", "$SRV.PING", "wisp.fn.other", "wisp.replay.other",
                               "wisp.dead.other", "wisp.>", "*.dead.x", ">", "bad..subject"}) {
    r = controller_->Deploy(TestFunctionPath("journal"), "greedy", {"--subscribe", reserved});
    EXPECT_EQ(r.exit_code, 1) << "deploy subscribing to '" << reserved << "' was accepted";
    EXPECT_NE(r.err.find("subscribe"), std::string::npos) << r.err;
  }
  // Dead letters are stored and replayed on subjects only wisp publishes on.
  for (const char* internal : {"wisp.dead.sink", "wisp.replay.sink"}) {
    runtime::HttpClientResponse refused =
        controller_->Call("POST", std::string("/v1/events/") + internal, "forged");
    EXPECT_EQ(refused.status, 400) << internal << ": " << refused.body;
    EXPECT_NE(refused.body.find("reserved_subject"), std::string::npos) << refused.body;
  }

  if (nats()) {
    // From outside, past the controller's API: a bad time, then a good event.
    natsMsg* reply = client_.Request("in.x", "late", {{"ce-time", "yesterday"}});
    ASSERT_NE(reply, nullptr);
    EXPECT_EQ(Header(reply, "Nats-Service-Error-Code"), "400");
    EXPECT_NE(Header(reply, "Nats-Service-Error").find("ce-time"), std::string::npos)
        << Header(reply, "Nats-Service-Error");
    natsMsg_Destroy(reply);
    reply = client_.Request("in.x", std::string(5000, 'y'));
    ASSERT_NE(reply, nullptr);
    EXPECT_EQ(Header(reply, "Nats-Service-Error-Code"), "413");
    natsMsg_Destroy(reply);
    ASSERT_TRUE(client_.Publish("in.x", "bad", {{"ce-specversion", "0.3"}}));
  }
  PublishOk("in.y", "good");
  std::vector<std::string> lines = WaitForJournal(1);
  EXPECT_EQ(lines, std::vector<std::string>{"good"}) << "only the good event runs the function";
}

TEST_P(EventsTest, EventsOfAFailedInvocationAreNeverPublished) {
  DeployOk(TestFunctionPath("relay"), "relay");
  DeployOk(TestFunctionPath("journal"), "audit",
           {"--subscribe", "audit.>", "--max-workers", "1", "--env", "JOURNAL=" + journal_});
  runtime::HttpClientResponse r = Request("wisp.fn.relay", "emit audit.a first\nfail");
  EXPECT_EQ(r.status, 500) << r.body;
  r = Request("wisp.fn.relay", "emit audit.b second\nstatus 503");
  EXPECT_EQ(r.status, 503) << r.body;
  r = Request("wisp.fn.relay", "emit audit.c third\nemit bad.* wildcard");
  EXPECT_EQ(r.status, 502) << r.body;
  EXPECT_NE(r.body.find("invalid_event"), std::string::npos) << r.body;
  r = controller_->Call("POST", "/fn/relay", "emit audit.d fourth\nstatus 404");
  EXPECT_EQ(r.status, 404) << "a 4xx reply is a decision, not a failure: " << r.body;
  std::vector<std::string> lines = WaitForJournal(1);
  EXPECT_EQ(lines, std::vector<std::string>{"fourth"})
      << "only the HTTP invocation that did not fail publishes what it emitted";
}

// The function's queue bound holds for events: a request it cannot take is
// refused at once with a service error; fire-and-forget events wait (in
// wisp's backlog, then in the broker) and all run.
TEST_P(EventsTest, BackPressureRefusesRequestsAndKeepsEvents) {
  controller_->Stop();
  std::vector<std::string> args = {"--max-queue", "2", "--pipeline-depth", "1"};
  if (nats()) args.insert(args.end(), {"--nats", nats_.url()});
  controller_ = std::make_unique<Controller>(dir_.path(), args);
  std::string error;
  ASSERT_TRUE(controller_->Start(&error)) << error;
  DeployOk(TestFunctionPath("sleep"), "slow", {"--max-workers", "1"});
  DeployOk(TestFunctionPath("journal"), "tally",
           {"--subscribe", "many.*", "--max-workers", "1", "--env", "JOURNAL=" + journal_});

  // One running, two waiting: the queue is full, the next request is refused.
  std::vector<std::thread> callers;
  for (int i = 0; i < 3; ++i) {
    callers.emplace_back([this] { Request("wisp.fn.slow", "800"); });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  runtime::HttpClientResponse refused = Request("wisp.fn.slow", "1");
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_NE(refused.body.find("queue_full"), std::string::npos) << refused.body;
  for (std::thread& t : callers) t.join();

  // Far more events than the queue and the backlog hold: every one runs.
  constexpr int kEvents = 1500;  // past the backlog bound: the subscription pauses
  if (nats()) {
    for (int i = 0; i < kEvents; ++i) ASSERT_TRUE(client_.Publish("many.x", std::to_string(i)));
    ASSERT_EQ(natsConnection_Flush(client_.nc()), NATS_OK);
  } else {
    for (int i = 0; i < kEvents; ++i) {
      runtime::HttpClientResponse r = controller_->Call("POST", "/v1/events/many.x", std::to_string(i));
      ASSERT_EQ(r.status, 202) << r.body;
    }
  }
  std::vector<std::string> lines = WaitForJournal(kEvents, 30000);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kEvents)) << "events were lost";
  for (int i = 0; i < kEvents; ++i) {
    EXPECT_EQ(lines[static_cast<size_t>(i)], std::to_string(i)) << "one worker keeps their order";
  }
  runtime::HttpClientResponse health = controller_->Call("GET", "/healthz");
  api::Health h;
  ASSERT_TRUE(ParseJson(health.body, &h)) << health.body;
  EXPECT_EQ(h.events().slow_consumer_dropped(), 0u) << health.body;
  EXPECT_GE(h.events().received(), static_cast<uint64_t>(kEvents)) << health.body;
}

// Two controllers on one nats-server: the queue group per function shares the
// events, and each runs exactly once.
TEST(EventsSharedTest, TwoControllersShareTenThousandEventsEachRunOnce) {
  NatsServerProcess nats;
  ASSERT_TRUE(nats.Start());
  TempDir dir_a;
  TempDir dir_b;
  const std::string journal_a = dir_a.path() + "/journal";
  const std::string journal_b = dir_b.path() + "/journal";
  Controller a(dir_a.path(), {"--nats", nats.url()});
  Controller b(dir_b.path(), {"--nats", nats.url()});
  std::string error;
  ASSERT_TRUE(a.Start(&error)) << error;
  ASSERT_TRUE(b.Start(&error)) << error;
  for (auto [c, journal] : {std::pair{&a, journal_a}, std::pair{&b, journal_b}}) {
    CliResult r = c->Deploy(TestFunctionPath("journal"), "tally",
                            {"--subscribe", "load.*", "--env", "JOURNAL=" + journal});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  NatsClient client;
  ASSERT_TRUE(client.Connect(nats.url()));
  constexpr int kEvents = 10000;
  for (int i = 0; i < kEvents; ++i) {
    ASSERT_TRUE(client.Publish("load.x", std::to_string(i))) << "publish " << i;
  }
  ASSERT_EQ(natsConnection_Flush(client.nc()), NATS_OK);

  std::vector<std::string> lines_a;
  std::vector<std::string> lines_b;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    lines_a = Lines(ReadFileOrEmpty(journal_a));
    lines_b = Lines(ReadFileOrEmpty(journal_b));
  } while (lines_a.size() + lines_b.size() < kEvents && std::chrono::steady_clock::now() < deadline);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // any extra would show now
  lines_a = Lines(ReadFileOrEmpty(journal_a));
  lines_b = Lines(ReadFileOrEmpty(journal_b));
  EXPECT_GT(lines_a.size(), 0u) << "controller a ran none of the events";
  EXPECT_GT(lines_b.size(), 0u) << "controller b ran none of the events";
  EXPECT_EQ(lines_a.size() + lines_b.size(), static_cast<size_t>(kEvents))
      << "a ran " << lines_a.size() << ", b ran " << lines_b.size();
  std::map<std::string, int> seen;
  for (const auto* lines : {&lines_a, &lines_b}) {
    for (const std::string& line : *lines) ++seen[line];
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kEvents)) << "distinct events run";
  for (const auto& [event, count] : seen) {
    if (count != 1) {
      ADD_FAILURE() << "event " << event << " ran " << count << " times";
      break;
    }
  }
  if (HasFailure()) {
    std::fprintf(stderr, "---- a ----\n%s---- b ----\n%s", a.Log().c_str(), b.Log().c_str());
  }
}

INSTANTIATE_TEST_SUITE_P(Brokers, EventsTest,
                         ::testing::Values(BrokerKind::kEmbedded, BrokerKind::kNats),
                         [](const ::testing::TestParamInfo<BrokerKind>& info) {
                           return info.param == BrokerKind::kNats ? "Nats" : "Embedded";
                         });

}  // namespace
}  // namespace wisp::testing
