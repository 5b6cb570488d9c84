// Durable triggers end to end, on the embedded queue and on JetStream (a
// real nats-server -js started by the test): retries with growing backoff,
// dead letters and their replay, deduplication by ce-id, events that
// outlive a restart, and the refusals.
#include <gmock/gmock.h>
#include <nats/nats.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "api.pb.h"
#include "google/protobuf/util/json_util.h"
#include "tests/integration/controller_fixture.h"
#include "tests/support/nats_server.h"

namespace wisp::testing {
namespace {

using ::testing::HasSubstr;

struct JournalLine {
  unsigned attempt = 0;
  long long at_ms = 0;
  std::string body;
};

// flaky's journal: "<attempt> <unix ms> <body>" per run.
std::vector<JournalLine> ReadJournal(const std::string& path) {
  std::vector<JournalLine> lines;
  std::ifstream in(path);
  std::string text;
  while (std::getline(in, text)) {
    std::istringstream fields(text);
    JournalLine line;
    fields >> line.attempt >> line.at_ms;
    std::getline(fields >> std::ws, line.body);
    lines.push_back(line);
  }
  return lines;
}

// Polls until pred() or the timeout; returns pred()'s last value.
template <typename Pred>
bool WaitFor(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

template <typename Message>
bool ParseJson(const std::string& json, Message* message) {
  return google::protobuf::util::JsonStringToMessage(json, message).ok();
}

enum class Store { kEmbedded, kJetStream };

class DurableTest : public ControllerTest, public ::testing::WithParamInterface<Store> {
 protected:
  void SetUp() override {
    if (GetParam() == Store::kJetStream) {
      ASSERT_TRUE(nats_.Start());
    }
    ControllerTest::SetUp();
  }

  std::vector<std::string> ControllerArgs() const override {
    if (GetParam() == Store::kJetStream) return {"--nats", nats_.url()};
    return {};
  }

  std::string Journal() const { return dir_.path() + "/flaky.txt"; }

  void DeployFlaky(int fail_first, std::vector<std::string> extra) {
    std::vector<std::string> args = {"--subscribe", "orders.new", "--durable",
                                     "--env", "JOURNAL=" + Journal(),
                                     "--env", "FAIL_FIRST=" + std::to_string(fail_first)};
    args.insert(args.end(), extra.begin(), extra.end());
    DeployOk(TestFunctionPath("flaky"), "flaky", args);
  }

  void Publish(const std::string& body, const triggers::HeaderList& headers = {}) {
    runtime::HttpClientResponse r = controller_->Call("POST", "/v1/events/orders.new", body, headers);
    ASSERT_EQ(r.status, 202) << r.body;
  }

  api::Health Health() {
    api::Health health;
    runtime::HttpClientResponse r = controller_->Call("GET", "/healthz");
    EXPECT_TRUE(ParseJson(r.body, &health)) << r.body;
    return health;
  }

  NatsServerProcess nats_{NatsServerOptions{.jetstream = true}};

  // The JSON reply of a JetStream API request, asked by a plain client.
  std::string JetStreamApi(const std::string& subject) {
    natsConnection* nc = nullptr;
    natsMsg* reply = nullptr;
    std::string out;
    if (natsConnection_ConnectTo(&nc, nats_.url().c_str()) == NATS_OK &&
        natsConnection_RequestString(&reply, nc, subject.c_str(), "", 5000) == NATS_OK) {
      out.assign(natsMsg_GetData(reply), static_cast<size_t>(natsMsg_GetDataLength(reply)));
    }
    natsMsg_Destroy(reply);
    natsConnection_Destroy(nc);
    return out;
  }

  api::DeadLetterList DeadLetters(const std::string& name) {
    api::DeadLetterList list;
    runtime::HttpClientResponse r = controller_->Call("GET", "/v1/functions/" + name + "/dead-letters");
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_TRUE(ParseJson(r.body, &list)) << r.body;
    return list;
  }
};

TEST_P(DurableTest, FailingTwiceThenSucceedingRunsThreeTimesWithGrowingBackoff) {
  DeployFlaky(2, {"--backoff", "100ms", "--max-attempts", "5"});
  Publish("order-1");
  ASSERT_TRUE(WaitFor([&] { return ReadJournal(Journal()).size() >= 3; }))
      << "expected 3 runs, saw " << ReadJournal(Journal()).size();
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // a 4th run would come by now
  const std::vector<JournalLine> runs = ReadJournal(Journal());
  ASSERT_EQ(runs.size(), 3u) << "expected exactly 3 runs (2 failures, 1 success)";
  for (unsigned i = 0; i < 3; ++i) {
    EXPECT_EQ(runs[i].attempt, i + 1) << "run " << i << " should see attempt " << i + 1;
    EXPECT_EQ(runs[i].body, "order-1");
  }
  const long long first_gap = runs[1].at_ms - runs[0].at_ms;
  const long long second_gap = runs[2].at_ms - runs[1].at_ms;
  // backoff x 2^(attempt-1) x [0.75, 1]: 75..100 ms, then 150..200 ms.
  EXPECT_GE(first_gap, 70) << "first retry came too soon";
  EXPECT_GE(second_gap, 145) << "second retry came too soon";
  EXPECT_GT(second_gap, first_gap) << "backoff should grow: " << first_gap << " ms then "
                                   << second_gap << " ms";
  api::Function fn;
  ASSERT_TRUE(controller_->Describe("flaky", &fn));
  EXPECT_EQ(fn.status().waiting_events(), 0u) << "the event should be acknowledged";
  EXPECT_EQ(fn.status().dead_letters(), 0u);
  EXPECT_TRUE(fn.config().durable());
  EXPECT_EQ(fn.config().max_attempts(), 5u);
  EXPECT_EQ(fn.config().dead_letter(), "wisp.dlq.flaky");
  api::Health health = Health();
  EXPECT_EQ(health.events().durable_retried(), 2u);
  EXPECT_EQ(health.events().durable_dead_lettered(), 0u);
}

TEST_P(DurableTest, DeadLettersAfterTheLastAttemptAndReplays) {
  const std::string sink = dir_.path() + "/dead.txt";
  DeployOk(TestFunctionPath("journal"), "dead-sink",
           {"--subscribe", "wisp.dlq.flaky", "--env", "JOURNAL=" + sink});
  DeployFlaky(100, {"--backoff", "50ms", "--max-attempts", "3"});
  Publish("poison");
  api::DeadLetterList list;
  ASSERT_TRUE(WaitFor([&] {
    list = DeadLetters("flaky");
    return list.dead_letters_size() > 0;
  })) << "no dead letter; runs seen: " << ReadJournal(Journal()).size();
  ASSERT_EQ(list.dead_letters_size(), 1);
  const api::DeadLetter& letter = list.dead_letters(0);
  EXPECT_EQ(letter.attempts(), 3u);
  EXPECT_EQ(letter.subject(), "orders.new");
  EXPECT_EQ(letter.data(), "poison");
  EXPECT_EQ(letter.error_code(), "function_error") << letter.error();
  EXPECT_EQ(ReadJournal(Journal()).size(), 3u) << "3 attempts, no more";
  // The dead-letter subject carried it to the sink.
  ASSERT_TRUE(WaitFor([&] {
    std::ifstream in(sink);
    std::string line;
    return std::getline(in, line) && line == "poison";
  })) << "the dead-letter subject's subscriber never saw the event";

  CliResult ls = RunCli({"dlq", "ls", "flaky", "--server", controller_->url()});
  EXPECT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_THAT(ls.out, HasSubstr("orders.new"));
  EXPECT_THAT(ls.out, HasSubstr("poison"));

  // Fixed, redeployed, replayed: it runs again and succeeds.
  DeployFlaky(0, {});
  CliResult replay = RunCli({"dlq", "replay", "flaky", "--server", controller_->url()});
  EXPECT_EQ(replay.exit_code, 0) << replay.err;
  EXPECT_THAT(replay.out, HasSubstr("replayed 1 dead letter of flaky"));
  ASSERT_TRUE(WaitFor([&] { return ReadJournal(Journal()).size() >= 4; }));
  const std::vector<JournalLine> runs = ReadJournal(Journal());
  EXPECT_EQ(runs.back().attempt, 1u) << "a replayed event starts over at attempt 1";
  EXPECT_EQ(runs.back().body, "poison");
  EXPECT_EQ(DeadLetters("flaky").dead_letters_size(), 0);
  api::Function fn;
  ASSERT_TRUE(WaitFor([&] {
    return controller_->Describe("flaky", &fn) && fn.status().waiting_events() == 0;
  })) << "the replayed event should be acknowledged";

  runtime::HttpClientResponse missing = controller_->Call("POST", "/v1/functions/flaky/replay?id=999");
  EXPECT_EQ(missing.status, 404) << missing.body;
  EXPECT_THAT(missing.body, HasSubstr("dead_letter_not_found"));
}

TEST_P(DurableTest, ARepublishedCeIdRunsOnce) {
  DeployFlaky(0, {});
  Publish("first", {{"ce-id", "order-42"}});
  Publish("again", {{"ce-id", "order-42"}});
  Publish("other", {{"ce-id", "order-43"}});
  ASSERT_TRUE(WaitFor([&] { return ReadJournal(Journal()).size() >= 2; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const std::vector<JournalLine> runs = ReadJournal(Journal());
  ASSERT_EQ(runs.size(), 2u) << "the duplicate ce-id should not run";
  EXPECT_EQ(runs[0].body, "first");
  EXPECT_EQ(runs[1].body, "other");
  EXPECT_EQ(Health().events().durable_duplicates(), 1u);
}

TEST_P(DurableTest, WaitingEventsOutliveARestart) {
  // The first attempt fails; the retry is due after the restart.
  DeployFlaky(1, {"--backoff", "1500ms"});
  Publish("survivor");
  ASSERT_TRUE(WaitFor([&] { return ReadJournal(Journal()).size() >= 1; }));
  ASSERT_EQ(controller_->Stop(), 0);
  ASSERT_EQ(ReadJournal(Journal()).size(), 1u);
  std::string error;
  ASSERT_TRUE(controller_->Start(&error)) << error;
  ASSERT_TRUE(WaitFor([&] { return ReadJournal(Journal()).size() >= 2; }))
      << "the retry never came after the restart";
  const std::vector<JournalLine> runs = ReadJournal(Journal());
  EXPECT_EQ(runs[1].attempt, 2u);
  EXPECT_EQ(runs[1].body, "survivor");
  EXPECT_GE(runs[1].at_ms - runs[0].at_ms, 1100) << "the backoff holds across the restart";
}

TEST_P(DurableTest, EmittedEventsReachADurableStage) {
  DeployOk(TestFunctionPath("forward"), "stage-one",
           {"--subscribe", "orders.new", "--durable", "--env", "FORWARD_TO=orders.valid"});
  const std::string sink = dir_.path() + "/sink.txt";
  DeployOk(TestFunctionPath("journal"), "stage-two",
           {"--subscribe", "orders.valid", "--durable", "--env", "JOURNAL=" + sink});
  for (int i = 0; i < 20; ++i) Publish(std::to_string(i) + "-o");
  std::vector<std::string> seen;
  ASSERT_TRUE(WaitFor([&] {
    seen.clear();
    std::ifstream in(sink);
    std::string line;
    while (std::getline(in, line)) seen.push_back(line);
    return seen.size() >= 20;
  })) << "the second stage saw " << seen.size() << " of 20";
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(std::unique(seen.begin(), seen.end()), seen.end()) << "no event twice";
  // HTTP calls that emit get their reply once the events are stored.
  runtime::HttpClientResponse r = controller_->Call("POST", "/fn/stage-one", "direct");
  EXPECT_EQ(r.status, 200) << r.body;
  if (GetParam() == Store::kJetStream) {
    // Both stages' subjects are the stream's, which holds the 20 events
    // published, the 20 the first stage emitted and the one of the call.
    const std::string info = JetStreamApi("$JS.API.STREAM.INFO.WISP_EVENTS");
    EXPECT_THAT(info, HasSubstr("\"orders.new\"")) << info;
    EXPECT_THAT(info, HasSubstr("\"orders.valid\"")) << info;
    EXPECT_THAT(info, HasSubstr("\"messages\":41,")) << info;
    const std::string consumers = JetStreamApi("$JS.API.CONSUMER.NAMES.WISP_EVENTS");
    EXPECT_THAT(consumers, HasSubstr("wisp-stage-one-")) << consumers;
    EXPECT_THAT(consumers, HasSubstr("wisp-stage-two-")) << consumers;
  }
  ASSERT_TRUE(WaitFor([&] {
    std::ifstream in(sink);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return text.find("direct\n") != std::string::npos;
  }));
}

TEST_P(DurableTest, RefusesWhatCannotWork) {
  const std::string so = TestFunctionPath("flaky");
  struct Case {
    std::vector<std::string> args;
    std::string expected;
  } cases[] = {
      {{"--durable"}, "durable=true needs at least one subscribe subject or a schedule"},
      {{"--subscribe", "a.b", "--max-attempts", "3"}, "applies to durable triggers"},
      {{"--subscribe", "a.b", "--durable", "--backoff", "0s"}, "backoff must be above 0"},
      {{"--subscribe", "a.b", "--durable", "--backoff", "10s", "--max-backoff", "1s"},
       "longer than max_backoff"},
      {{"--subscribe", "a.b", "--durable", "--dead-letter", "bad subject"}, "dead_letter"},
  };
  for (const Case& c : cases) {
    CliResult r = controller_->Deploy(so, "flaky", c.args);
    EXPECT_NE(r.exit_code, 0) << "deploy with " << ::testing::PrintToString(c.args)
                              << " should fail";
    EXPECT_THAT(r.err, HasSubstr(c.expected)) << ::testing::PrintToString(c.args);
  }
  runtime::HttpClientResponse r = controller_->Call("GET", "/v1/functions/nothing/dead-letters");
  EXPECT_EQ(r.status, 404) << r.body;
  r = controller_->Call("GET", "/v1/functions/flaky/dead-letters?limit=0");
  EXPECT_EQ(r.status, 404) << "not deployed yet: " << r.body;
}

INSTANTIATE_TEST_SUITE_P(Stores, DurableTest,
                         ::testing::Values(Store::kEmbedded, Store::kJetStream),
                         [](const ::testing::TestParamInfo<Store>& info) {
                           return info.param == Store::kJetStream ? "JetStream" : "Embedded";
                         });

}  // namespace
}  // namespace wisp::testing
