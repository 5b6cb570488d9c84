// examples/pipeline end to end: four orders through validate -> price ->
// notify, the refused ones to dead-letters, on the embedded broker.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "api.pb.h"
#include "tests/integration/controller_fixture.h"
#include <google/protobuf/util/json_util.h>

namespace wisp::testing {
namespace {

class PipelineExampleTest : public ControllerTest {
 protected:
  // Applies the example's three stages (and dead-letters if asked) from the build.
  void ApplyPipeline(bool dead_letters) {
    const std::string dir = WISP_EXAMPLES_DIR "/pipeline/";
    const std::string manifest = dir_.path() + "/wisp.yaml";
    std::ofstream out(manifest);
    out << "functions:\n"
        << "  - {name: validate, path: " << dir << "validate.so, subscribe: orders.new}\n"
        << "  - {name: price, path: " << dir << "price.so, subscribe: orders.valid}\n"
        << "  - {name: notify, path: " << dir << "notify.so, subscribe: orders.priced}\n";
    if (dead_letters) {
      out << "  - {name: dead-letters, path: " << dir << "dead_letters.so, subscribe: orders.invalid}\n";
    }
    out.close();
    CliResult applied = RunCli({"apply", "-f", manifest, "--server", controller_->url()});
    ASSERT_EQ(applied.exit_code, 0) << applied.err;
  }
};

TEST_F(PipelineExampleTest, OrdersFlowThroughTheStagesAndRefusedOnesAreDeadLettered) {
  ApplyPipeline(/*dead_letters=*/true);
  for (const char* order : {"o-1,widget,3", "o-2,gadget,1", "o-3,widget,0", "o-4,sprocket,2"}) {
    runtime::HttpClientResponse r = controller_->Call("POST", "/v1/events/orders.new", order);
    ASSERT_EQ(r.status, 202) << r.body;
  }
  const char* expected[] = {
      "order o-1: 3 x widget = 7.50, confirmed",
      "order o-2: 1 x gadget = 10.00, confirmed",
      "dead letter 'o-3,widget,0': quantity 0 is not between 1 and 1000",
      "dead letter 'o-4,sprocket,2': no such item: sprocket",
  };
  std::string log;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  bool all = false;
  while (!all && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    log = controller_->Log();
    all = true;
    for (const char* line : expected) all = all && log.find(line) != std::string::npos;
  }
  for (const char* line : expected) {
    EXPECT_NE(log.find(line), std::string::npos) << "missing from the functions' logs: " << line;
  }
}

// A W3C traceparent on the first event is carried through every stage: the
// invocations of one order share its trace id, and GET /v1/invocations?trace=
// lists the whole run.
TEST_F(PipelineExampleTest, ATraceIsFollowedThroughTheThreeStages) {
  ApplyPipeline(/*dead_letters=*/false);
  const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  runtime::HttpClientResponse r =
      controller_->Call("POST", "/v1/events/orders.new", "o-9,widget,2",
                        {{"traceparent", "00-" + trace + "-00f067aa0ba902b7-01"}});
  ASSERT_EQ(r.status, 202) << r.body;
  ASSERT_EQ(controller_->Call("POST", "/v1/events/orders.new", "o-10,gadget,1").status, 202)
      << "an order without a trace";

  api::InvocationList list;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    runtime::HttpClientResponse got = controller_->Call("GET", "/v1/invocations?trace=" + trace);
    ASSERT_EQ(got.status, 200) << got.body;
    list.Clear();
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(got.body, &list).ok()) << got.body;
    if (list.invocations_size() >= 3) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::vector<std::string> stages;
  for (int i = list.invocations_size() - 1; i >= 0; --i) {  // oldest first
    EXPECT_EQ(list.invocations(i).trace_id(), trace);
    EXPECT_EQ(list.invocations(i).trigger(), "event");
    stages.push_back(list.invocations(i).function());
  }
  EXPECT_EQ(stages, (std::vector<std::string>{"validate", "price", "notify"}))
      << "the trace should hold exactly the three stages of order o-9";

  runtime::HttpClientResponse all = controller_->Call("GET", "/v1/invocations?limit=10");
  ASSERT_EQ(all.status, 200);
  api::InvocationList every;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(all.body, &every).ok());
  int other_traces = 0;
  for (const api::Invocation& inv : every.invocations()) {
    EXPECT_EQ(inv.trace_id().size(), 32u) << "every invocation has a trace: " << inv.ShortDebugString();
    if (inv.trace_id() != trace) ++other_traces;
  }
  EXPECT_EQ(other_traces, 3) << "the order without a traceparent gets a trace of its own";
  EXPECT_EQ(controller_->Call("GET", "/v1/invocations?trace=XYZ").status, 400);
}

}  // namespace
}  // namespace wisp::testing
