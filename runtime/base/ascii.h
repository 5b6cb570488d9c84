// ASCII helpers for protocol text (header names, schemes). Pure; any thread.
#ifndef WISP_RUNTIME_BASE_ASCII_H_
#define WISP_RUNTIME_BASE_ASCII_H_

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

namespace wisp {

// Parses all of text as a decimal unsigned number; false for anything else
// (empty, a sign, trailing bytes, overflow).
inline bool ParseUint(std::string_view text, uint64_t* value) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *value);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

// Whether a equals lower, ignoring ASCII case in a; lower must be lower-case.
inline bool EqualsIgnoreCase(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower[i]) return false;
  }
  return true;
}

// Appends length bytes at `at` to *out, with ASCII letters lower-cased.
inline void AppendLowerCase(const char* at, size_t length, std::string* out) {
  const size_t start = out->size();
  out->append(at, length);
  for (size_t i = start; i < out->size(); ++i) {
    char& c = (*out)[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
}

}  // namespace wisp

#endif  // WISP_RUNTIME_BASE_ASCII_H_
