// A gtest fixture running one real controller per test; its log is printed
// when the test fails.
#ifndef WISP_TESTS_INTEGRATION_CONTROLLER_FIXTURE_H_
#define WISP_TESTS_INTEGRATION_CONTROLLER_FIXTURE_H_

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/integration/harness.h"

namespace wisp::testing {

class ControllerTest : public ::testing::Test {
 protected:
  // Extra `wisp up` flags for this fixture.
  virtual std::vector<std::string> ControllerArgs() const { return {}; }

  void SetUp() override {
    controller_ = std::make_unique<Controller>(dir_.path(), ControllerArgs());
    std::string error;
    ASSERT_TRUE(controller_->Start(&error)) << error;
  }

  void TearDown() override {
    if (HasFailure() && controller_) {
      std::fprintf(stderr, "---- controller log ----\n%s------------------------\n",
                   controller_->Log().c_str());
    }
    if (controller_) controller_->Stop();
  }

  // Deploys and asserts the CLI succeeded.
  void DeployOk(const std::string& so_path, const std::string& name,
                std::vector<std::string> extra = {}) {
    CliResult r = controller_->Deploy(so_path, name, std::move(extra));
    ASSERT_EQ(r.exit_code, 0) << "deploy " << name << " failed: " << r.err << r.out;
  }

  TempDir dir_;
  std::unique_ptr<Controller> controller_;
};

}  // namespace wisp::testing

#endif  // WISP_TESTS_INTEGRATION_CONTROLLER_FIXTURE_H_
