#include "triggers/cloudevents.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <regex>
#include <set>
#include <string>
#include <vector>

namespace wisp::triggers {
namespace {

const EventDefaults kDefaults{"/wisp/publish", "io.wisp.event"};

const Headers kFullBinary = {
    {"ce-specversion", "1.0"},
    {"ce-id", "a1"},
    {"ce-source", "/sensors/7"},
    {"ce-type", "com.example.reading"},
    {"ce-time", "2026-11-27T23:04:54.123Z"},
    {"ce-datacontenttype", "application/json"},
};

BrokerMessage Message(Headers headers, std::string data = "") {
  BrokerMessage message;
  message.subject = "events.in";
  message.headers = std::move(headers);
  message.data = std::move(data);
  return message;
}

BrokerMessage Structured(std::string json,
                         std::string content_type = "application/cloudevents+json") {
  return Message({{"content-type", std::move(content_type)}}, std::move(json));
}

std::string Dump(const Headers& headers) {
  std::string out;
  for (const auto& [name, value] : headers) out += "\n  " + name + ": " + value;
  return out;
}

// The header's value, or "<absent>".
std::string Get(const BrokerMessage& message, std::string_view name) {
  const std::string* value = FindHeader(message.headers, name);
  return value == nullptr ? "<absent>" : *value;
}

bool IsUuidV4(const std::string& text) {
  static const std::regex kUuid(
      "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  return std::regex_match(text, kUuid);
}

// Seconds between a "YYYY-MM-DDThh:mm:ss.mmmZ" text and now.
double SecondsFromNow(const std::string& text) {
  std::tm tm{};
  int millis = -1;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon,
                  &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &millis) != 7) {
    return 1e9;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  const double then = static_cast<double>(timegm(&tm)) + millis / 1000.0;
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  return now - then;
}

TEST(CloudEventBinaryTest, KeepsGivenAttributesAndPayload) {
  BrokerMessage message = Message(kFullBinary, "{\"v\":1}");
  ASSERT_TRUE(NormalizeCloudEvent(&message, kDefaults).ok());
  EXPECT_EQ(message.headers, kFullBinary)
      << "expected the headers unchanged, got" << Dump(message.headers);
  EXPECT_EQ(message.data, "{\"v\":1}");
  EXPECT_EQ(message.subject, "events.in");
}

TEST(CloudEventBinaryTest, FillsDefaultsInOrder) {
  BrokerMessage message = Message({{"Content-Type", "text/plain"}}, "hi");
  ASSERT_TRUE(NormalizeCloudEvent(&message, kDefaults).ok());
  ASSERT_EQ(message.headers.size(), 7u) << Dump(message.headers);
  const std::vector<std::string> names = {"Content-Type",      "ce-specversion", "ce-id",
                                          "ce-source",         "ce-type",        "ce-time",
                                          "ce-datacontenttype"};
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(message.headers[i].first, names[i]) << "at " << i << Dump(message.headers);
  }
  EXPECT_EQ(Get(message, "ce-specversion"), "1.0");
  EXPECT_TRUE(IsUuidV4(Get(message, "ce-id")))
      << "expected a UUID v4, got " << Get(message, "ce-id");
  EXPECT_EQ(Get(message, "ce-source"), "/wisp/publish");
  EXPECT_EQ(Get(message, "ce-type"), "io.wisp.event");
  EXPECT_EQ(Get(message, "ce-datacontenttype"), "text/plain");
  const std::string time = Get(message, "ce-time");
  EXPECT_TRUE(IsRfc3339(time)) << time;
  const double skew = SecondsFromNow(time);
  EXPECT_TRUE(skew >= -0.01 && skew < 5)
      << "expected ce-time near now, got " << time << " (" << skew << " s ago)";
  EXPECT_EQ(message.data, "hi");
}

TEST(CloudEventBinaryTest, NoContentTypeMeansNoDataContentType) {
  BrokerMessage message = Message({});
  ASSERT_TRUE(NormalizeCloudEvent(&message, kDefaults).ok());
  EXPECT_EQ(Get(message, "ce-datacontenttype"), "<absent>") << Dump(message.headers);
  EXPECT_EQ(message.headers.size(), 5u) << Dump(message.headers);
}

TEST(CloudEventBinaryTest, HeaderNamesAreCaseInsensitiveAndWrittenLowerCase) {
  BrokerMessage message = Message({{"CE-ID", "x1"},
                                   {"Ce-Source", "/s"},
                                   {"cE-TYPE", "t"},
                                   {"CE-SpecVersion", "1.0"},
                                   {"CE-TIME", "2026-01-02T03:04:05Z"},
                                   {"CE-TraceParent", "00-abc"},
                                   {"X-Keep-Case", "v"}});
  ASSERT_TRUE(NormalizeCloudEvent(&message, kDefaults).ok());
  const Headers expected = {{"ce-id", "x1"},
                            {"ce-source", "/s"},
                            {"ce-type", "t"},
                            {"ce-specversion", "1.0"},
                            {"ce-time", "2026-01-02T03:04:05Z"},
                            {"ce-traceparent", "00-abc"},
                            {"X-Keep-Case", "v"}};
  EXPECT_EQ(message.headers, expected) << "got" << Dump(message.headers);
}

TEST(CloudEventBinaryTest, OtherHeadersKeepTheirOrder) {
  BrokerMessage message = Message({{"X-A", "1"},
                                   {"ce-id", "e"},
                                   {"Nats-Msg-Id", "m"},
                                   {"content-type", "application/json; charset=utf-8"},
                                   {"X-A", "2"},
                                   {"ce-source", "/s"}});
  ASSERT_TRUE(NormalizeCloudEvent(&message, kDefaults).ok());
  ASSERT_GE(message.headers.size(), 6u);
  const Headers prefix(message.headers.begin(), message.headers.begin() + 6);
  const Headers expected = {
      {"X-A", "1"},         {"ce-id", "e"},
      {"Nats-Msg-Id", "m"}, {"content-type", "application/json; charset=utf-8"},
      {"X-A", "2"},         {"ce-source", "/s"}};
  EXPECT_EQ(prefix, expected) << "got" << Dump(message.headers);
  EXPECT_EQ(Get(message, "ce-datacontenttype"), "application/json; charset=utf-8");
  EXPECT_EQ(Get(message, "ce-id"), "e");
}

TEST(CloudEventBinaryTest, FindHeaderIgnoresCase) {
  const Headers headers = {{"X-One", "1"}, {"Content-TYPE", "a"}, {"content-type", "b"}};
  ASSERT_NE(FindHeader(headers, "content-type"), nullptr);
  EXPECT_EQ(*FindHeader(headers, "content-type"), "a") << "expected the first match";
  EXPECT_EQ(FindHeader(headers, "x-two"), nullptr);
}

struct InvalidCase {
  const char* label;
  Headers headers;
  EventDefaults defaults;
  const char* message;  // expected in the status message
};

TEST(CloudEventBinaryTest, RejectsInvalidHeaders) {
  const std::string long_name(kMaxHeaderNameBytes + 1, 'x');
  const std::string long_value(kMaxHeaderValueBytes + 1, 'v');
  Headers too_many;
  for (size_t i = 0; i <= kMaxEventHeaders; ++i)
    too_many.emplace_back("x-" + std::to_string(i), "v");
  const InvalidCase cases[] = {
      {"specversion",
       {{"ce-specversion", "0.3"}},
       kDefaults,
       "ce-specversion is \"0.3\"; expected \"1.0\""},
      {"empty id", {{"ce-id", ""}}, kDefaults, "ce-id is empty"},
      {"empty source", {{"ce-source", ""}}, kDefaults, "ce-source is empty"},
      {"empty type", {{"Ce-Type", ""}}, kDefaults, "ce-type is empty"},
      {"empty datacontenttype",
       {{"ce-datacontenttype", ""}},
       kDefaults,
       "ce-datacontenttype is empty"},
      {"no default source", {}, {"", "t"}, "ce-source is missing"},
      {"no default type", {}, {"/s", ""}, "ce-type is missing"},
      {"time",
       {{"ce-time", "yesterday"}},
       kDefaults,
       "ce-time is \"yesterday\"; expected an RFC 3339 date-time"},
      {"time without zone", {{"ce-time", "2026-11-27T23:04:54"}}, kDefaults, "ce-time is"},
      {"control byte in value",
       {{"x-a", "a\nb"}},
       kDefaults,
       "header x-a value has byte 0x0a at offset 1; expected printable ASCII"},
      {"tab in value", {{"x-a", "a\tb"}}, kDefaults, "byte 0x09 at offset 1"},
      {"utf-8 in value", {{"ce-subject", "caf\xc3\xa9"}}, kDefaults, "byte 0xc3 at offset 3"},
      {"space in name",
       {{"x a", "v"}},
       kDefaults,
       "header #0 name has byte 0x20 at offset 1; expected printable ASCII"},
      {"colon in name", {{"ok", "v"}, {"x:a", "v"}}, kDefaults, "header #1 name has byte 0x3a"},
      {"empty name", {{"", "v"}}, kDefaults, "header #0 has an empty name"},
      {"long name", {{long_name, "v"}}, kDefaults, "name has 257 bytes; expected at most 256"},
      {"long value",
       {{"x-a", long_value}},
       kDefaults,
       "header x-a value has 4097 bytes; expected at most 4096"},
      {"too many", too_many, kDefaults, "65 headers; expected at most 64"},
      {"bad attribute name",
       {{"ce-trace_id", "v"}},
       kDefaults,
       "header ce-trace_id: expected ce- then an attribute name of a-z and 0-9"},
      {"bare prefix", {{"CE-", "v"}}, kDefaults, "header CE-: expected ce- then"},
      {"repeated", {{"ce-id", "a"}, {"CE-Id", "b"}}, kDefaults, "repeated header ce-id"},
      {"batch",
       {{"Content-Type", "application/cloudevents-batch+json"}},
       kDefaults,
       "batched CloudEvents are not accepted"},
  };
  for (const InvalidCase& c : cases) {
    BrokerMessage message = Message(c.headers);
    const Status status = NormalizeCloudEvent(&message, c.defaults);
    EXPECT_EQ(status.code(), Status::Code::kInvalidArgument)
        << c.label << ": expected InvalidArgument, got " << status.ToString();
    EXPECT_NE(status.message().find(c.message), std::string::npos)
        << c.label << ": expected a message with \"" << c.message << "\", got \""
        << status.message() << "\"";
  }
}

TEST(CloudEventTimeTest, IsRfc3339) {
  for (const char* good : {"2026-11-27T23:04:54.123Z", "2026-11-27T23:04:54Z",
                           "2026-11-27t23:04:54z", "2024-02-29T00:00:00+01:00",
                           "1999-12-31T23:59:60-08:30", "2026-01-01T00:00:00.123456789Z"}) {
    EXPECT_TRUE(IsRfc3339(good)) << "expected valid: " << good;
  }
  for (const char* bad : {"",
                          "2026-11-27",
                          "2026-11-27T23:04:54",
                          "2026-11-27 23:04:54Z",
                          "2026-11-27T23:04Z",
                          "2026-13-01T00:00:00Z",
                          "2026-00-01T00:00:00Z",
                          "2025-02-29T00:00:00Z",
                          "2026-04-31T00:00:00Z",
                          "2026-11-27T24:00:00Z",
                          "2026-11-27T23:60:00Z",
                          "2026-11-27T23:04:61Z",
                          "2026-11-27T23:04:54.Z",
                          "2026-11-27T23:04:54+0100",
                          "2026-11-27T23:04:54+24:00",
                          "2026-11-27T23:04:54Zx",
                          "26-11-27T23:04:54Z",
                          "2026-1-27T23:04:54Z",
                          "+2026-11-27T23:04:54Z",
                          "2026-11-27T23:04:54.1.2Z"}) {
    EXPECT_FALSE(IsRfc3339(bad)) << "expected invalid: " << bad;
  }
}

TEST(CloudEventTimeTest, NowIsUtcWithMillis) {
  const std::string now = NowRfc3339Millis();
  EXPECT_TRUE(std::regex_match(now, std::regex(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$)")))
      << "expected like 2026-11-27T23:04:54.123Z, got " << now;
  const double skew = SecondsFromNow(now);
  EXPECT_TRUE(skew >= -0.01 && skew < 1) << "expected now, got " << now << " (" << skew << " s)";
}

TEST(CloudEventIdTest, UuidV4AndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 2000; ++i) {
    const std::string id = NewEventId();
    ASSERT_TRUE(IsUuidV4(id)) << "expected a lower-case UUID v4, got " << id;
    ASSERT_TRUE(seen.insert(id).second) << "repeated id " << id << " after " << i;
  }
}

TEST(CloudEventIdTest, ForkedChildDoesNotRepeatParentIds) {
  (void)NewEventId();  // the parent now holds unused random bytes
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string id = NewEventId();
    _exit(::write(fds[1], id.data(), id.size()) == static_cast<ssize_t>(id.size()) ? 0 : 1);
  }
  ::close(fds[1]);
  char buf[64] = {};
  const ssize_t n = ::read(fds[0], buf, sizeof(buf));
  ::close(fds[0]);
  int wstatus = 0;
  ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
  ASSERT_EQ(n, 36) << "expected a 36-byte id from the child";
  const std::string child(buf, 36);
  const std::string parent = NewEventId();
  EXPECT_NE(child, parent) << "the child reused the parent's random bytes";
}

// ---- Structured mode ----

TEST(CloudEventStructuredTest, JsonDataBecomesBinaryMode) {
  BrokerMessage message = Message({{"X-Before", "1"},
                                   {"Content-Type", "application/cloudevents+json; charset=utf-8"},
                                   {"ce-id", "ignored"},
                                   {"X-After", "2"}},
                                  R"({"specversion":"1.0","id":"e1","source":"/src","type":"t.x",
          "time":"2026-11-27T23:04:54Z","subject":"sub","traceparent":"00-ab",
          "count":3,"flag":true,"gone":null,"data":{"n":[1,"x",true,null]}})");
  ASSERT_TRUE(NormalizeCloudEvent(&message, kDefaults).ok());
  const Headers expected = {{"X-Before", "1"},
                            {"Content-Type", "application/json"},
                            {"X-After", "2"},
                            {"ce-count", "3"},
                            {"ce-datacontenttype", "application/json"},
                            {"ce-flag", "true"},
                            {"ce-id", "e1"},
                            {"ce-source", "/src"},
                            {"ce-specversion", "1.0"},
                            {"ce-subject", "sub"},
                            {"ce-time", "2026-11-27T23:04:54Z"},
                            {"ce-traceparent", "00-ab"},
                            {"ce-type", "t.x"}};
  EXPECT_EQ(message.headers, expected) << "got" << Dump(message.headers);
  EXPECT_EQ(message.data, R"({"n":[1,"x",true,null]})");
}

