#include "triggers/json_text.h"

#include <cstdio>

#include "triggers/http_wire.h"

namespace wisp::triggers {
namespace {

void AppendUnicodeEscape(unsigned code, std::string* out) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "\\u%04x", code);
  out->append(buf);
}

// The code points json_util writes as escapes although JSON allows them raw:
// C1 controls, and format characters that are invisible or reorder text
// (soft hyphen, zero-width and bidi marks, line separators, BOM, ...).
bool EscapedAsJsonUtilDoes(uint32_t c) {
  return (c >= 0x80 && c <= 0x9f) || c == 0xad || (c >= 0x600 && c <= 0x603) || c == 0x6dd ||
         c == 0x70f || (c >= 0x17b4 && c <= 0x17b5) || (c >= 0x200b && c <= 0x200f) ||
         (c >= 0x2028 && c <= 0x202e) || (c >= 0x2060 && c <= 0x2064) ||
         (c >= 0x206a && c <= 0x206f) || c == 0xfeff || (c >= 0xfff9 && c <= 0xfffb) ||
         (c >= 0x1d173 && c <= 0x1d17a) || c == 0xe0001 || (c >= 0xe0020 && c <= 0xe007f);
}

// The code point of the valid UTF-8 sequence at text[i], and its length.
uint32_t DecodeUtf8(const std::string& text, size_t i, size_t* length) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[i + k]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) {
    *length = 1;
    return lead;
  }
  if (lead < 0xe0) {
    *length = 2;
    return (uint32_t{lead} & 0x1f) << 6 | (byte(1) & 0x3f);
  }
  if (lead < 0xf0) {
    *length = 3;
    return (uint32_t{lead} & 0x0f) << 12 | (byte(1) & 0x3f) << 6 | (byte(2) & 0x3f);
  }
  *length = 4;
  return (uint32_t{lead} & 0x07) << 18 | (byte(1) & 0x3f) << 12 | (byte(2) & 0x3f) << 6 |
         (byte(3) & 0x3f);
}

}  // namespace

void AppendJsonString(std::string_view text, std::string* out) {
  const std::string clean = SanitizeUtf8(text);
  out->push_back('"');
  for (size_t i = 0; i < clean.size();) {
    size_t length = 1;
    const uint32_t c = DecodeUtf8(clean, i, &length);
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\b': out->append("\\b"); break;
      case '\f': out->append("\\f"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      case '<':
      case '>':
      case 0x7f:
        AppendUnicodeEscape(c, out);
        break;
      default:
        if (c < 0x20 || EscapedAsJsonUtilDoes(c)) {
          if (c >= 0x10000) {  // as a UTF-16 surrogate pair
            AppendUnicodeEscape(0xd800 + ((c - 0x10000) >> 10), out);
            AppendUnicodeEscape(0xdc00 + ((c - 0x10000) & 0x3ff), out);
          } else {
            AppendUnicodeEscape(c, out);
          }
        } else {
          out->append(clean, i, length);
        }
    }
    i += length;
  }
  out->push_back('"');
}

void JsonObjectText::Separate() {
  if (!first_) text_.push_back(',');
  first_ = false;
}

void JsonObjectText::Key(std::string_view key) {
  Separate();
  AppendJsonString(key, &text_);
  text_.push_back(':');
}

void JsonObjectText::String(std::string_view key, std::string_view value) {
  Key(key);
  AppendJsonString(value, &text_);
}

void JsonObjectText::Uint64(std::string_view key, uint64_t value) {
  Key(key);
  text_.push_back('"');
  text_.append(std::to_string(value));
  text_.push_back('"');
}

void JsonObjectText::Bool(std::string_view key, bool value) {
  Key(key);
  text_.append(value ? "true" : "false");
}

void JsonObjectText::BeginObject(std::string_view key) {
  Key(key);
  text_.push_back('{');
  first_ = true;
}

void JsonObjectText::EndObject() {
  text_.push_back('}');
  first_ = false;
}

void JsonObjectText::BeginArray(std::string_view key) {
  Key(key);
  text_.push_back('[');
  first_ = true;
}

void JsonObjectText::ArrayString(std::string_view value) {
  Separate();
  AppendJsonString(value, &text_);
}

void JsonObjectText::EndArray() {
  text_.push_back(']');
  first_ = false;
}

std::string JsonObjectText::Finish() {
  text_.push_back('}');
  return std::move(text_);
}

}  // namespace wisp::triggers
