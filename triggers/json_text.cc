#include "triggers/json_text.h"

#include <cstdio>

#include "triggers/http_wire.h"

namespace wisp::triggers {
namespace {

void AppendUnicodeEscape(unsigned code, std::string* out) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "\\u%04x", code);
  out->append(buf);
}

}  // namespace

void AppendJsonString(std::string_view text, std::string* out) {
  const std::string clean = SanitizeUtf8(text);
  out->push_back('"');
  for (size_t i = 0; i < clean.size(); ++i) {
    const auto c = static_cast<unsigned char>(clean[i]);
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
        if (c < 0x20) {
          AppendUnicodeEscape(c, out);
        } else if (c == 0xe2 && i + 2 < clean.size() &&
                   static_cast<unsigned char>(clean[i + 1]) == 0x80 &&
                   (static_cast<unsigned char>(clean[i + 2]) & 0xfe) == 0xa8) {
          // U+2028 and U+2029: valid JSON, but line ends to JavaScript.
          AppendUnicodeEscape(0x2000 + (static_cast<unsigned char>(clean[i + 2]) - 0x80), out);
          i += 2;
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
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