TEST(CloudEventStructuredTest, DataBase64IsDecoded) {
  BrokerMessage message = Structured(
      R"({"specversion":"1.0","id":"e","source":"/s","type":"t",
          "datacontenttype":"application/octet-stream","data_base64":"AAEC/w=="})",
      "Application/CloudEvents+JSON");
  ASSERT_TRUE(NormalizeCloudEvent(&message, kDefaults).ok());
  EXPECT_EQ(message.data, std::string("\x00\x01\x02\xff", 4));
  EXPECT_EQ(Get(message, "content-type"), "application/octet-stream");
  EXPECT_EQ(Get(message, "ce-datacontenttype"), "application/octet-stream");
  EXPECT_TRUE(IsRfc3339(Get(message, "ce-time")))
      << "expected ce-time filled in" << Dump(message.headers);
}

TEST(CloudEventStructuredTest, Base64Padding) {
  const std::pair<const char*, std::string> cases[] = {
      {"", ""}, {"QQ==", "A"}, {"QUI=", "AB"}, {"QUJD", "ABC"}, {"QUJDRA==", "ABCD"}};
  for (const auto& [base64, decoded] : cases) {
    BrokerMessage message = Structured(
        std::string(R"({"specversion":"1.0","id":"e","source":"/s","type":"t","data_base64":")") +
        base64 + "\"}");
    const Status status = NormalizeCloudEvent(&message, kDefaults);
    ASSERT_TRUE(status.ok()) << base64 << ": " << status.ToString();
    EXPECT_EQ(message.data, decoded) << "for " << base64;
    EXPECT_EQ(Get(message, "content-type"), "<absent>") << Dump(message.headers);
  }
}

