// JSON printed without protobuf reflection, byte for byte as the control
// API's json_util prints it (proto field names, every scalar, 64-bit integers
// as strings, json_util's escapes) for valid UTF-8; a byte that is not valid
// UTF-8 becomes '?'. For the bodies on hot or always-on paths
// (error bodies, /healthz): json_util builds descriptors on first use, about
// 0.9 MiB of a controller that would otherwise never need them. Tests check
// each printer against json_util. Pure; any thread.
#ifndef WISP_TRIGGERS_JSON_TEXT_H_
#define WISP_TRIGGERS_JSON_TEXT_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace wisp::triggers {

// Appends text as a JSON string literal, quotes included. Bytes that are not
// valid UTF-8 become '?' (as SanitizeUtf8).
void AppendJsonString(std::string_view text, std::string* out);

// Builds one JSON object: members in call order, nested objects by
// BeginObject/EndObject. The caller keeps the nesting balanced.
class JsonObjectText {
 public:
  JsonObjectText() { text_ = "{"; }

  void String(std::string_view key, std::string_view value);
  void Uint64(std::string_view key, uint64_t value);  // "123", as proto3 JSON
  void Bool(std::string_view key, bool value);
  void BeginObject(std::string_view key);
  void EndObject();
  void BeginArray(std::string_view key);
  void ArrayString(std::string_view value);
  void EndArray();

  // The object, closed. Call once.
  std::string Finish();

 private:
  void Key(std::string_view key);
  void Separate();

  std::string text_;
  bool first_ = true;  // no member yet at the current level
};

}  // namespace wisp::triggers

#endif  // WISP_TRIGGERS_JSON_TEXT_H_
