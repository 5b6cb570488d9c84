// CloudEvents binary mode over NATS headers; structured-mode JSON through
// protobuf's json_util (google.protobuf.Struct keeps extension attributes
// and any `data`); base64 through OpenSSL's EVP_DecodeBlock.
#include "triggers/cloudevents.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <limits>
#include <utility>

#include "runtime/base/ascii.h"
#include "runtime/base/check.h"

namespace wisp::triggers {
namespace {

using google::protobuf::Value;

constexpr std::string_view kSpecVersion = "1.0";
constexpr std::string_view kPrefix = "ce-";
constexpr std::string_view kStructuredType = "application/cloudevents+json";
constexpr std::string_view kBatchType = "application/cloudevents-batch+json";
constexpr std::string_view kJsonType = "application/json";
constexpr std::string_view kTimeExample = "2026-11-27T23:04:54.123Z";

// The attributes NormalizeCloudEvent checks or fills in, as found in the
// headers (nullptr: absent). Pointers into the headers: valid until they grow.
struct HeaderScan {
  const std::string* specversion = nullptr;
  const std::string* id = nullptr;
  const std::string* source = nullptr;
  const std::string* type = nullptr;
  const std::string* time = nullptr;
  const std::string* datacontenttype = nullptr;
  const std::string* content_type = nullptr;  // the Content-Type header
};

std::string Quoted(std::string_view text) { return "\"" + std::string(text) + "\""; }

// The offset of the first byte of text outside [lowest, '~'] or equal to
// banned, or npos.
size_t FindBadByte(std::string_view text, char lowest, char banned) {
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] < lowest || text[i] > '~' || text[i] == banned) return i;
  }
  return std::string_view::npos;
}

std::string ByteAt(std::string_view text, size_t offset) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "byte 0x%02x at offset %zu",
                static_cast<unsigned char>(text[offset]), offset);
  return buf;
}

Status BadHeaderName(size_t index, const std::string& problem) {
  return Status::InvalidArgument("header #" + std::to_string(index) + problem);
}

Status CheckHeader(const std::string& name, const std::string& value, size_t index) {
  if (name.empty()) return BadHeaderName(index, " has an empty name");
  if (name.size() > kMaxHeaderNameBytes) {
    return BadHeaderName(index, " name has " + std::to_string(name.size()) +
                                    " bytes; expected at most " +
                                    std::to_string(kMaxHeaderNameBytes));
  }
  if (size_t bad = FindBadByte(name, '!', ':'); bad != std::string::npos) {
    return BadHeaderName(index, " name has " + ByteAt(name, bad) +
                                    "; expected printable ASCII without spaces or ':'");
  }
  if (value.size() > kMaxHeaderValueBytes) {
    return Status::InvalidArgument("header " + name + " value has " + std::to_string(value.size()) +
                                   " bytes; expected at most " +
                                   std::to_string(kMaxHeaderValueBytes));
  }
  if (size_t bad = FindBadByte(value, ' ', '\0'); bad != std::string::npos) {
    return Status::InvalidArgument("header " + name + " value has " + ByteAt(value, bad) +
                                   "; expected printable ASCII");
  }
  return Status::OK();
}

bool IsCloudEventHeader(std::string_view name) {
  return name.size() >= kPrefix.size() && EqualsIgnoreCase(name.substr(0, kPrefix.size()), kPrefix);
}

// CloudEvents 1.0, "Attribute Naming Convention": a-z and 0-9 only.
bool IsAttributeName(std::string_view name) {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); });
}

// Lower-cases a ce-* header name in place (allocating only when it has
// upper-case letters) and checks its attribute part.
Status LowerAttributeHeader(std::string* name) {
  if (IsAttributeName(std::string_view(*name).substr(kPrefix.size())) &&
      name->compare(0, kPrefix.size(), kPrefix) == 0) {
    return Status::OK();
  }
  std::string lower;
  AppendLowerCase(name->data(), name->size(), &lower);
  if (!IsAttributeName(std::string_view(lower).substr(kPrefix.size()))) {
    return Status::InvalidArgument("header " + *name +
                                   ": expected ce- then an attribute name of a-z and 0-9");
  }
  *name = std::move(lower);
  return Status::OK();
}

