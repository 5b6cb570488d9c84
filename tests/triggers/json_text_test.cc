#include "triggers/json_text.h"

#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <string>

#include "api.pb.h"
#include "triggers/http_server.h"

namespace wisp::triggers {
namespace {

// json_util's text for an api::Error whose code is text.
std::string JsonUtilString(const std::string& text) {
  api::Error error;
  error.set_code(text);
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(error, &json, options).ok()) << text;
  return json;
}

std::string OurString(const std::string& text) {
  JsonObjectText object;
  object.String("code", text);
  return object.Finish();
}

TEST(JsonTextTest, EveryAsciiCharacterIsEscapedAsJsonUtilDoes) {
  for (int c = 1; c < 128; ++c) {
    const std::string text = std::string("a") + static_cast<char>(c) + "b";
    EXPECT_EQ(JsonUtilString(text), OurString(text)) << "character " << c;
  }
}

// code point c as UTF-8.
std::string Utf8(uint32_t c) {
  std::string out;
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xc0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3f));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xe0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (c & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (c & 0x3f));
  }
  return out;
}

TEST(JsonTextTest, EveryCodePointIsWrittenAsJsonUtilWritesIt) {
  int differ = 0;
  for (uint32_t c = 0x80; c <= 0x10ffff && differ < 10; ++c) {
    if (c >= 0xd800 && c <= 0xdfff) continue;  // surrogates are not characters
    const std::string text = "a" + Utf8(c) + "b";
    const std::string want = JsonUtilString(text);
    const std::string got = OurString(text);
    if (want != got) {
      ++differ;
      ADD_FAILURE() << "U+" << std::hex << c << ": json_util " << want << ", ours " << got;
    }
  }
}

TEST(JsonTextTest, InvalidUtf8BecomesQuestionMarks) {
  EXPECT_EQ(R"({"code":"a?b"})", OurString("a\xff" "b"));
  EXPECT_EQ(R"({"code":"??"})", OurString("\xe2\x80"));  // each stray byte
}

TEST(JsonTextTest, NestedObjectsArraysAndScalars) {
  JsonObjectText object;
  object.String("s", "x");
  object.BeginObject("o");
  object.Uint64("n", 18446744073709551615ull);
  object.BeginArray("a");
  object.ArrayString("p");
  object.ArrayString("q");
  object.EndArray();
  object.BeginArray("empty");
  object.EndArray();
  object.Bool("t", true);
  object.EndObject();
  object.Bool("f", false);
  EXPECT_EQ(
      R"({"s":"x","o":{"n":"18446744073709551615","a":["p","q"],"empty":[],"t":true},"f":false})",
      object.Finish());
}

TEST(JsonTextTest, ErrorBodiesAreJsonUtilsText) {
  const std::pair<std::string, std::string> cases[] = {
      {"not_found", "no such function: x"}, {"bad", "<a> & \"b\"\n\t\x01"}, {"", "only message"},
      {"only_code", ""}, {"", ""}};
  for (const auto& [code, message] : cases) {
    api::ErrorBody body;
    body.mutable_error()->set_code(code);
    body.mutable_error()->set_message(message);
    std::string want;
    google::protobuf::util::JsonPrintOptions options;
    options.preserve_proto_field_names = true;
    ASSERT_TRUE(google::protobuf::util::MessageToJsonString(body, &want, options).ok());
    EXPECT_EQ(want, JsonErrorBody(code, message)) << "code \"" << code << "\", message \""
                                                   << message << "\"";
  }
}

}  // namespace
}  // namespace wisp::triggers
