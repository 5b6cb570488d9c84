// libFuzzer target: the worker channel's frame decoder (what the controller
// reads from a worker, which runs untrusted code) on arbitrary bytes, fed in
// two pieces.
#include <cstddef>
#include <cstdint>

#include "runtime/framing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  wisp::runtime::FrameDecoder decoder(1 << 16);
  const size_t half = size / 2;
  const char* bytes = reinterpret_cast<const char*>(data);
  for (const auto& [at, n] : {std::pair{size_t{0}, half}, std::pair{half, size - half}}) {
    decoder.Feed(bytes + at, n);
    wisp::runtime::proto::Frame frame;
    while (true) {
      wisp::StatusOr<bool> got = decoder.Next(&frame);
      if (!got.ok() || !*got) break;
      // A decoded frame serializes again within the limit it came in under.
      if (frame.ByteSizeLong() > (1 << 16)) __builtin_trap();
    }
  }
  return 0;
}
