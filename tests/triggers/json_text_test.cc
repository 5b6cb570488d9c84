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

TEST(JsonTextTest, MultibyteUtf8AndJavaScriptLineEndsAreWrittenAsJsonUtilDoes) {
  for (const std::string text : {"\xc3\xbc", "\xe2\x80\xa8", "\xe2\x80\xa9", "\xe2\x80\xa7",
                                 "\xe2\x82\xac", "\xf0\x9f\x98\x80", "x\xe2\x80\xa8y"}) {
    EXPECT_EQ(JsonUtilString(text), OurString(text)) << text;
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
