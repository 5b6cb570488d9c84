// Controllers of one cluster (wisp up --nats URL --cluster NAME) on a real
// nats-server -js share their deployments through JetStream KV: a deploy,
// a new version, a rollback and a removal on one node are served by every
// node; a node started later, or down for a while, catches up; a value whose
// artifact does not match its SHA-256 is never served; the buckets are
// readable by a plain nats.c KV client; a full node forwards calls to one
// with room. On a three-server NATS cluster: deployments and durable events
// survive the loss of a server, and of a controller killed under load.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nats/nats.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <google/protobuf/util/json_util.h>

#include "api.pb.h"
#include "runtime/http_client.h"
#include "tests/integration/harness.h"
#include "tests/integration/sink_tally.h"
#include "tests/support/nats_server.h"

namespace wisp::testing {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

constexpr int kNodes = 3;
constexpr const char* kCluster = "test";

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// node's /healthz cluster section (empty when it has none or is down).
api::ClusterState ClusterStateOf(Controller& node) {
  api::Health health;
  runtime::HttpClientResponse r = node.Call("GET", "/healthz");
  if (r.status != 200 || !google::protobuf::util::JsonStringToMessage(r.body, &health).ok()) {
    return {};
  }
  return health.cluster();
}

// Polls node's /healthz until it says the node has joined its cluster (its
// buckets are ready, so it takes deploys); false after timeout.
bool WaitUntilJoined(Controller& node, std::chrono::seconds timeout = std::chrono::seconds(30)) {
  const auto deadline = Clock::now() + timeout;
  while (!ClusterStateOf(node).joined()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(nats_.Start()); }

  void TearDown() override {
    for (int i = 0; i < kNodes; ++i) {
      if (!nodes_[i]) continue;
      if (HasFailure()) std::fprintf(stderr, "---- node %d log ----\n%s", i, nodes_[i]->Log().c_str());
      nodes_[i]->Stop();
    }
    if (HasFailure()) std::fprintf(stderr, "---- nats-server log ----\n%s", nats_.Log().c_str());
  }

  Controller* StartNode(int i, std::vector<std::string> extra_args = {}) {
    std::vector<std::string> args{"--nats", nats_.url(), "--cluster", kCluster};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    nodes_[i] = std::make_unique<Controller>(dirs_[i].path(), std::move(args));
    std::string error;
    if (!nodes_[i]->Start(&error)) {
      ADD_FAILURE() << "node " << i << ": " << error;
      return nodes_[i].get();
    }
    EXPECT_TRUE(WaitUntilJoined(*nodes_[i])) << "node " << i << " never joined the cluster";
    return nodes_[i].get();
  }

  // Polls node i's /fn/<name> until check(status, body) holds; the time it
  // took, or -1 ms after timeout_ms (with the last answer in *last).
  std::chrono::milliseconds WaitFor(int i, const std::string& name,
                                    const std::function<bool(int, const std::string&)>& check,
                                    std::string* last, int timeout_ms = 10000) {
    const auto start = Clock::now();
    while (Clock::now() - start < std::chrono::milliseconds(timeout_ms)) {
      runtime::HttpClientResponse r = nodes_[i]->Call("POST", "/fn/" + name, "world");
      *last = std::to_string(r.status) + " " + r.body;
      if (check(r.status, r.body)) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return std::chrono::milliseconds(-1);
  }

  // Expects every node to answer /fn/<name> with status and body within 10 s.
  void ExpectEveryNodeAnswers(const std::string& name, int status, const std::string& body,
                              const std::string& step) {
    for (int i = 0; i < kNodes; ++i) {
      if (!nodes_[i]) continue;
      std::string last;
      auto took = WaitFor(
          i, name, [&](int s, const std::string& b) { return s == status && b == body; }, &last);
      EXPECT_GE(took.count(), 0) << step << ": node " << i << " should answer " << status << " '"
                                 << body << "' within 10 s; its last answer was " << last;
      if (took.count() >= 0) {
        std::printf("[ cluster  ] %s: node %d after %lld ms\n", step.c_str(), i,
                    static_cast<long long>(took.count()));
      }
    }
  }

  NatsServerProcess nats_{NatsServerOptions{.jetstream = true}};
  TempDir dirs_[kNodes];
  std::unique_ptr<Controller> nodes_[kNodes];
};

TEST_F(ClusterTest, ChangesOnOneNodeAreServedByEveryNode) {
  for (int i = 0; i < kNodes; ++i) ASSERT_NE(StartNode(i), nullptr);
  ASSERT_FALSE(HasFailure());
  EXPECT_THAT(nodes_[0]->startup_output(), HasSubstr("cluster test"));

  CliResult r = nodes_[0]->Deploy(ExamplePath("hello"), "svc");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectEveryNodeAnswers("svc", 200, "hello, world", "deploy on node 0");

  r = nodes_[1]->Deploy(ExamplePath("echo"), "svc", {"--version", "2.0.0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectEveryNodeAnswers("svc", 200, "world", "new version on node 1");
  api::Function described;
  ASSERT_TRUE(nodes_[2]->Describe("svc", &described));
  EXPECT_EQ(described.version(), "2.0.0");
  EXPECT_EQ(described.versions_size(), 2) << "node 2 keeps both versions, for rollback";

  r = RunCli({"rollback", "svc", "--server", nodes_[2]->url(), "--token", nodes_[2]->token()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectEveryNodeAnswers("svc", 200, "hello, world", "rollback on node 2");

  r = RunCli({"rm", "svc", "--server", nodes_[1]->url(), "--token", nodes_[1]->token()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (int i = 0; i < kNodes; ++i) {
    std::string last;
    auto took = WaitFor(
        i, "svc", [](int s, const std::string&) { return s == 404; }, &last);
    EXPECT_GE(took.count(), 0) << "node " << i << " should forget svc after rm on node 1; it said "
                               << last;
  }
}

TEST_F(ClusterTest, ANodeStartedLaterCatchesUpWithConfig) {
  ASSERT_NE(StartNode(0), nullptr);
  ASSERT_FALSE(HasFailure());
  CliResult r = nodes_[0]->Deploy(ExamplePath("hello"), "greeter",
                                  {"--timeout", "7s", "--max-workers", "3", "--version", "1.2.3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  api::Function there;
  ASSERT_TRUE(nodes_[0]->Describe("greeter", &there));

  ASSERT_NE(StartNode(1), nullptr);
  ASSERT_FALSE(HasFailure());
  std::string last;
  auto took = WaitFor(
      1, "greeter", [](int s, const std::string& b) { return s == 200 && b == "hello, world"; },
      &last);
  ASSERT_GE(took.count(), 0) << "the late node should serve greeter; it said " << last;
  api::Function here;
  ASSERT_TRUE(nodes_[1]->Describe("greeter", &here));
  EXPECT_EQ(here.version(), "1.2.3");
  EXPECT_EQ(here.sha256(), there.sha256());
  EXPECT_EQ(here.config().timeout_ms(), 7000u);
  EXPECT_EQ(here.config().max_workers(), 3u);
}

TEST_F(ClusterTest, ANodeThatWasDownCatchesUpWhenItRejoins) {
  ASSERT_NE(StartNode(0), nullptr);
  ASSERT_NE(StartNode(1), nullptr);
  ASSERT_FALSE(HasFailure());
  ASSERT_EQ(nodes_[0]->Deploy(ExamplePath("hello"), "kept").exit_code, 0);
  ASSERT_EQ(nodes_[0]->Deploy(ExamplePath("hello"), "dropped").exit_code, 0);
  std::string last;
  ASSERT_GE(WaitFor(1, "dropped", [](int s, const std::string&) { return s == 200; }, &last).count(),
            0)
      << last;
  nodes_[1]->Stop();
  // While node 1 is down: a new version of one, the other removed.
  ASSERT_EQ(nodes_[0]->Deploy(ExamplePath("echo"), "kept").exit_code, 0);
  CliResult r = RunCli({"rm", "dropped", "--server", nodes_[0]->url(), "--token", nodes_[0]->token()});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  std::string error;
  ASSERT_TRUE(nodes_[1]->Start(&error)) << error;
  ASSERT_TRUE(WaitUntilJoined(*nodes_[1])) << "the restarted node never joined the cluster";
  EXPECT_GE(WaitFor(1, "kept", [](int s, const std::string& b) { return s == 200 && b == "world"; },
                    &last)
                .count(),
            0)
      << "the rejoined node should serve kept's new version; it said " << last;
  EXPECT_GE(WaitFor(1, "dropped", [](int s, const std::string&) { return s == 404; }, &last).count(),
            0)
      << "the rejoined node should have removed dropped; it said " << last;
}

// A plain nats.c KV client: reads what wisp wrote, and writes a value
// whose artifact does not match its digest.
TEST_F(ClusterTest, AValueWhoseArtifactDoesNotMatchItsDigestIsNeverServed) {
  ASSERT_NE(StartNode(0), nullptr);
  ASSERT_NE(StartNode(1), nullptr);
  ASSERT_FALSE(HasFailure());
  CliResult r = nodes_[0]->Deploy(ExamplePath("hello"), "honest");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string last;
  ASSERT_GE(WaitFor(1, "honest", [](int s, const std::string&) { return s == 200; }, &last).count(), 0)
      << last;

  natsConnection* nc = nullptr;
  ASSERT_EQ(natsConnection_ConnectTo(&nc, nats_.url().c_str()), NATS_OK);
  jsCtx* js = nullptr;
  ASSERT_EQ(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
  kvStore* functions = nullptr;
  kvStore* artifacts = nullptr;
  ASSERT_EQ(js_KeyValue(&functions, js, "wisp-test-functions"), NATS_OK);
  ASSERT_EQ(js_KeyValue(&artifacts, js, "wisp-test-artifacts"), NATS_OK);

  kvEntry* entry = nullptr;
  ASSERT_EQ(kvStore_Get(&entry, functions, "honest"), NATS_OK);
  const std::string value = kvEntry_ValueString(entry);
  kvEntry_Destroy(entry);
  EXPECT_THAT(value, HasSubstr("\"name\":\"honest\""));
  EXPECT_THAT(value, HasSubstr("\"chunks\":1"));

  // hello.so's bytes under a digest they do not have.
  const std::string bytes = ReadBytes(ExamplePath("hello"));
  ASSERT_FALSE(bytes.empty());
  const std::string digest(64, 'a');
  const std::string forged =
      "{\"name\":\"forged\",\"version\":{\"version\":\"1.0.0\",\"sha256\":\"" + digest +
      "\",\"size_bytes\":" + std::to_string(bytes.size()) +
      ",\"config\":{\"timeout_ms\":30000,\"idle_ms\":60000,\"max_workers\":2}},\"chunks\":1}";
  uint64_t rev = 0;
  ASSERT_EQ(kvStore_Put(&rev, artifacts, (digest + ".0").c_str(), bytes.data(),
                        static_cast<int>(bytes.size())),
            NATS_OK);
  ASSERT_EQ(kvStore_Put(&rev, functions, "forged", forged.data(), static_cast<int>(forged.size())),
            NATS_OK);
  // A value that is not a deployment at all, and one naming a terabyte.
  const std::string junk = "not json";
  ASSERT_EQ(kvStore_Put(&rev, functions, "junk", junk.data(), static_cast<int>(junk.size())),
            NATS_OK);
  const std::string huge =
      "{\"name\":\"huge\",\"version\":{\"version\":\"1.0.0\",\"sha256\":\"" + digest +
      "\",\"size_bytes\":1000000000000,\"config\":{\"timeout_ms\":1,\"max_workers\":1}},"
      "\"chunks\":7629395}";
  ASSERT_EQ(kvStore_Put(&rev, functions, "huge", huge.data(), static_cast<int>(huge.size())),
            NATS_OK);

  // Both nodes see the hint at once and a full pass within 5 s: wait for
  // the log lines, then check nothing is served.
  for (int i = 0; i < 2; ++i) {
    const auto start = Clock::now();
    auto refused_both = [&] {
      const std::string log = nodes_[i]->Log();
      return log.find("refusing forged") != std::string::npos &&
             log.find("refusing junk") != std::string::npos &&
             log.find("refusing huge") != std::string::npos;
    };
    while (Clock::now() - start < std::chrono::seconds(10) && !refused_both()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_THAT(nodes_[i]->Log(), HasSubstr("refusing forged 1.0.0: its artifact's SHA-256 is"))
        << "node " << i;
    EXPECT_THAT(nodes_[i]->Log(), HasSubstr("refusing junk")) << "node " << i;
    EXPECT_THAT(nodes_[i]->Log(), HasSubstr("refusing huge at revision"))
        << "node " << i;
    EXPECT_THAT(nodes_[i]->Log(), HasSubstr("over the upload limit")) << "node " << i;
    runtime::HttpClientResponse forged_call = nodes_[i]->Call("POST", "/fn/forged", "x");
    EXPECT_EQ(forged_call.status, 404) << "node " << i << ": " << forged_call.body;
    runtime::HttpClientResponse honest_call = nodes_[i]->Call("POST", "/fn/honest", "x");
    EXPECT_EQ(honest_call.status, 200) << "node " << i << " stops serving what it had: "
                                       << honest_call.body;
  }
  kvStore_Destroy(functions);
  kvStore_Destroy(artifacts);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
}

// An artifact no function names any more leaves the artifacts bucket after
// --cluster-gc-after; a rollback to it puts it back.
TEST_F(ClusterTest, AnArtifactNoFunctionNamesLeavesTheBucket) {
  for (int i = 0; i < 2; ++i) ASSERT_NE(StartNode(i, {"--cluster-gc-after", "1s"}), nullptr);
  ASSERT_FALSE(HasFailure());
  CliResult r = nodes_[0]->Deploy(ExamplePath("hello"), "svc", {"--version", "1.0.0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectEveryNodeAnswers("svc", 200, "hello, world", "first version");
  api::Function fn;
  ASSERT_TRUE(nodes_[0]->Describe("svc", &fn));
  const std::string first = fn.sha256();
  r = nodes_[0]->Deploy(ExamplePath("echo"), "svc", {"--version", "2.0.0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectEveryNodeAnswers("svc", 200, "world", "second version");
  ASSERT_TRUE(nodes_[0]->Describe("svc", &fn));
  const std::string second = fn.sha256();

  natsConnection* nc = nullptr;
  ASSERT_EQ(natsConnection_ConnectTo(&nc, nats_.url().c_str()), NATS_OK);
  jsCtx* js = nullptr;
  ASSERT_EQ(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
  const std::string stream = std::string("KV_wisp-") + kCluster + "-artifacts";
  auto stored = [&](const std::string& sha256) {
    natsMsg* msg = nullptr;
    const std::string subject = std::string("$KV.wisp-") + kCluster + "-artifacts." + sha256 + ".0";
    const natsStatus s = js_GetLastMsg(&msg, js, stream.c_str(), subject.c_str(), nullptr, nullptr);
    natsMsg_Destroy(msg);
    return s == NATS_OK;
  };
  EXPECT_TRUE(stored(first));
  // A pass every 5 s: the first notes it unnamed, the next (1 s later or
  // more) removes it.
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (stored(first) && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_FALSE(stored(first)) << "version 1.0.0's artifact was still in the bucket after 30 s";
  EXPECT_TRUE(stored(second)) << "the current version's artifact must stay";
  uint64_t removed = 0;
  const auto counted_by = Clock::now() + std::chrono::seconds(5);
  do {  // the node that removed it counts it once JetStream answered
    removed = 0;
    for (int i = 0; i < 2; ++i) {
      api::Health health;
      runtime::HttpClientResponse h = nodes_[i]->Call("GET", "/healthz");
      ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(h.body, &health).ok()) << h.body;
      removed += health.cluster().artifacts_removed();
    }
  } while (removed == 0 && Clock::now() < counted_by);
  EXPECT_EQ(removed, 1u) << "one node removes it; the other finds it gone";

  // Node 1 still has 1.0.0 and its artifact: a rollback there shares it again.
  r = RunCli({"rollback", "svc", "--server", nodes_[1]->url(), "--token", nodes_[1]->token()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectEveryNodeAnswers("svc", 200, "hello, world", "rollback on node 1");
  EXPECT_TRUE(stored(first)) << "the rollback put the artifact back";
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
}

// A function loaded on two nodes is one NATS service with two instances.
TEST_F(ClusterTest, EachNodeIsAnInstanceOfTheFunctionsService) {
  for (int i = 0; i < 2; ++i) ASSERT_NE(StartNode(i), nullptr);
  ASSERT_FALSE(HasFailure());
  CliResult r = nodes_[0]->Deploy(ExamplePath("hello"), "svc", {"--version", "1.2.3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (int i = 0; i < 2; ++i) {  // a call loads it on each node
    std::string last;
    EXPECT_GE(WaitFor(i, "svc", [](int s, const std::string&) { return s == 200; }, &last).count(), 0)
        << "node " << i << ": " << last;
  }
  runtime::HttpClientResponse listed = nodes_[1]->Call("GET", "/v1/services?wait=500ms");
  ASSERT_EQ(listed.status, 200) << listed.body;
  api::ServiceList services;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(listed.body, &services).ok()) << listed.body;
  std::set<std::string> ids;
  for (const api::ServiceInfo& service : services.services()) {
    if (service.name() != "svc") continue;
    EXPECT_EQ(service.version(), "1.2.3");
    ids.insert(service.id());
  }
  EXPECT_EQ(ids.size(), 2u) << "expected svc from both nodes, each with its own id: "
                            << listed.body;
}

// Calls that find one node full go to a node with room; with no such node
// they get 503 no_capacity at once.
TEST_F(ClusterTest, AFullNodeForwardsCallsToANodeWithRoom) {
  ASSERT_NE(StartNode(0, {"--max-queue", "2", "--pipeline-depth", "1"}), nullptr);
  ASSERT_NE(StartNode(1), nullptr);
  ASSERT_FALSE(HasFailure());
  CliResult r = nodes_[0]->Deploy(TestFunctionPath("sleep"), "slow", {"--max-workers", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string last;
  ASSERT_GE(WaitFor(1, "slow", [](int s, const std::string&) { return s == 200; }, &last).count(), 0)
      << "node 1 never served slow: " << last;
  // Node 1 offers room for slow at its next check of its queues.
  api::Health health;
  const auto offered_by = Clock::now() + std::chrono::seconds(10);
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    runtime::HttpClientResponse h = nodes_[1]->Call("GET", "/healthz");
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(h.body, &health).ok()) << h.body;
  } while (health.cluster().offering_size() == 0 && Clock::now() < offered_by);
  ASSERT_EQ(health.cluster().offering_size(), 1) << "node 1 never offered room for slow";
  EXPECT_EQ(health.cluster().offering(0), "slow");
  const std::string node1_suffix = ":" + std::to_string(nodes_[1]->pid());

  // Twelve calls of 300 ms at once on node 0: one runs, two wait, the rest
  // find it full.
  auto burst = [&](std::vector<runtime::HttpClientResponse>* replies) {
    replies->assign(12, {});
    std::vector<std::thread> callers;
    for (size_t i = 0; i < replies->size(); ++i) {
      callers.emplace_back([&, i] { (*replies)[i] = nodes_[0]->Call("POST", "/fn/slow", "300"); });
    }
    for (std::thread& t : callers) t.join();
  };
  std::vector<runtime::HttpClientResponse> replies;
  burst(&replies);
  int forwarded = 0;
  for (const runtime::HttpClientResponse& reply : replies) {
    EXPECT_EQ(reply.status, 200) << "every call should be served, here or on node 1: " << reply.body;
    EXPECT_EQ(reply.body, "slept 300");
    if (const std::string* node = reply.Header("x-wisp-node")) {
      EXPECT_THAT(*node, ::testing::EndsWith(node1_suffix)) << "forwarded to an unknown node";
      ++forwarded;
    }
  }
  EXPECT_GE(forwarded, 6) << "expected the calls node 0 had no room for to run on node 1";
  std::printf("[ cluster  ] %d of 12 calls forwarded to node 1\n", forwarded);
  api::Function on_node1;
  ASSERT_TRUE(nodes_[1]->Describe("slow", &on_node1));
  EXPECT_GE(on_node1.status().invocations(), static_cast<uint64_t>(forwarded))
      << "node 1 counts the calls it ran for node 0";
  runtime::HttpClientResponse h = nodes_[0]->Call("GET", "/healthz");
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(h.body, &health).ok()) << h.body;
  EXPECT_EQ(health.cluster().forwarded(), static_cast<uint64_t>(forwarded)) << h.body;
  EXPECT_EQ(health.cluster().name(), kCluster);

  // A request on the forwarding subject that is not a forwarded call is
  // refused with its reason; node 1 goes on serving.
  natsConnection* nc = nullptr;
  ASSERT_EQ(natsConnection_ConnectTo(&nc, nats_.url().c_str()), NATS_OK);
  for (const std::string& junk : {std::string("not a protobuf \xff\xff"), std::string()}) {
    natsMsg* reply = nullptr;
    ASSERT_EQ(natsConnection_Request(&reply, nc, "wisp.fwd.test.slow", junk.data(),
                                     static_cast<int>(junk.size()), 5000),
              NATS_OK);
    const std::string answer(natsMsg_GetData(reply), static_cast<size_t>(natsMsg_GetDataLength(reply)));
    EXPECT_THAT(answer, HasSubstr("bad_forward")) << "junk of " << junk.size() << " bytes";
    natsMsg_Destroy(reply);
  }
  natsConnection_Destroy(nc);
  EXPECT_EQ(nodes_[1]->Call("POST", "/fn/slow", "1").status, 200);

  // Alone, node 0 answers what it has no room for with 503 at once.
  if (HasFailure()) std::fprintf(stderr, "---- node 1 log ----\n%s", nodes_[1]->Log().c_str());
  nodes_[1]->Stop();
  nodes_[1].reset();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  burst(&replies);
  int refused = 0;
  for (const runtime::HttpClientResponse& reply : replies) {
    EXPECT_EQ(reply.Header("x-wisp-node"), nullptr) << "forwarded to a node that is gone";
    if (reply.status == 503) {
      EXPECT_THAT(reply.body, HasSubstr("\"code\":\"no_capacity\"")) << reply.body;
      EXPECT_NE(reply.Header("retry-after"), nullptr);
      ++refused;
    } else {
      EXPECT_EQ(reply.status, 200) << reply.body;
    }
  }
  EXPECT_GE(refused, 6) << "expected the calls node 0 had no room for to be refused";
}

TEST_F(ClusterTest, ClusterWithoutNatsIsRefusedAtStart) {
  Controller lone(dirs_[0].path(), {"--cluster", "test"});
  std::string error;
  EXPECT_FALSE(lone.Start(&error));
  EXPECT_THAT(lone.Log(), HasSubstr("--cluster needs --nats"));
  Controller bad(dirs_[1].path(), {"--nats", nats_.url(), "--cluster", "no spaces"});
  EXPECT_FALSE(bad.Start(&error));
  EXPECT_THAT(bad.Log(), HasSubstr("must be 1 to 64 of"));
}

// A node that cannot share a change yet (its JetStream buckets are not
// ready: here the server has no JetStream at all) refuses deploys with 503
// cluster_not_ready and Retry-After, and keeps nothing of them: were it
// kept, the node would serve a version the cluster never heard of.
TEST(ClusterJoiningTest, ChangesAreRefusedUntilTheNodeHasJoined) {
  NatsServerProcess nats{NatsServerOptions{.jetstream = false}};
  ASSERT_TRUE(nats.Start());
  TempDir dir;
  Controller node(dir.path(), {"--nats", nats.url(), "--cluster", kCluster});
  std::string error;
  ASSERT_TRUE(node.Start(&error)) << error;
  const api::ClusterState state = ClusterStateOf(node);
  EXPECT_EQ(state.name(), kCluster) << "/healthz should have the cluster section";
  EXPECT_FALSE(state.joined()) << "/healthz says the node joined a cluster without JetStream";
  runtime::HttpClient client("127.0.0.1", node.port(), 5000);
  StatusOr<runtime::HttpClientResponse> r =
      client.Request("PUT", "/v1/functions/hello", {{"Authorization", "Bearer " + node.token()}},
                     ReadBytes(ExamplePath("hello")));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 503) << r->body;
  EXPECT_THAT(r->body, HasSubstr("\"cluster_not_ready\"")) << r->body;
  EXPECT_THAT(r->body, HasSubstr("still joining cluster test")) << r->body;
  const std::string* retry_after = r->Header("retry-after");
  EXPECT_TRUE(retry_after != nullptr && *retry_after == "1")
      << "expected Retry-After: 1, got " << (retry_after != nullptr ? *retry_after : "none");
  CliResult cli = node.Deploy(ExamplePath("hello"), "hello");
  EXPECT_NE(cli.exit_code, 0) << cli.out;
  EXPECT_THAT(cli.err, HasSubstr("cluster_not_ready"));
  api::Function fn;
  EXPECT_FALSE(node.Describe("hello", &fn)) << "a refused deploy left hello deployed here";
  EXPECT_EQ(node.Call("POST", "/fn/hello", "world").status, 404);
  std::error_code ec;
  auto artifacts = std::filesystem::directory_iterator(dir.path() + "/artifacts", ec);
  EXPECT_TRUE(ec || artifacts == std::filesystem::directory_iterator())
      << "a refused deploy left its artifact in the data dir";
  node.Stop();
}

// Three nats-servers as one NATS cluster with JetStream, each standing in
// for a host; two controllers, each connected to all three, keep the
// cluster's buckets in three replicas. Losing a server loses nothing.
class NatsClusterTest : public ::testing::Test {
 protected:
  static constexpr int kServers = 3;

  void SetUp() override {
    int route_ports[kServers];
    for (int i = 0; i < kServers; ++i) route_ports[i] = NatsServerProcess::PickFreePort();
    for (int i = 0; i < kServers; ++i) {
      NatsServerOptions options;
      options.jetstream = true;
      // The client port is picked by Start, which picks again if another
      // process took it meanwhile; the route ports must be known up front.
      options.cluster_name = "wisp-test";
      options.cluster_port = route_ports[i];
      for (int j = 0; j < kServers; ++j) {
        if (j != i) options.route_ports.push_back(route_ports[j]);
      }
      servers_[i] = std::make_unique<NatsServerProcess>(options);
    }
    for (int i = 0; i < kServers; ++i) ASSERT_TRUE(servers_[i]->Start()) << "server " << i;
    for (int i = 0; i < kServers; ++i) {
      urls_ += (i > 0 ? "," : "") + servers_[i]->url();
    }
  }

  void TearDown() override {
    for (int i = 0; i < 2; ++i) {
      if (!nodes_[i]) continue;
      if (HasFailure()) std::fprintf(stderr, "---- node %d log ----\n%s", i, nodes_[i]->Log().c_str());
      nodes_[i]->Stop();
    }
    if (HasFailure()) {
      for (int i = 0; i < kServers; ++i) {
        std::fprintf(stderr, "---- nats-server %d log (tail) ----\n%s", i,
                     servers_[i]->Log().substr(servers_[i]->Log().size() > 3000
                                                   ? servers_[i]->Log().size() - 3000
                                                   : 0).c_str());
      }
    }
  }

  // Deploys so_path as name on node i, trying again while the NATS cluster
  // elects its JetStream leaders (the deploy is refused with 503 until the
  // buckets exist); false after 30 s.
  bool DeployWhenReady(int i, const std::string& so_path, const std::string& name,
                       std::string* last, std::vector<std::string> args = {}) {
    const auto start = Clock::now();
    while (Clock::now() - start < std::chrono::seconds(30)) {
      CliResult r = nodes_[i]->Deploy(so_path, name, args);
      if (r.exit_code == 0) return true;
      *last = r.err;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    return false;
  }

  bool Answers(int i, const std::string& name, const std::string& body, std::string* last,
               int timeout_s = 20) {
    const auto start = Clock::now();
    while (Clock::now() - start < std::chrono::seconds(timeout_s)) {
      runtime::HttpClientResponse r = nodes_[i]->Call("POST", "/fn/" + name, "world");
      *last = std::to_string(r.status) + " " + r.body;
      if (r.status == 200 && r.body == body) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  // Whether node i describes name within 10 s (it came through the cluster).
  bool Knows(int i, const std::string& name) {
    const auto start = Clock::now();
    api::Function fn;
    while (Clock::now() - start < std::chrono::seconds(10)) {
      if (nodes_[i]->Describe(name, &fn)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  // Starts both nodes on all three servers, keeping three replicas.
  void StartNodes() {
    for (int i = 0; i < 2; ++i) {
      nodes_[i] = std::make_unique<Controller>(
          dirs_[i].path(), std::vector<std::string>{"--nats", urls_, "--cluster", "three",
                                                    "--cluster-replicas", "3"});
      std::string error;
      ASSERT_TRUE(nodes_[i]->Start(&error)) << "node " << i << ": " << error;
    }
  }

  // The server node i's log says it connected to last, or -1.
  int ServerOf(int i) const {
    const std::string log = nodes_[i]->Log();
    size_t best = std::string::npos;
    int server = -1;
    for (int s = 0; s < kServers; ++s) {
      const size_t at = log.rfind("connected to " + servers_[s]->url() + "\n");
      if (at != std::string::npos && (best == std::string::npos || at > best)) {
        best = at;
        server = s;
      }
    }
    return server;
  }

  std::unique_ptr<NatsServerProcess> servers_[kServers];
  std::string urls_;
  TempDir shared_;  // the sink's file, written by both nodes' workers
  TempDir dirs_[2];
  std::unique_ptr<Controller> nodes_[2];
};

TEST_F(NatsClusterTest, DeploymentsSurviveTheLossOfOneServerOfThree) {
  StartNodes();
  ASSERT_FALSE(HasFailure());
  std::string last;
  ASSERT_TRUE(DeployWhenReady(0, ExamplePath("hello"), "before", &last))
      << "the deploy on node 0 kept failing: " << last;
  ASSERT_TRUE(Answers(1, "before", "hello, world", &last)) << "node 1 said " << last;

  // The server node 0 is connected to goes; the buckets' other two replicas
  // keep going.
  const int lost = ServerOf(0);
  ASSERT_GE(lost, 0) << "node 0's log names no server it connected to:\n" << nodes_[0]->Log();
  servers_[lost]->Kill();
  ASSERT_TRUE(DeployWhenReady(1, ExamplePath("echo"), "after", &last))
      << "with one server down, the deploy on node 1 kept failing: " << last;
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(Answers(i, "after", "world", &last))
        << "node " << i << " should serve what was deployed after the loss; it said " << last;
    EXPECT_TRUE(Answers(i, "before", "hello, world", &last))
        << "node " << i << " should still serve what was deployed before; it said " << last;
  }
  EXPECT_THAT(nodes_[0]->Log(), HasSubstr("reconnected to"))
      << "node 0 lost its server and should say where it reconnected";
}

// Durable events on a three-replica WISP_EVENTS stream: a function deployed
// on node 0 (and so on node 1, through the cluster) takes 2,000 events
// published through both nodes while the server node 0 uses is killed.
TEST_F(NatsClusterTest, DurableEventsSurviveTheLossOfOneServerOfThree) {
  constexpr int kEvents = 2000;
  StartNodes();
  ASSERT_FALSE(HasFailure());
  const std::string sink = shared_.path() + "/sink.txt";
  std::string last;
  ASSERT_TRUE(DeployWhenReady(0, TestFunctionPath("journal"), "sink", &last,
                              {"--subscribe", "cl.in", "--durable", "--timeout", "2s", "--backoff",
                               "50ms", "--max-attempts", "100", "--env", "JOURNAL=" + sink}))
      << "the durable deploy kept failing: " << last;
  ASSERT_TRUE(Knows(1, "sink")) << "node 1 never got the durable function";

  const int lost = ServerOf(0);
  ASSERT_GE(lost, 0) << nodes_[0]->Log();
  int refused = 0;
  std::unique_ptr<runtime::HttpClient> clients[2];
  for (int n = 0; n < kEvents; ++n) {
    if (n == kEvents / 4) servers_[lost]->Kill();
    const std::string id = "evt-" + std::to_string(n);
    for (int attempt = 0;; ++attempt) {
      const int which = (n + attempt) % 2;
      if (clients[which] == nullptr) {
        clients[which] = std::make_unique<runtime::HttpClient>("127.0.0.1", nodes_[which]->port(), 5000);
      }
      StatusOr<runtime::HttpClientResponse> r = clients[which]->Request(
          "POST", "/v1/events/cl.in",
          {{"Authorization", "Bearer " + nodes_[which]->token()}, {"ce-id", id}}, id);
      if (r.ok() && r->status == 202) break;
      ++refused;
      clients[which].reset();
      ASSERT_LT(attempt, 400) << "event " << id << " was refused 400 times; last: "
                              << (r.ok() ? std::to_string(r->status) + " " + r->body
                                         : r.status().ToString());
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
  }
  const SinkTally tally = WaitForSink(sink, kEvents, "evt-", std::chrono::seconds(120));
  std::fprintf(stderr,
               "[ cluster  ] %d durable events, server %d of 3 killed after %d: %d publish attempts "
               "refused and retried, %zu distinct at the sink, %d missing, %d duplicates\n",
               kEvents, lost, kEvents / 4, refused, tally.seen.size(), tally.missing,
               tally.duplicates);
  EXPECT_EQ(tally.missing, 0) << "first missing: " << tally.first_missing;

  // The streams wisp made have three replicas (read with a plain nats.c client).
  natsConnection* nc = nullptr;
  ASSERT_EQ(natsConnection_ConnectTo(&nc, urls_.c_str()), NATS_OK);
  jsCtx* js = nullptr;
  ASSERT_EQ(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
  for (const char* stream : {"WISP_EVENTS", "KV_wisp-three-functions", "KV_wisp-three-artifacts"}) {
    // A stream whose leader was on the killed server answers once the other
    // two have elected a new one (seconds; longer in a sanitizer build).
    jsStreamInfo* info = nullptr;
    natsStatus status = NATS_ERR;
    const auto asked = Clock::now();
    while (status != NATS_OK && Clock::now() - asked < std::chrono::seconds(60)) {
      jsErrCode jerr = static_cast<jsErrCode>(0);
      status = js_GetStreamInfo(&info, js, stream, nullptr, &jerr);
      if (status != NATS_OK) std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    ASSERT_EQ(status, NATS_OK) << stream << ": " << natsStatus_GetText(status);
    EXPECT_EQ(info->Config->Replicas, 3) << stream;
    jsStreamInfo_Destroy(info);
  }
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
}

// kill -9 of a controller under load (one worker per node, each event takes
// 50 ms, and they come faster): the durable events it had taken and not
// acknowledged go to the other controller after their lease; none is lost,
// and every duplicate at the sink is a redelivery the survivor counted.
TEST_F(NatsClusterTest, AControllerKilledUnderLoadLosesNoEvents) {
  constexpr int kEvents = 300;
  constexpr int kKillAfter = kEvents / 3;
  StartNodes();
  ASSERT_FALSE(HasFailure());
  const std::string sink = shared_.path() + "/sink.txt";
  std::string last;
  ASSERT_TRUE(DeployWhenReady(0, TestFunctionPath("journal"), "sink", &last,
                              {"--subscribe", "kill.in", "--durable", "--timeout", "1s",
                               "--max-workers", "1", "--env", "JOURNAL=" + sink, "--env",
                               "DELAY_US=50000"}))
      << "the durable deploy kept failing: " << last;
  ASSERT_TRUE(Knows(1, "sink")) << "node 1 never got the durable function";

  // Events go in through node 1, so publishing goes on across the kill;
  // both nodes take them from the shared durable consumer.
  runtime::HttpClient client("127.0.0.1", nodes_[1]->port(), 5000);
  int refused = 0;
  // Node 0 is killed while it works through its share of a backlog: once
  // kKillAfter are in and it has run a few (the two nodes run 40 a second;
  // events come faster, and on at 40 a second while node 0 gets going).
  uint64_t node0_ran = 0;
  size_t done_at_kill = 0;
  int published_at_kill = 0;
  bool killed = false;
  auto kill_node0_once_busy = [&](int published) {
    api::Function on_node0;
    if (!nodes_[0]->Describe("sink", &on_node0) || on_node0.status().invocations() < 3) return;
    node0_ran = on_node0.status().invocations();
    done_at_kill = CountLines(sink).size();
    published_at_kill = published;
    nodes_[0]->Kill();
    killed = true;
  };
  for (int n = 0; n < kEvents; ++n) {
    if (!killed && n >= kKillAfter) {
      kill_node0_once_busy(n);
      if (!killed) std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    const std::string id = "kill-" + std::to_string(n);
    for (int attempt = 0;; ++attempt) {
      StatusOr<runtime::HttpClientResponse> r = client.Request(
          "POST", "/v1/events/kill.in",
          {{"Authorization", "Bearer " + nodes_[1]->token()}, {"ce-id", id}}, id);
      if (r.ok() && r->status == 202) break;
      ++refused;
      ASSERT_LT(attempt, 200) << "event " << id << " was refused 200 times; last: "
                              << (r.ok() ? std::to_string(r->status) + " " + r->body
                                         : r.status().ToString());
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
  }
  const auto busy_by = Clock::now() + std::chrono::seconds(30);
  while (!killed && Clock::now() < busy_by) {
    kill_node0_once_busy(kEvents);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(killed) << "node 0 never ran 3 of the durable events (expected it to share them)";
  ASSERT_LE(done_at_kill + 10, static_cast<size_t>(published_at_kill))
      << "no backlog left when node 0 was killed (" << done_at_kill << " of " << published_at_kill
      << " started): the test would not show a redelivery";
  SinkTally tally = WaitForSink(sink, kEvents, "kill-", std::chrono::seconds(120));
  // Node 0 was killed holding events: node 1 gets them once their lease
  // (the 1 s timeout and a margin) ends, which may be after every line is at
  // the sink (node 0 wrote some before it died).
  api::Health health;
  const auto leased_until = Clock::now() + std::chrono::seconds(30);
  do {
    runtime::HttpClientResponse h = nodes_[1]->Call("GET", "/healthz");
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(h.body, &health).ok()) << h.body;
    if (health.events().durable_redelivered() > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } while (Clock::now() < leased_until);
  std::this_thread::sleep_for(std::chrono::seconds(1));  // the redelivered ones run
  runtime::HttpClientResponse h = nodes_[1]->Call("GET", "/healthz");
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(h.body, &health).ok()) << h.body;
  tally = WaitForSink(sink, kEvents, "kill-", std::chrono::seconds(1));
  std::fprintf(stderr,
               "[ cluster  ] %d durable events, node 0 killed with SIGKILL after %d (it had run "
               "%llu, %zu done): %zu distinct at the sink, %d missing, %d duplicates, %llu "
               "redelivered to node 1, %d publish attempts retried\n",
               kEvents, published_at_kill, static_cast<unsigned long long>(node0_ran), done_at_kill,
               tally.seen.size(), tally.missing, tally.duplicates,
               static_cast<unsigned long long>(health.events().durable_redelivered()), refused);
  EXPECT_EQ(tally.missing, 0) << "first missing: " << tally.first_missing;
  EXPECT_LE(static_cast<uint64_t>(tally.duplicates), health.events().durable_redelivered())
      << "a duplicate at the sink that no redelivery explains";
  EXPECT_GT(health.events().durable_redelivered(), 0u)
      << "expected node 0's unacknowledged events to be redelivered to node 1";
}

}  // namespace
}  // namespace wisp::testing
