// Durable triggers shared through JetStream by several controllers on one
// real nats-server -js: 10,000 events into a three-stage pipeline whose two
// controllers are killed with SIGKILL at four random moments and restarted
// (every accepted event reaches the sink, duplicates counted and reported), a schedule deployed on two controllers that
// runs once per tick, a plain subscriber of a durable subject that never
// answers a PubAck inbox, and the clear refusal when the server has no
// JetStream.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <google/protobuf/util/json_util.h>
#include <nats/nats.h>

#include "tests/integration/harness.h"
#include "tests/integration/sink_tally.h"
#include "tests/support/nats_server.h"

namespace wisp::testing {
namespace {

using ::testing::HasSubstr;

class JetStreamTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(nats_.Start()); }

  // Starts controller i (0 or 1) on the shared server.
  Controller* StartController(int i) {
    if (!controllers_[i]) {
      controllers_[i] = std::make_unique<Controller>(dirs_[i].path(),
                                                     std::vector<std::string>{"--nats", nats_.url()});
    }
    std::string error;
    EXPECT_TRUE(controllers_[i]->Start(&error)) << "controller " << i << ": " << error;
    return controllers_[i].get();
  }

  void DeployOn(int i, const std::string& function, const std::string& name,
                std::vector<std::string> args) {
    CliResult r = controllers_[i]->Deploy(TestFunctionPath(function), name, std::move(args));
    ASSERT_EQ(r.exit_code, 0) << "deploy " << name << " on controller " << i << ": " << r.err;
  }

  void TearDown() override {
    for (int i = 0; i < 2; ++i) {
      if (!controllers_[i]) continue;
      if (HasFailure()) {
        std::fprintf(stderr, "---- controller %d log ----\n%s", i, controllers_[i]->Log().c_str());
      }
      controllers_[i]->Stop();
    }
    if (HasFailure()) std::fprintf(stderr, "---- nats-server log ----\n%s", nats_.Log().c_str());
  }

  NatsServerProcess nats_{NatsServerOptions{.jetstream = true}};
  TempDir shared_;  // the sink's file, written by both controllers' workers
  TempDir dirs_[2];
  std::unique_ptr<Controller> controllers_[2];
};