const std::string** AttributeSlot(HeaderScan* scan, std::string_view name) {
  if (name == "ce-specversion") return &scan->specversion;
  if (name == "ce-id") return &scan->id;
  if (name == "ce-source") return &scan->source;
  if (name == "ce-type") return &scan->type;
  if (name == "ce-time") return &scan->time;
  if (name == "ce-datacontenttype") return &scan->datacontenttype;
  return nullptr;
}

// Checks every header, lower-cases ce-* names, and notes where the attributes
// and Content-Type are.
Status ScanHeaders(Headers* headers, HeaderScan* scan) {
  *scan = HeaderScan();
  if (headers->size() > kMaxEventHeaders) {
    return Status::InvalidArgument(std::to_string(headers->size()) + " headers; expected at most " +
                                   std::to_string(kMaxEventHeaders));
  }
  for (size_t i = 0; i < headers->size(); ++i) {
    auto& [name, value] = (*headers)[i];
    WISP_RETURN_IF_ERROR(CheckHeader(name, value, i));
    if (!IsCloudEventHeader(name)) {
      if (scan->content_type == nullptr && EqualsIgnoreCase(name, "content-type")) {
        scan->content_type = &value;
      }
      continue;
    }
    WISP_RETURN_IF_ERROR(LowerAttributeHeader(&name));
    for (size_t j = 0; j < i; ++j) {
      if ((*headers)[j].first == name) return Status::InvalidArgument("repeated header " + name);
    }
    if (const std::string** slot = AttributeSlot(scan, name)) *slot = &value;
  }
  return Status::OK();
}

// The media type of a Content-Type value: before any ';', without spaces.
std::string_view MediaType(std::string_view content_type) {
  std::string_view media = content_type.substr(0, content_type.find(';'));
  while (!media.empty() && media.front() == ' ') media.remove_prefix(1);
  while (!media.empty() && media.back() == ' ') media.remove_suffix(1);
  return media;
}

// application/json, text/json or any */*+json (CloudEvents JSON format 3.1).
bool IsJsonMediaType(std::string_view content_type) {
  std::string_view media = MediaType(content_type);
  constexpr std::string_view kSuffix = "+json";
  return EqualsIgnoreCase(media, kJsonType) || EqualsIgnoreCase(media, "text/json") ||
         (media.size() > kSuffix.size() &&
          EqualsIgnoreCase(media.substr(media.size() - kSuffix.size()), kSuffix));
}

Status CheckNotEmpty(const std::string* value, std::string_view name) {
  if (value != nullptr && value->empty()) {
    return Status::InvalidArgument(std::string(name) + " is empty; expected a non-empty value");
  }
  return Status::OK();
}

Status CheckAttributes(const HeaderScan& scan, const EventDefaults& defaults) {
  if (scan.specversion != nullptr && *scan.specversion != kSpecVersion) {
    return Status::InvalidArgument("ce-specversion is " + Quoted(*scan.specversion) +
                                   "; expected \"1.0\"");
  }
  WISP_RETURN_IF_ERROR(CheckNotEmpty(scan.id, "ce-id"));
  WISP_RETURN_IF_ERROR(CheckNotEmpty(scan.source, "ce-source"));
  WISP_RETURN_IF_ERROR(CheckNotEmpty(scan.type, "ce-type"));
  WISP_RETURN_IF_ERROR(CheckNotEmpty(scan.datacontenttype, "ce-datacontenttype"));
  if (scan.source == nullptr && defaults.source.empty()) {
    return Status::InvalidArgument("ce-source is missing and there is no default source");
  }
  if (scan.type == nullptr && defaults.type.empty()) {
    return Status::InvalidArgument("ce-type is missing and there is no default type");
  }
  if (scan.time != nullptr && !IsRfc3339(*scan.time)) {
    return Status::InvalidArgument("ce-time is " + Quoted(*scan.time) +
                                   "; expected an RFC 3339 date-time like " +
                                   std::string(kTimeExample));
  }
  return Status::OK();
}

