#include "runtime/framing.h"

#include <string>

namespace wisp::runtime {
namespace {

constexpr size_t kLengthBytes = 4;

uint32_t ReadLittleEndian32(const char* p) {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint32_t>(b[0]) | static_cast<uint32_t>(b[1]) << 8 |
         static_cast<uint32_t>(b[2]) << 16 | static_cast<uint32_t>(b[3]) << 24;
}

void AppendLittleEndian32(uint32_t v, std::string* out) {
  char b[kLengthBytes] = {static_cast<char>(v & 0xff), static_cast<char>((v >> 8) & 0xff),
                          static_cast<char>((v >> 16) & 0xff),
                          static_cast<char>((v >> 24) & 0xff)};
  out->append(b, kLengthBytes);
}

}  // namespace

Status AppendFrame(const proto::Frame& frame, std::string* out, size_t max_frame_bytes) {
  const size_t size = frame.ByteSizeLong();
  if (size > max_frame_bytes) {
    return Status::InvalidArgument("frame of " + std::to_string(size) +
                                   " bytes exceeds the limit of " +
                                   std::to_string(max_frame_bytes));
  }
  AppendLittleEndian32(static_cast<uint32_t>(size), out);
  const size_t start = out->size();
  out->resize(start + size);
  frame.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(out->data() + start));
  return Status::OK();
}

void FrameDecoder::Feed(const char* data, size_t n) {
  if (offset_ > 0 && offset_ == buffer_.size()) {
    buffer_.clear();
    offset_ = 0;
  } else if (offset_ > 64 * 1024 && offset_ * 2 > buffer_.size()) {
    buffer_.erase(0, offset_);
    offset_ = 0;
  }
  buffer_.append(data, n);
}

StatusOr<bool> FrameDecoder::Next(proto::Frame* frame) {
  if (!error_.ok()) return error_;
  if (buffered() < kLengthBytes) return false;
  const uint32_t length = ReadLittleEndian32(buffer_.data() + offset_);
  if (length > max_frame_bytes_) {
    error_ = Status::ResourceExhausted("frame of " + std::to_string(length) +
                                       " bytes exceeds the limit of " +
                                       std::to_string(max_frame_bytes_));
    return error_;
  }
  if (buffered() < kLengthBytes + length) return false;
  const char* start = buffer_.data() + offset_ + kLengthBytes;
  if (!frame->ParseFromArray(start, static_cast<int>(length))) {
    error_ = Status::Corruption("frame of " + std::to_string(length) + " bytes does not parse");
    return error_;
  }
  offset_ += kLengthBytes + length;
  if (offset_ == buffer_.size()) {
    buffer_.clear();
    offset_ = 0;
  }
  return true;
}

}  // namespace wisp::runtime
