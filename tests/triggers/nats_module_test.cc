// LoadNatsBroker's refusals; connecting through the module is what every
// `wisp up --nats` integration test does.
#include "triggers/nats_module.h"

#include <gtest/gtest.h>
#include <uv.h>

#include <string>

namespace wisp::triggers {
namespace {

TEST(NatsModuleTest, AMissingModuleIsAnErrorNamingTheFile) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  StatusOr<std::unique_ptr<Broker>> broker =
      LoadNatsBroker("/nonexistent/wisp-nats.so", &loop, "nats://127.0.0.1:1");
  ASSERT_FALSE(broker.ok()) << "a module that does not exist was loaded";
  EXPECT_EQ(broker.status().code(), Status::Code::kIOError) << broker.status().ToString();
  EXPECT_NE(broker.status().message().find("/nonexistent/wisp-nats.so"), std::string::npos)
      << broker.status().message();
  uv_loop_close(&loop);
}

TEST(NatsModuleTest, ASharedObjectWithoutTheEntryPointIsRefused) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  const std::string hello = std::string(WISP_EXAMPLES_DIR) + "/hello.so";
  StatusOr<std::unique_ptr<Broker>> broker = LoadNatsBroker(hello, &loop, "nats://127.0.0.1:1");
  ASSERT_FALSE(broker.ok()) << "hello.so was taken for the NATS module";
  EXPECT_NE(broker.status().message().find("is not wisp's NATS module"), std::string::npos)
      << broker.status().message();
  uv_loop_close(&loop);
}

}  // namespace
}  // namespace wisp::triggers