// Appends the attributes scan found missing; one allocation of the vector.
void FillMissing(const HeaderScan& scan, const EventDefaults& defaults, Headers* headers) {
  std::string datacontenttype;
  if (scan.datacontenttype == nullptr && scan.content_type != nullptr) {
    datacontenttype = *scan.content_type;  // copied before the headers move
  }
  const size_t missing = (scan.specversion == nullptr) + (scan.id == nullptr) +
                         (scan.source == nullptr) + (scan.type == nullptr) +
                         (scan.time == nullptr) + !datacontenttype.empty();
  headers->reserve(headers->size() + missing);
  if (scan.specversion == nullptr) headers->emplace_back("ce-specversion", kSpecVersion);
  if (scan.id == nullptr) headers->emplace_back("ce-id", NewEventId());
  if (scan.source == nullptr) headers->emplace_back("ce-source", defaults.source);
  if (scan.type == nullptr) headers->emplace_back("ce-type", defaults.type);
  if (scan.time == nullptr) headers->emplace_back("ce-time", NowRfc3339Millis());
  if (!datacontenttype.empty()) {
    headers->emplace_back("ce-datacontenttype", std::move(datacontenttype));
  }
}

// ---- Structured mode ----

Status StructuredError(std::string_view what) {
  return Status::InvalidArgument("structured CloudEvent: " + std::string(what));
}

// A guard ahead of protobuf's parser, which slows quadratically with depth:
// counts brackets outside strings, nothing more.
Status CheckJsonDepth(std::string_view json) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxStructuredJsonDepth) {
        return StructuredError("JSON nests deeper than " + std::to_string(kMaxStructuredJsonDepth) +
                               " levels");
      }
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return Status::OK();
}

const char* JsonKindName(const Value& value) {
  switch (value.kind_case()) {
    case Value::kNullValue:
      return "null";
    case Value::kNumberValue:
      return "a number";
    case Value::kStringValue:
      return "a string";
    case Value::kBoolValue:
      return "a boolean";
    case Value::kStructValue:
      return "an object";
    case Value::kListValue:
      return "an array";
    default:
      return "empty";
  }
}

// The core attributes whose type is String, URI-reference or Timestamp
// (CloudEvents 1.0, "Context Attributes"): all JSON strings.
bool IsStringAttribute(std::string_view name) {
  for (std::string_view core : {"specversion", "id", "source", "type", "datacontenttype",
                                "dataschema", "subject", "time"}) {
    if (name == core) return true;
  }
  return false;
}

// The header text of a JSON attribute: strings as is; extensions may also be
// booleans and (32-bit) integers. *text stays empty for null (absent).
Status AttributeText(const std::string& name, const Value& value, std::string* text) {
  if (!IsAttributeName(name)) {
    return StructuredError("attribute name " + Quoted(name) + " is not a-z and 0-9");
  }
  auto wrong_kind = [&] {
    return StructuredError("attribute " + Quoted(name) + " is " + JsonKindName(value) +
                           "; expected " +
                           (IsStringAttribute(name) ? "a string" : "a string, boolean or integer"));
  };
  switch (value.kind_case()) {
    case Value::kNullValue:
      return Status::OK();
    case Value::kStringValue:
      *text = value.string_value();
      return Status::OK();
    case Value::kBoolValue:
      if (IsStringAttribute(name)) return wrong_kind();
      *text = value.bool_value() ? "true" : "false";
      return Status::OK();
    case Value::kNumberValue: {
      const double number = value.number_value();
      if (IsStringAttribute(name) || std::trunc(number) != number ||
          number < std::numeric_limits<int32_t>::min() ||
          number > std::numeric_limits<int32_t>::max()) {
        return wrong_kind();
      }
      *text = std::to_string(static_cast<int32_t>(number));
      return Status::OK();
    }
    default:
      return wrong_kind();
  }
}

