// At-least-once delivery through kill -9: 10,000 events published into a
// three-stage durable pipeline (forward -> forward -> journal) while the
// controller is killed with SIGKILL at random moments (twice while events
// arrive, once while the pipeline drains) and restarted. Every
// event the controller accepted (202) must reach the sink; duplicates may
// happen and are counted and reported.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.h"
#include "tests/integration/sink_tally.h"

namespace wisp::testing {
namespace {

constexpr int kEvents = 10000;
constexpr int kKills = 3;
constexpr int kPublishers = 4;

TEST(DurableCrashTest, NoAcceptedEventIsLostWhenTheControllerIsKilled) {
  TempDir dir;
  Controller controller(dir.path());
  std::string error;
  ASSERT_TRUE(controller.Start(&error)) << error;
  const std::string sink = dir.path() + "/sink.txt";
  struct Stage {
    const char* function;
    const char* name;
    const char* subject;
    std::string env;
  } stages[] = {
      {"forward", "stage-a", "crash.new", "FORWARD_TO=crash.a"},
      {"forward", "stage-b", "crash.a", "FORWARD_TO=crash.b"},
      {"journal", "sink", "crash.b", "JOURNAL=" + sink},
  };
  for (const Stage& s : stages) {
    CliResult r = controller.Deploy(TestFunctionPath(s.function), s.name,
                                    {"--subscribe", s.subject, "--durable", "--env", s.env,
                                     "--backoff", "50ms", "--max-attempts", "100"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  // The publisher retries each event (same ce-id) until a controller takes it.
  std::atomic<int> port{controller.port()};
  std::atomic<int> accepted{0};
  std::atomic<int> refused{0};
  const std::string token = controller.token();
  // Several publishers, so that events wait in the queues when a kill comes.
  std::vector<std::thread> publishers;
  for (int t = 0; t < kPublishers; ++t) {
    publishers.emplace_back([&, t] {
      std::unique_ptr<runtime::HttpClient> client;
      int client_port = 0;
      for (int i = t; i < kEvents; i += kPublishers) {
        const std::string id = "evt-" + std::to_string(i);
        while (true) {
          if (client == nullptr || client_port != port.load()) {
            client_port = port.load();
            client = std::make_unique<runtime::HttpClient>("127.0.0.1", client_port, 5000);
          }
          StatusOr<runtime::HttpClientResponse> r = client->Request(
              "POST", "/v1/events/crash.new",
              {{"Authorization", "Bearer " + token}, {"ce-id", id}}, id);
          if (r.ok() && r->status == 202) break;
          ++refused;
          client.reset();
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        ++accepted;
      }
    });
  }

  // Two kills at random points of the publishing, one while the pipeline
  // drains what was accepted.
  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> point(500, kEvents - 500);
  std::vector<int> kill_at = {point(random), point(random)};
  std::sort(kill_at.begin(), kill_at.end());
  kill_at.push_back(kEvents);
  for (int kill = 0; kill < kKills; ++kill) {
    while (accepted.load() < kill_at[kill]) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    controller.Kill();
    std::fprintf(stderr, "killed the controller (kill %d) after %d accepted events, %zu at the sink\n",
                 kill + 1, accepted.load(), CountLines(sink).size());
    if (!controller.Start(&error)) {
      for (std::thread& p : publishers) p.detach();  // they cannot finish; the test ends here
      FAIL() << "restart " << kill + 1 << " failed: " << error;
    }
    port = controller.port();
  }
  for (std::thread& p : publishers) p.join();

  const SinkTally tally = WaitForSink(sink, kEvents, "evt-", std::chrono::seconds(180));
  std::fprintf(stderr,
               "durable pipeline through %d kill -9s: %d events accepted (%d publish attempts "
               "refused while down), %zu distinct at the sink, %d missing, %d duplicates\n",
               kKills, accepted.load(), refused.load(), tally.seen.size(), tally.missing,
               tally.duplicates);
  EXPECT_EQ(tally.missing, 0) << "every accepted event should reach the sink; first missing: "
                        << tally.first_missing << "\n"
                        << controller.Log();
  EXPECT_EQ(tally.seen.size(), static_cast<size_t>(kEvents)) << "the sink saw ids nobody published";
  controller.Stop();
}

}  // namespace
}  // namespace wisp::testing
