#include "runtime/framing.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace wisp::runtime {
namespace {

proto::Frame InvokeFrame(uint64_t id, const std::string& body) {
  proto::Frame frame;
  frame.mutable_invoke()->set_id(id);
  frame.mutable_invoke()->set_body(body);
  return frame;
}

std::vector<proto::Frame> DecodeAll(FrameDecoder* decoder, Status* error) {
  std::vector<proto::Frame> frames;
  while (true) {
    proto::Frame frame;
    StatusOr<bool> got = decoder->Next(&frame);
    if (!got.ok()) {
      *error = got.status();
      break;
    }
    if (!*got) break;
    frames.push_back(frame);
  }
  return frames;
}

TEST(FramingTest, RoundTripsOneFrame) {
  std::string wire;
  ASSERT_TRUE(AppendFrame(InvokeFrame(7, "world"), &wire).ok());
  FrameDecoder decoder;
  decoder.Feed(wire.data(), wire.size());
  Status error;
  auto frames = DecodeAll(&decoder, &error);
  ASSERT_TRUE(error.ok()) << error.ToString();
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].invoke().id(), 7u);
  EXPECT_EQ(frames[0].invoke().body(), "world");
  EXPECT_EQ(decoder.buffered(), 0u);
}

TEST(FramingTest, LengthPrefixIsLittleEndian) {
  std::string wire;
  ASSERT_TRUE(AppendFrame(InvokeFrame(1, std::string(300, 'x')), &wire).ok());
  const uint32_t length = static_cast<unsigned char>(wire[0]) |
                          static_cast<unsigned char>(wire[1]) << 8;
  EXPECT_EQ(length, wire.size() - 4);
  EXPECT_EQ(wire[2], 0);
  EXPECT_EQ(wire[3], 0);
}

TEST(FramingTest, FrameSplitAcrossReadsAtEveryByte) {
  std::string wire;
  ASSERT_TRUE(AppendFrame(InvokeFrame(42, "split me"), &wire).ok());
  for (size_t cut = 0; cut <= wire.size(); ++cut) {
    FrameDecoder decoder;
    Status error;
    decoder.Feed(wire.data(), cut);
    auto first = DecodeAll(&decoder, &error);
    decoder.Feed(wire.data() + cut, wire.size() - cut);
    auto second = DecodeAll(&decoder, &error);
    ASSERT_TRUE(error.ok()) << "cut at " << cut << ": " << error.ToString();
    ASSERT_EQ(first.size() + second.size(), 1u) << "cut at " << cut;
    const proto::Frame& frame = first.empty() ? second[0] : first[0];
    EXPECT_EQ(frame.invoke().body(), "split me") << "cut at " << cut;
  }
}

TEST(FramingTest, SeveralFramesInOneRead) {
  std::string wire;
  for (uint64_t id = 1; id <= 50; ++id) {
    ASSERT_TRUE(AppendFrame(InvokeFrame(id, "b" + std::to_string(id)), &wire).ok());
  }
  FrameDecoder decoder;
  decoder.Feed(wire.data(), wire.size());
  Status error;
  auto frames = DecodeAll(&decoder, &error);
  ASSERT_TRUE(error.ok()) << error.ToString();
  ASSERT_EQ(frames.size(), 50u);
  for (uint64_t id = 1; id <= 50; ++id) {
    EXPECT_EQ(frames[id - 1].invoke().id(), id);
    EXPECT_EQ(frames[id - 1].invoke().body(), "b" + std::to_string(id));
  }
}

TEST(FramingTest, EmptyFrameIsValid) {
  std::string wire;
  proto::Frame frame;
  frame.mutable_shutdown();
  ASSERT_TRUE(AppendFrame(frame, &wire).ok());
  FrameDecoder decoder;
  decoder.Feed(wire.data(), wire.size());
  Status error;
  auto frames = DecodeAll(&decoder, &error);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_TRUE(frames[0].has_shutdown());
}

TEST(FramingTest, OversizeLengthIsRefusedBeforeBuffering) {
  FrameDecoder decoder(/*max_frame_bytes=*/1024);
  const char header[4] = {0x01, 0x04, 0x00, 0x00};  // 1025
  decoder.Feed(header, sizeof(header));
  proto::Frame frame;
  StatusOr<bool> got = decoder.Next(&frame);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), Status::Code::kResourceExhausted);
  EXPECT_NE(got.status().message().find("1025 bytes exceeds the limit of 1024"), std::string::npos)
      << got.status().message();
  // The decoder stays failed.
  EXPECT_FALSE(decoder.Next(&frame).ok());
}

TEST(FramingTest, EncoderRefusesOversizeFrame) {
  std::string wire;
  Status s = AppendFrame(InvokeFrame(1, std::string(2048, 'x')), &wire, 1024);
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(wire.empty());
}

TEST(FramingTest, GarbageIsCorruption) {
  const char kGarbage[] = "\x05\x00\x00\x00\xff\xff\xff\xff\xff";
  const std::string garbage(kGarbage, sizeof(kGarbage) - 1);
  FrameDecoder decoder;
  decoder.Feed(garbage.data(), garbage.size());
  proto::Frame frame;
  StatusOr<bool> got = decoder.Next(&frame);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), Status::Code::kCorruption) << got.status().ToString();
}

TEST(FramingTest, PartialLengthPrefixWaits) {
  FrameDecoder decoder;
  decoder.Feed("\x03\x00", 2);
  proto::Frame frame;
  StatusOr<bool> got = decoder.Next(&frame);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(*got);
  EXPECT_EQ(decoder.buffered(), 2u);
}

}  // namespace
}  // namespace wisp::runtime