// Padded standard base64 (RFC 4648 section 4). EVP_DecodeBlock skips blanks,
// lets '=' stand mid-text and decodes padding as zero bytes; so the padding is
// cut off and the result re-encoded: only the canonical text passes.
Status DecodeBase64(std::string_view text, std::string* out) {
  const Status bad = StructuredError("data_base64 is not padded standard base64");
  if (text.size() % 4 != 0 || text.size() > static_cast<size_t>(INT32_MAX / 2)) return bad;
  out->resize(text.size() / 4 * 3);
  const int decoded = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out->data()),
                                      reinterpret_cast<const unsigned char*>(text.data()),
                                      static_cast<int>(text.size()));
  const int padding = text.ends_with("==") ? 2 : text.ends_with('=') ? 1 : 0;
  if (decoded < padding) return bad;
  out->resize(static_cast<size_t>(decoded - padding));
  std::string check(text.size() + 1, '\0');  // EVP_EncodeBlock adds a NUL
  const int encoded = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(check.data()),
                                      reinterpret_cast<const unsigned char*>(out->data()),
                                      static_cast<int>(out->size()));
  if (static_cast<size_t>(encoded) != text.size() || text != check.substr(0, text.size())) {
    return bad;
  }
  return Status::OK();
}

bool IsPresent(const Value* value) {
  return value != nullptr && value->kind_case() != Value::kNullValue;
}

// The payload from `data` or `data_base64`; *content_type is the type to
// send it with (empty: none). CloudEvents JSON format 3.1.
Status StructuredPayload(const Value* data, const Value* data_base64, std::string* content_type,
                         std::string* payload) {
  if (IsPresent(data) && IsPresent(data_base64)) {
    return StructuredError("has both data and data_base64; expected at most one");
  }
  if (IsPresent(data_base64)) {
    if (data_base64->kind_case() != Value::kStringValue) {
      return StructuredError(std::string("data_base64 is ") + JsonKindName(*data_base64) +
                             "; expected a string");
    }
    return DecodeBase64(data_base64->string_value(), payload);
  }
  if (!IsPresent(data)) return Status::OK();
  if (data->kind_case() == Value::kStringValue && !content_type->empty() &&
      !IsJsonMediaType(*content_type)) {
    *payload = data->string_value();
    return Status::OK();
  }
  if (content_type->empty()) *content_type = kJsonType;
  if (!google::protobuf::util::MessageToJsonString(*data, payload).ok()) {
    return Status::Internal("structured CloudEvent: data does not print as JSON");
  }
  return Status::OK();
}

// Replaces the headers: ce-* ones go (the body is authoritative), Content-Type
// becomes content_type (or goes), the others stay in place; attributes follow.
void ReplaceHeaders(Headers attributes, const std::string& content_type, Headers* headers) {
  Headers out;
  out.reserve(headers->size() + attributes.size());
  for (auto& header : *headers) {
    if (IsCloudEventHeader(header.first)) continue;
    if (EqualsIgnoreCase(header.first, "content-type")) {
      if (content_type.empty()) continue;
      header.second = content_type;
    }
    out.push_back(std::move(header));
  }
  for (auto& attribute : attributes) out.push_back(std::move(attribute));
  *headers = std::move(out);
}