TEST(CloudEventStructuredTest, StringData) {
  const char* kEvent =
      R"({"specversion":"1.0","id":"e","source":"/s","type":"t",%s"data":"hé \"q\""})";
  char json[256];
  std::snprintf(json, sizeof(json), kEvent, R"("datacontenttype":"text/plain",)");
  BrokerMessage text = Structured(json);
  ASSERT_TRUE(NormalizeCloudEvent(&text, kDefaults).ok());
  EXPECT_EQ(text.data, "hé \"q\"") << "a string under text/plain is its text";
  EXPECT_EQ(Get(text, "content-type"), "text/plain");

  std::snprintf(json, sizeof(json), kEvent, "");
  BrokerMessage json_string = Structured(json);
  ASSERT_TRUE(NormalizeCloudEvent(&json_string, kDefaults).ok());
  EXPECT_EQ(json_string.data, R"("hé \"q\"")") << "without datacontenttype, data is JSON";
  EXPECT_EQ(Get(json_string, "content-type"), "application/json");
  EXPECT_EQ(Get(json_string, "ce-datacontenttype"), "application/json");
}

TEST(CloudEventStructuredTest, NoData) {
  BrokerMessage message =
      Structured(R"({"specversion":"1.0","id":"e","source":"/s","type":"t","data":null})");
  ASSERT_TRUE(NormalizeCloudEvent(&message, kDefaults).ok());
  EXPECT_EQ(message.data, "");
  EXPECT_EQ(Get(message, "content-type"), "<absent>") << Dump(message.headers);
  EXPECT_EQ(Get(message, "ce-datacontenttype"), "<absent>") << Dump(message.headers);
}