TEST_F(JetStreamTest, NoAcceptedEventIsLostWhenControllersAreKilled) {
  constexpr int kEvents = 10000;
  constexpr int kKills = 4;  // alternately controller 0 and 1
  constexpr int kPublishers = 4;
  const std::string sink = shared_.path() + "/sink.txt";
  for (int i = 0; i < 2; ++i) {
    ASSERT_NE(StartController(i), nullptr);
    ASSERT_FALSE(HasFailure());
    // A short timeout keeps the lease (timeout + 5 s) short.
    const std::vector<std::string> common = {"--durable", "--timeout", "1s", "--backoff", "50ms",
                                             "--max-attempts", "100"};
    auto with = [&](std::vector<std::string> args) {
      args.insert(args.end(), common.begin(), common.end());
      return args;
    };
    DeployOn(i, "forward", "stage-a", with({"--subscribe", "js.new", "--env", "FORWARD_TO=js.a"}));
    DeployOn(i, "forward", "stage-b", with({"--subscribe", "js.a", "--env", "FORWARD_TO=js.b"}));
    DeployOn(i, "journal", "sink", with({"--subscribe", "js.b", "--env", "JOURNAL=" + sink}));
  }

  // Each event goes to either controller; one refused (down) goes to the
  // other, with the same ce-id, until one takes it.
  std::atomic<int> ports[2] = {controllers_[0]->port(), controllers_[1]->port()};
  std::atomic<int> accepted{0};
  std::atomic<int> refused{0};
  const std::string tokens[2] = {controllers_[0]->token(), controllers_[1]->token()};
  std::vector<std::thread> publishers;
  for (int t = 0; t < kPublishers; ++t) {
    publishers.emplace_back([&, t] {
      std::unique_ptr<runtime::HttpClient> clients[2];
      int client_ports[2] = {0, 0};
      int which = t % 2;
      for (int i = t; i < kEvents; i += kPublishers) {
        const std::string id = "evt-" + std::to_string(i);
        while (true) {
          which = 1 - which;
          if (clients[which] == nullptr || client_ports[which] != ports[which].load()) {
            client_ports[which] = ports[which].load();
            clients[which] =
                std::make_unique<runtime::HttpClient>("127.0.0.1", client_ports[which], 5000);
          }
          StatusOr<runtime::HttpClientResponse> r = clients[which]->Request(
              "POST", "/v1/events/js.new",
              {{"Authorization", "Bearer " + tokens[which]}, {"ce-id", id}}, id);
          if (r.ok() && r->status == 202) break;
          ++refused;
          clients[which].reset();
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        ++accepted;
      }
    });
  }

  // Kills at random moments while events arrive; each controller comes back.
  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> point(300, kEvents - 300);
  std::vector<int> kill_at;
  for (int k = 0; k < kKills; ++k) kill_at.push_back(point(random));
  std::sort(kill_at.begin(), kill_at.end());
  for (int k = 0; k < kKills; ++k) {
    const int i = k % 2;
    while (accepted.load() < kill_at[k]) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    controllers_[i]->Kill();
    std::fprintf(stderr, "killed controller %d after %d accepted events, %zu at the sink\n", i,
                 accepted.load(), CountLines(sink).size());
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    std::string error;
    if (!controllers_[i]->Start(&error)) {
      for (std::thread& p : publishers) p.detach();
      FAIL() << "restart of controller " << i << " failed: " << error;
    }
    ports[i] = controllers_[i]->port();
  }
  for (std::thread& p : publishers) p.join();

  const SinkTally tally = WaitForSink(sink, kEvents, "evt-", std::chrono::seconds(180));
  std::fprintf(stderr,
               "JetStream pipeline on two controllers through %d kill -9s: %d events accepted (%d "
               "publish attempts refused), %zu distinct at the sink, %d missing, %d duplicates\n",
               kKills, accepted.load(), refused.load(), tally.seen.size(), tally.missing,
               tally.duplicates);
  EXPECT_EQ(tally.missing, 0) << "every accepted event should reach the sink; first missing: "
                        << tally.first_missing;
  EXPECT_EQ(tally.seen.size(), static_cast<size_t>(kEvents)) << "the sink saw ids nobody published";
}

TEST_F(JetStreamTest, AScheduleOnTwoControllersRunsOncePerTick) {
  const std::string journal = shared_.path() + "/ticks.txt";
  for (int i = 0; i < 2; ++i) {
    ASSERT_NE(StartController(i), nullptr);
    ASSERT_FALSE(HasFailure());
    DeployOn(i, "journal", "ticker", {"--every", "1s", "--env", "JOURNAL=" + journal});
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(4500));
  const std::map<std::string, int> ticks = CountLines(journal);
  EXPECT_GE(ticks.size(), 3u) << "expected a run per second for 4.5 s";
  for (const auto& [tick, runs] : ticks) {
    EXPECT_EQ(runs, 1) << "the tick " << tick << " ran " << runs << " times on two controllers";
  }
}

// A controller holds up to 8 events per worker; with one worker and 0.9 s
// runs, the last of them waits longer than its lease (the 1 s timeout + 5 s)
// before it runs. Its lease is renewed (+WPI) while it waits, so JetStream
// never gives it to anyone again: each event runs once, none redelivered.
TEST_F(JetStreamTest, AHeldEventKeepsItsLeaseWhileItWaits) {
  constexpr int kEvents = 10;
  const std::string sink = shared_.path() + "/sink.txt";
  Controller* controller = StartController(0);
  ASSERT_FALSE(HasFailure());
  DeployOn(0, "journal", "slow",
           {"--subscribe", "slow.in", "--durable", "--timeout", "1s", "--max-workers", "1", "--env",
            "JOURNAL=" + sink, "--env", "DELAY_US=900000"});
  runtime::HttpClient client("127.0.0.1", controller->port(), 5000);
  for (int n = 0; n < kEvents; ++n) {
    const std::string id = "held-" + std::to_string(n);
    StatusOr<runtime::HttpClientResponse> r = client.Request(
        "POST", "/v1/events/slow.in", {{"Authorization", "Bearer " + controller->token()}, {"ce-id", id}},
        id);
    ASSERT_TRUE(r.ok() && r->status == 202)
        << id << ": " << (r.ok() ? std::to_string(r->status) + " " + r->body : r.status().ToString());
  }
  const SinkTally tally = WaitForSink(sink, kEvents, "held-", std::chrono::seconds(60));
  std::this_thread::sleep_for(std::chrono::seconds(1));  // a redelivery would run by now
  const std::map<std::string, int> runs = CountLines(sink);
  api::Health health;
  runtime::HttpClientResponse h = controller->Call("GET", "/healthz");
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(h.body, &health).ok()) << h.body;
  std::fprintf(stderr, "[ held     ] %d events, %zu distinct at the sink, %llu leases renewed, "
               "%llu redelivered\n", kEvents, runs.size(),
               static_cast<unsigned long long>(health.events().durable_leases_renewed()),
               static_cast<unsigned long long>(health.events().durable_redelivered()));
  EXPECT_EQ(tally.missing, 0) << "first missing: " << tally.first_missing;
  for (const auto& [id, count] : runs) EXPECT_EQ(count, 1) << id << " ran " << count << " times";
  EXPECT_EQ(health.events().durable_redelivered(), 0u)
      << "a held event's lease ran out while it waited";
  EXPECT_GT(health.events().durable_leases_renewed(), 0u)
      << "expected the leases of the events waiting their turn to be renewed";
}