// Rewrites a structured-mode message as binary mode; the caller then checks
// the new headers like any others.
Status StructuredToBinary(BrokerMessage* message) {
  if (message->data.size() > kMaxStructuredBytes) {
    return StructuredError("body of " + std::to_string(message->data.size()) +
                           " bytes is over the limit of " + std::to_string(kMaxStructuredBytes) +
                           "; send large events in binary mode (ce-* headers)");
  }
  WISP_RETURN_IF_ERROR(CheckJsonDepth(message->data));
  google::protobuf::Struct body;
  const auto parsed = google::protobuf::util::JsonStringToMessage(message->data, &body);
  if (!parsed.ok()) {
    const std::string text(parsed.message());  // its first line: the rest quotes the input
    return StructuredError("body does not parse as a JSON object: " +
                           text.substr(0, text.find('\n')));
  }
  Headers attributes;
  const Value* data = nullptr;
  const Value* data_base64 = nullptr;
  std::string content_type;
  bool has_datacontenttype = false;
  for (const auto& [name, value] : body.fields()) {
    if (name == "data") {
      data = &value;
    } else if (name == "data_base64") {
      data_base64 = &value;
    } else {
      std::string text;
      WISP_RETURN_IF_ERROR(AttributeText(name, value, &text));
      if (value.kind_case() == Value::kNullValue) continue;
      if (name == "datacontenttype") {
        has_datacontenttype = true;
        content_type = text;
      }
      attributes.emplace_back(std::string(kPrefix) + name, std::move(text));
    }
  }
  for (std::string_view required : {"ce-specversion", "ce-id", "ce-source", "ce-type"}) {
    if (std::none_of(attributes.begin(), attributes.end(),
                     [&](const auto& attribute) { return attribute.first == required; })) {
      return StructuredError("lacks the required attribute " + Quoted(required.substr(3)));
    }
  }
  std::string payload;
  WISP_RETURN_IF_ERROR(StructuredPayload(data, data_base64, &content_type, &payload));
  if (!has_datacontenttype && !content_type.empty()) {
    attributes.emplace_back("ce-datacontenttype", content_type);
  }
  std::sort(attributes.begin(), attributes.end());  // Struct's order is unspecified
  ReplaceHeaders(std::move(attributes), content_type, &message->headers);
  message->data = std::move(payload);
  return Status::OK();
}

// ---- Random bytes for ids ----

// getrandom(2) costs about 2.5 us a call on this machine (a system call is
// ~1.8 us), near half of a request's budget at the HTTP floor; 512 bytes cost
// 3.8 us and make 32 ids. Per thread, so no lock; emptied in a forked child
// (pthread_atfork runs in the forking thread, the child's only one) so the
// child never repeats its parent's ids.
struct RandomPool {
  unsigned char bytes[512];
  size_t used = sizeof(bytes);
};
thread_local RandomPool random_pool;

void EmptyRandomPool() { random_pool.used = sizeof(random_pool.bytes); }

void TakeRandomBytes(unsigned char* out, size_t count) {
  static const bool registered = pthread_atfork(nullptr, nullptr, EmptyRandomPool) == 0;
  WISP_CHECK(registered && count <= sizeof(random_pool.bytes));
  if (sizeof(random_pool.bytes) - random_pool.used < count) {
    size_t filled = 0;
    while (filled < sizeof(random_pool.bytes)) {
      const ssize_t n =
          ::getrandom(random_pool.bytes + filled, sizeof(random_pool.bytes) - filled, 0);
      if (n < 0 && errno == EINTR) continue;
      WISP_CHECK(n > 0);
      filled += static_cast<size_t>(n);
    }
    random_pool.used = 0;
  }
  std::memcpy(out, random_pool.bytes + random_pool.used, count);
  random_pool.used += count;
}

// ---- RFC 3339 ----

// Reads exactly count digits at *pos into *value.
bool ReadDigits(std::string_view text, size_t* pos, int count, int* value) {
  if (*pos + count > text.size()) return false;
  *value = 0;
  for (int i = 0; i < count; ++i) {
    const char c = text[(*pos)++];
    if (c < '0' || c > '9') return false;
    *value = *value * 10 + (c - '0');
  }
  return true;
}