TEST(CloudEventStructuredTest, NestingUpToTheLimit) {
  std::string deep;
  for (int i = 1; i < kMaxStructuredJsonDepth; ++i) deep += "{\"a\":";
  deep += "1" + std::string(kMaxStructuredJsonDepth - 1, '}');
  BrokerMessage message =
      Structured(R"({"specversion":"1.0","id":"e","source":"/s","type":"t","data":)" + deep + "}");
  const Status status = NormalizeCloudEvent(&message, kDefaults);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(message.data, deep);
}

TEST(CloudEventStructuredTest, RefusesBodiesOverTheSizeLimit) {
  const std::string head = R"({"specversion":"1.0","id":"e","source":"/s","type":"t","data":")";
  BrokerMessage message = Structured(head + std::string(kMaxStructuredBytes, 'x') + "\"}");
  const Status status = NormalizeCloudEvent(&message, kDefaults);
  EXPECT_EQ(status.code(), Status::Code::kInvalidArgument) << status.ToString();
  EXPECT_NE(status.message().find("binary mode"), std::string::npos) << status.message();
}

TEST(CloudEventStructuredTest, RejectsInvalidBodies) {
  const std::string kHead = R"({"specversion":"1.0","id":"e","source":"/s","type":"t")";
  const std::string too_deep =
      std::string(kMaxStructuredJsonDepth, '[') + std::string(kMaxStructuredJsonDepth, ']');
  const std::pair<std::string, const char*> cases[] = {
      {"not json", "structured CloudEvent: body does not parse as a JSON object"},
      {"[1]", "body does not parse as a JSON object"},
      {kHead, "body does not parse as a JSON object"},  // unterminated
      {kHead + R"(,"id":"again"})", "body does not parse as a JSON object"},
      {R"({"id":"e","source":"/s","type":"t"})", "lacks the required attribute \"specversion\""},
      {R"({"specversion":"1.0","source":"/s","type":"t"})", "lacks the required attribute \"id\""},
      {R"({"specversion":"1.0","id":"e","source":null,"type":"t"})",
       "lacks the required attribute \"source\""},
      {R"({"specversion":"1.0","id":"e","source":"/s"})", "lacks the required attribute \"type\""},
      {R"({"specversion":"0.3","id":"e","source":"/s","type":"t"})", "ce-specversion is \"0.3\""},
      {R"({"specversion":"1.0","id":"","source":"/s","type":"t"})", "ce-id is empty"},
      {kHead + R"(,"time":"now"})", "ce-time is \"now\""},
      {kHead + R"(,"data":1,"data_base64":"QQ=="})", "has both data and data_base64"},
      {kHead + R"(,"data_base64":"QQ"})", "data_base64 is not padded standard base64"},
      {kHead + R"(,"data_base64":"Q=Q="})", "data_base64 is not padded standard base64"},
      {kHead + R"(,"data_base64":"QR=="})", "data_base64 is not padded standard base64"},
      {kHead + R"(,"data_base64":"QU\nJD"})", "data_base64 is not padded standard base64"},
      {kHead + R"(,"data_base64":"-_8="})", "data_base64 is not padded standard base64"},
      {kHead + R"(,"data_base64":7})", "data_base64 is a number; expected a string"},
      {R"({"specversion":"1.0","id":5,"source":"/s","type":"t"})",
       "attribute \"id\" is a number; expected a string"},
      {kHead + R"(,"subject":true})", "attribute \"subject\" is a boolean; expected a string"},
      {kHead + R"(,"ext":{"a":1}})",
       "attribute \"ext\" is an object; expected a string, boolean or integer"},
      {kHead + R"(,"ext":1.5})", "attribute \"ext\" is a number"},
      {kHead + R"(,"ext":4294967296})", "attribute \"ext\" is a number"},
      {kHead + R"(,"Ext":"v"})", "attribute name \"Ext\" is not a-z and 0-9"},
      {kHead + R"(,"subject":"caf\u00e9"})", "header ce-subject value has byte 0xc3"},
      {kHead + ",\"data\":" + too_deep + "}", "JSON nests deeper than 32 levels"},
  };
  for (const auto& [json, expected] : cases) {
    BrokerMessage message = Structured(json);
    const Status status = NormalizeCloudEvent(&message, kDefaults);
    EXPECT_EQ(status.code(), Status::Code::kInvalidArgument)
        << json << ": expected InvalidArgument, got " << status.ToString();
    EXPECT_NE(status.message().find(expected), std::string::npos)
        << json << ": expected a message with \"" << expected << "\", got \"" << status.message()
        << "\"";
    EXPECT_EQ(status.message().find('\n'), std::string::npos)
        << "expected a one-line message, got \"" << status.message() << "\"";
  }
}

}  // namespace
}  // namespace wisp::triggers