// wisp stores an event on a durable subject with a JetStream publish, whose
// reply subject is the inbox awaiting the stream's PubAck. A plain function
// subscribed to the same subject gets that message too: it must run it as an
// event and never answer the inbox (its reply could reach the inbox before
// the PubAck and fail the publish). A client watching every inbox sees each
// reply the function would send, so the check does not depend on who wins.
TEST_F(JetStreamTest, APlainSubscriberOfADurableSubjectGetsEventsNotRequests) {
  ASSERT_NE(StartController(0), nullptr);
  ASSERT_FALSE(HasFailure());
  natsConnection* watcher = nullptr;
  ASSERT_EQ(natsConnection_ConnectTo(&watcher, nats_.url().c_str()), NATS_OK);
  natsSubscription* inboxes = nullptr;
  ASSERT_EQ(natsConnection_SubscribeSync(&inboxes, watcher, "_INBOX.>"), NATS_OK);
  ASSERT_EQ(natsConnection_Flush(watcher), NATS_OK);

  constexpr int kEvents = 50;
  const std::string durable_sink = shared_.path() + "/durable.txt";
  const std::string plain_sink = shared_.path() + "/plain.txt";
  DeployOn(0, "journal", "durable-sink",
           {"--subscribe", "both.new", "--durable", "--env", "JOURNAL=" + durable_sink});
  DeployOn(0, "journal", "plain-sink", {"--subscribe", "both.new", "--env", "JOURNAL=" + plain_sink});
  for (int i = 0; i < kEvents; ++i) {
    runtime::HttpClientResponse r =
        controllers_[0]->Call("POST", "/v1/events/both.new", "e" + std::to_string(i));
    EXPECT_EQ(r.status, 202) << "publish " << i << ": " << r.body;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline &&
         (CountLines(durable_sink).size() < kEvents || CountLines(plain_sink).size() < kEvents)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(CountLines(durable_sink).size(), size_t{kEvents}) << "the durable subscriber's events";
  EXPECT_EQ(CountLines(plain_sink).size(), size_t{kEvents}) << "the plain subscriber's events";

  // journal replies with the event's body ("e7"). Also on inboxes: PubAcks
  // (JSON objects), the durable consumer's deliveries (with a $JS.ACK reply
  // subject) and its pulls' status messages (no body).
  int answered = 0;
  std::string first_answer;
  natsMsg* msg = nullptr;
  while (natsSubscription_NextMsg(&msg, inboxes, 300) == NATS_OK) {
    const std::string data(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg)));
    if (natsMsg_GetReply(msg) == nullptr && !data.empty() && data[0] != '{') {
      if (answered++ == 0) first_answer = data + " on " + natsMsg_GetSubject(msg);
    }
    natsMsg_Destroy(msg);
  }
  EXPECT_EQ(answered, 0) << "the plain function answered the PubAck inbox of a JetStream publish; "
                            "the first: "
                         << first_answer;
  natsSubscription_Destroy(inboxes);
  natsConnection_Destroy(watcher);
}