// Reads one of the characters in accepted at *pos.
bool ReadChar(std::string_view text, size_t* pos, std::string_view accepted) {
  if (*pos >= text.size() || accepted.find(text[*pos]) == std::string_view::npos) return false;
  ++*pos;
  return true;
}

int DaysInMonth(int year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return month == 2 && leap ? 29 : kDays[month - 1];
}

}  // namespace

bool IsRfc3339(std::string_view text) {
  size_t pos = 0;
  int year, month, day, hour, minute, second;
  if (!ReadDigits(text, &pos, 4, &year) || !ReadChar(text, &pos, "-") ||
      !ReadDigits(text, &pos, 2, &month) || !ReadChar(text, &pos, "-") ||
      !ReadDigits(text, &pos, 2, &day) || !ReadChar(text, &pos, "Tt") ||
      !ReadDigits(text, &pos, 2, &hour) || !ReadChar(text, &pos, ":") ||
      !ReadDigits(text, &pos, 2, &minute) || !ReadChar(text, &pos, ":") ||
      !ReadDigits(text, &pos, 2, &second)) {
    return false;
  }
  if (month < 1 || month > 12 || day < 1 || day > DaysInMonth(year, month) || hour > 23 ||
      minute > 59 || second > 60) {
    return false;
  }
  if (ReadChar(text, &pos, ".")) {
    const size_t start = pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++pos;
    if (pos == start) return false;
  }
  if (ReadChar(text, &pos, "Zz")) return pos == text.size();
  int offset_hour, offset_minute;
  return ReadChar(text, &pos, "+-") && ReadDigits(text, &pos, 2, &offset_hour) &&
         ReadChar(text, &pos, ":") && ReadDigits(text, &pos, 2, &offset_minute) &&
         pos == text.size() && offset_hour <= 23 && offset_minute <= 59;
}

Status NormalizeCloudEvent(BrokerMessage* message, const EventDefaults& defaults) {
  HeaderScan scan;
  WISP_RETURN_IF_ERROR(ScanHeaders(&message->headers, &scan));
  if (scan.content_type != nullptr) {
    const std::string_view media = MediaType(*scan.content_type);
    if (EqualsIgnoreCase(media, kBatchType)) {
      return Status::InvalidArgument("content-type " + std::string(kBatchType) +
                                     ": batched CloudEvents are not accepted; send one a message");
    }
    if (EqualsIgnoreCase(media, kStructuredType)) {
      WISP_RETURN_IF_ERROR(StructuredToBinary(message));
      WISP_RETURN_IF_ERROR(ScanHeaders(&message->headers, &scan));
    }
  }
  WISP_RETURN_IF_ERROR(CheckAttributes(scan, defaults));
  FillMissing(scan, defaults, &message->headers);
  return Status::OK();
}

std::string NewEventId() {
  unsigned char bytes[16];
  TakeRandomBytes(bytes, sizeof(bytes));
  bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0f) | 0x40);  // version 4
  bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3f) | 0x80);  // RFC 4122 variant
  std::string id;
  id.reserve(36);
  for (size_t i = 0; i < sizeof(bytes); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) id += '-';
    id += kLowerHexDigits[bytes[i] >> 4];
    id += kLowerHexDigits[bytes[i] & 0x0f];
  }
  return id;
}

std::string NowRfc3339Millis() {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  // Formatting costs more than the rest of a default-filled event: reuse the
  // text within one millisecond (per thread).
  thread_local int64_t cached_ms = -1;
  thread_local std::string cached;
  const int64_t ms = static_cast<int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1000000;
  if (ms == cached_ms) return cached;
  std::tm tm{};
  ::gmtime_r(&now.tv_sec, &tm);
  char buf[40];
  const size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%03dZ", static_cast<int>(now.tv_nsec / 1000000));
  cached_ms = ms;
  cached = buf;
  return cached;
}

const std::string* FindHeader(const Headers& headers, std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (EqualsIgnoreCase(key, name)) return &value;
  }
  return nullptr;
}

}  // namespace wisp::triggers
