// libFuzzer target: the wisp.yaml manifest parser on arbitrary text.
#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  wisp::runtime::Manifest manifest;
  wisp::Status s = wisp::runtime::ParseManifest(text, "fuzz.yaml", &manifest);
  // A refusal names the file; an acceptance has functions with paths.
  if (!s.ok() && s.message().rfind("fuzz.yaml", 0) != 0) __builtin_trap();
  if (s.ok() && manifest.functions.empty()) __builtin_trap();
  return 0;
}
