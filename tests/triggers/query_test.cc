#include "triggers/query.h"

#include <gtest/gtest.h>

namespace wisp::triggers {
namespace {

TEST(QueryTest, DecodesPairsInOrder) {
  QueryParams params;
  Status s = ParseQuery("subscribe=orders.%2A&timeout=5s&&subscribe=a.%3E&flag&x=a+b", &params);
  ASSERT_TRUE(s.ok()) << s.ToString();
  const QueryParams want = {{"subscribe", "orders.*"}, {"timeout", "5s"}, {"subscribe", "a.>"},
                            {"flag", ""},              {"x", "a b"}};
  EXPECT_EQ(params, want);
}

TEST(QueryTest, RefusesBrokenEscapes) {
  QueryParams params;
  for (const char* bad : {"a=%", "a=%2", "a=%zz", "%g1=b"}) {
    Status s = ParseQuery(bad, &params);
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << "query '" << bad << "' gave " << s.ToString();
  }
}

TEST(QueryTest, EncodeThenDecodeRoundTrips) {
  const std::string text = "orders.* >$ %&=+/\x01\xff";
  const std::string encoded = PercentEncode(text);
  EXPECT_EQ(encoded.find_first_of("*> $&=+/\x01\xff"), std::string::npos)
      << "reserved characters left raw in " << encoded;
  std::string decoded;
  ASSERT_TRUE(PercentDecode(encoded, false, &decoded).ok());
  EXPECT_EQ(decoded, text);
}

}  // namespace
}  // namespace wisp::triggers