// Dead letters are kept in JetStream, not by the controller that made them:
// a second controller lists them and replays them. A replayed event runs
// on the subject it first came on (failing again, its new dead letter says
// so), and once it succeeds its letter is gone on both.
TEST_F(JetStreamTest, DeadLettersAreSharedByEveryController) {
  ASSERT_NE(StartController(0), nullptr);
  ASSERT_NE(StartController(1), nullptr);
  ASSERT_FALSE(HasFailure());
  const std::string journal = shared_.path() + "/flaky.txt";
  auto deploy_flaky = [&](int fail_first) {
    for (int i = 0; i < 2; ++i) {
      DeployOn(i, "flaky", "flaky",
               {"--subscribe", "orders.new", "--durable", "--env", "JOURNAL=" + journal, "--env",
                "FAIL_FIRST=" + std::to_string(fail_first), "--backoff", "50ms",
                "--max-attempts", "2"});
    }
  };
  auto letters_on = [&](int i) {
    api::DeadLetterList list;
    runtime::HttpClientResponse r =
        controllers_[i]->Call("GET", "/v1/functions/flaky/dead-letters");
    EXPECT_EQ(r.status, 200) << "controller " << i << ": " << r.body;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r.body, &list).ok()) << r.body;
    return list;
  };
  auto wait_for_letters = [&](int i, int n) {
    api::DeadLetterList list;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    do {
      list = letters_on(i);
      if (list.dead_letters_size() == n) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    } while (std::chrono::steady_clock::now() < deadline);
    return list;
  };
  auto journal_lines = [&] {
    std::vector<std::string> lines;
    std::ifstream in(journal);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  };
  auto wait_for_runs = [&](size_t n) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (journal_lines().size() < n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return journal_lines().size();
  };

  deploy_flaky(100);
  runtime::HttpClientResponse r =
      controllers_[0]->Call("POST", "/v1/events/orders.new", "poison", {{"ce-id", "order-7"}});
  ASSERT_EQ(r.status, 202) << r.body;
  api::DeadLetterList list = wait_for_letters(1, 1);
  ASSERT_EQ(list.dead_letters_size(), 1) << "controller 1 should list the dead letter";
  const api::DeadLetter first = list.dead_letters(0);
  EXPECT_GT(first.id(), 0);
  EXPECT_EQ(first.subject(), "orders.new");
  EXPECT_EQ(first.data(), "poison");
  EXPECT_EQ(first.attempts(), 2u);
  EXPECT_EQ(first.error_code(), "function_error") << first.error();
  EXPECT_FALSE(first.at().empty());
  ASSERT_EQ(first.headers().count("ce-id"), 1u);
  EXPECT_EQ(first.headers().at("ce-id"), "order-7");
  EXPECT_EQ(letters_on(0).dead_letters_size(), 1) << "controller 0 should list the same one";
  api::Function fn;
  bool counted = false;
  for (int i = 0; i < 100 && !counted; ++i) {
    counted = controllers_[1]->Describe("flaky", &fn) && fn.status().dead_letters() == 1;
    if (!counted) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(counted) << "describe on controller 1 should count 1 dead letter, counts "
                       << fn.status().dead_letters();
  EXPECT_EQ(wait_for_runs(2), 2u) << "2 attempts";

  // Replayed from controller 1 while it still fails: two more runs, and a
  // new dead letter for the event on its own subject.
  r = controllers_[1]->Call("POST", "/v1/functions/flaky/replay");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(r.body, HasSubstr("\"replayed\":\"1\"")) << "a uint64, a string in JSON";
  EXPECT_EQ(wait_for_runs(4), 4u) << "a replay starts over: 2 more attempts";
  list = wait_for_letters(0, 1);
  ASSERT_EQ(list.dead_letters_size(), 1);
  EXPECT_NE(list.dead_letters(0).id(), first.id()) << "the replayed letter should be gone";
  EXPECT_EQ(list.dead_letters(0).subject(), "orders.new");
  EXPECT_EQ(list.dead_letters(0).headers().at("ce-id"), "order-7");

  // Fixed: replayed by id from controller 0, it runs once and succeeds.
  deploy_flaky(0);
  r = controllers_[0]->Call("POST", "/v1/functions/flaky/replay?id=" +
                                        std::to_string(list.dead_letters(0).id()));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(wait_for_runs(5), 5u);
  const std::vector<std::string> runs = journal_lines();
  EXPECT_EQ(runs.back().substr(0, 2), "1 ") << "attempt 1: " << runs.back();
  EXPECT_THAT(runs.back(), ::testing::EndsWith(" poison"));
  EXPECT_EQ(wait_for_letters(1, 0).dead_letters_size(), 0);
  EXPECT_EQ(letters_on(0).dead_letters_size(), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(journal_lines().size(), 5u) << "the fixed replay should run once";

  r = controllers_[1]->Call("POST", "/v1/functions/flaky/replay?id=" + std::to_string(first.id()));
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_THAT(r.body, HasSubstr("dead_letter_not_found"));
}

// The dead letters a data dir got on the embedded broker (kept in its
// events.db) move into JetStream when it next runs on NATS, where every
// controller lists them.
TEST_F(JetStreamTest, DeadLettersKeptLocallyMoveIntoJetStream) {
  const std::string journal = shared_.path() + "/flaky.txt";
  {
    Controller local(dirs_[0].path());  // the embedded broker
    std::string error;
    ASSERT_TRUE(local.Start(&error)) << error;
    CliResult r = local.Deploy(TestFunctionPath("flaky"), "flaky",
                               {"--subscribe", "orders.new", "--durable", "--max-attempts", "1",
                                "--env", "JOURNAL=" + journal, "--env", "FAIL_FIRST=100"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    runtime::HttpClientResponse published =
        local.Call("POST", "/v1/events/orders.new", "old-poison");
    ASSERT_EQ(published.status, 202) << published.body;
    bool kept = false;
    for (int i = 0; i < 200 && !kept; ++i) {
      api::DeadLetterList local_list;
      kept = google::protobuf::util::JsonStringToMessage(
                 local.Call("GET", "/v1/functions/flaky/dead-letters").body, &local_list)
                 .ok() &&
             local_list.dead_letters_size() == 1;
      if (!kept) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_TRUE(kept) << "no local dead letter:\n" << local.Log();
    local.Stop();
  }
  ASSERT_NE(StartController(0), nullptr);
  ASSERT_NE(StartController(1), nullptr);
  ASSERT_FALSE(HasFailure());
  DeployOn(1, "flaky", "flaky",
           {"--subscribe", "orders.new", "--durable", "--max-attempts", "1", "--env",
            "JOURNAL=" + journal, "--env", "FAIL_FIRST=100"});
  api::DeadLetterList list;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (std::chrono::steady_clock::now() < deadline) {
    runtime::HttpClientResponse r = controllers_[1]->Call("GET", "/v1/functions/flaky/dead-letters");
    list.Clear();
    if (r.status == 200 && google::protobuf::util::JsonStringToMessage(r.body, &list).ok() &&
        list.dead_letters_size() > 0) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(list.dead_letters_size(), 1)
      << "the moved dead letter should be listed by the other controller";
  EXPECT_EQ(list.dead_letters(0).data(), "old-poison");
  EXPECT_EQ(list.dead_letters(0).subject(), "orders.new");
  EXPECT_EQ(list.dead_letters(0).attempts(), 1u);
  EXPECT_EQ(list.dead_letters(0).error_code(), "function_error");
  api::Function fn;
  bool counted = false;
  for (int i = 0; i < 100 && !counted; ++i) {
    counted = controllers_[0]->Describe("flaky", &fn) && fn.status().dead_letters() == 1;
    if (!counted) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(counted) << "controller 0 should count the letter once (moved, not copied), counts "
                       << fn.status().dead_letters();
}

TEST_F(JetStreamTest, ADurableDeployNeedsJetStream) {
  NatsServerProcess plain;  // no -js
  ASSERT_TRUE(plain.Start());
  Controller controller(dirs_[0].path(), {"--nats", plain.url()});
  std::string error;
  ASSERT_TRUE(controller.Start(&error)) << error;
  CliResult r = controller.Deploy(TestFunctionPath("journal"), "needs-js",
                                  {"--subscribe", "a.b", "--durable"});
  EXPECT_NE(r.exit_code, 0) << "a durable deploy without JetStream should fail: " << r.out;
  EXPECT_THAT(r.err, HasSubstr("JetStream")) << r.err;
  // Plain subscriptions do not need it.
  r = controller.Deploy(TestFunctionPath("journal"), "plain", {"--subscribe", "a.c"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  controller.Stop();
}

}  // namespace
}  // namespace wisp::testing
