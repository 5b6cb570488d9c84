// examples/pipeline end to end: four orders through validate -> price ->
// notify, the refused ones to dead-letters, on the embedded broker.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "tests/integration/controller_fixture.h"

namespace wisp::testing {
namespace {

class PipelineExampleTest : public ControllerTest {};

TEST_F(PipelineExampleTest, OrdersFlowThroughTheStagesAndRefusedOnesAreDeadLettered) {
  const std::string dir = WISP_EXAMPLES_DIR "/pipeline/";
  const std::string manifest = dir_.path() + "/wisp.yaml";
  std::ofstream(manifest) << "functions:\n"
                          << "  - {name: validate, path: " << dir << "validate.so, subscribe: orders.new}\n"
                          << "  - {name: price, path: " << dir << "price.so, subscribe: orders.valid}\n"
                          << "  - {name: notify, path: " << dir << "notify.so, subscribe: orders.priced}\n"
                          << "  - {name: dead-letters, path: " << dir
                          << "dead_letters.so, subscribe: orders.invalid}\n";
  CliResult applied = RunCli({"apply", "-f", manifest, "--server", controller_->url()});
  ASSERT_EQ(applied.exit_code, 0) << applied.err;
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

}  // namespace
}  // namespace wisp::testing
