#include "runtime/base/ascii.h"

#include <gtest/gtest.h>

#include <string>

namespace wisp {
namespace {

TEST(AsciiTest, HexOfEveryByteComesBack) {
  std::string bytes;
  for (int b = 0; b < 256; ++b) bytes.push_back(static_cast<char>(b));
  std::string hex;
  AppendLowerHex(bytes, &hex);
  ASSERT_EQ(hex.size(), 512u);
  EXPECT_EQ(hex.substr(0, 8), "00010203");
  EXPECT_EQ(hex.substr(504), "fcfdfeff");
  std::string back = "kept:";
  ASSERT_TRUE(AppendLowerHexBytes(hex, &back)) << hex;
  EXPECT_EQ(back, "kept:" + bytes);
}

TEST(AsciiTest, HexBytesRefuseWhatAppendLowerHexWouldNotWrite) {
  for (const char* text : {"abc", "4BF9", "4bf9g0", "4b f9", "0x12", "-1"}) {
    std::string out = "kept";
    EXPECT_FALSE(AppendLowerHexBytes(text, &out)) << "accepted '" << text << "'";
    EXPECT_EQ(out, "kept") << "changed the output for '" << text << "'";
  }
  std::string empty;
  EXPECT_TRUE(AppendLowerHexBytes("", &empty));
  EXPECT_EQ(empty, "");
}

}  // namespace
}  // namespace wisp
