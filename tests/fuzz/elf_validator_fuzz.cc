// libFuzzer target: the .so validator (what a deploy runs on the uploaded
// bytes before storing them) on arbitrary bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "loader/elf_validator.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  wisp::Status s =
      wisp::loader::ValidateSharedObject(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!s.ok() && s.message().empty()) __builtin_trap();  // a refusal says why
  return 0;
}
