// libFuzzer target: the deploy parameters (the query of PUT
// /v1/functions/<name>), limits included, on arbitrary text.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "runtime/deploy_params.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  wisp::runtime::FunctionRecord record;
  wisp::Status s = wisp::runtime::ApplyDeployQuery(
      std::string_view(reinterpret_cast<const char*>(data), size), &record);
  if (s.ok() && (record.timeout_ms == 0 || record.max_workers == 0 ||
                 record.limits.memory_bytes < wisp::runtime::kMinMemoryBytes)) {
    __builtin_trap();  // accepted what the rules refuse
  }
  return 0;
}
