// wisp-nats.so's entry point (nats_module.h): NatsBroker::Connect behind a
// C-linkage function the controller finds with dlsym.
#include <cstdio>

#include "triggers/nats_broker.h"
#include "triggers/nats_module.h"

extern "C" __attribute__((visibility("default"))) int wisp_nats_module_connect(
    uv_loop_t* loop, const char* urls, wisp::triggers::Broker** broker, char* error,
    size_t error_len) {
  wisp::StatusOr<std::unique_ptr<wisp::triggers::NatsBroker>> nats =
      wisp::triggers::NatsBroker::Connect(loop, urls, wisp::triggers::NatsBrokerOptions{});
  if (!nats.ok()) {
    std::snprintf(error, error_len, "%s", nats.status().message().c_str());
    return 1;
  }
  *broker = std::move(nats).value().release();
  return 0;
}
