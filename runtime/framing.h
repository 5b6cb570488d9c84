// Framing of the controller <-> worker protocol: each Frame (worker.proto) is
// preceded by its length as a 4-byte little-endian unsigned integer.
// Encoder and decoder are plain values; use one per stream, on one thread.
#ifndef WISP_RUNTIME_FRAMING_H_
#define WISP_RUNTIME_FRAMING_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "runtime/base/status.h"
#include "worker.pb.h"

namespace wisp::runtime {

// The largest frame either side accepts by default: a 6 MiB body plus
// headers and framing, with room to spare.
inline constexpr size_t kDefaultMaxFrameBytes = 16 * 1024 * 1024;

// Appends the length prefix and the serialized frame to *out.
// InvalidArgument if the frame is larger than max_frame_bytes.
Status AppendFrame(const proto::Frame& frame, std::string* out,
                   size_t max_frame_bytes = kDefaultMaxFrameBytes);

// Accumulates bytes from a stream and yields whole frames.
//
//   decoder.Feed(data, n);
//   proto::Frame frame;
//   while (true) {
//     StatusOr<bool> got = decoder.Next(&frame);
//     if (!got.ok()) { kill the peer: got.status() says why }
//     if (!*got) break;   // need more bytes
//     handle(frame);
//   }
//
// After an error the decoder stays failed: the stream cannot be resynced.
class FrameDecoder {
 public:
  explicit FrameDecoder(size_t max_frame_bytes = kDefaultMaxFrameBytes)
      : max_frame_bytes_(max_frame_bytes) {}

  // Copies n bytes into the decoder's buffer.
  void Feed(const char* data, size_t n);

  // Parses the next whole frame into *frame. Returns true if one was parsed,
  // false if more bytes are needed, or an error: a length over the limit
  // (ResourceExhausted) or bytes that do not parse (Corruption).
  StatusOr<bool> Next(proto::Frame* frame);

  // Bytes received but not yet consumed.
  size_t buffered() const { return buffer_.size() - offset_; }

 private:
  size_t max_frame_bytes_;
  std::string buffer_;
  size_t offset_ = 0;
  Status error_;
};

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_FRAMING_H_
