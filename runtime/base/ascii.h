// ASCII helpers for protocol text (header names, schemes). Pure; any thread.
#ifndef WISP_RUNTIME_BASE_ASCII_H_
#define WISP_RUNTIME_BASE_ASCII_H_

#include <array>
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

inline constexpr char kLowerHexDigits[] = "0123456789abcdef";

// Appends bytes to *out as lower-case hex, two digits a byte.
inline void AppendLowerHex(std::string_view bytes, std::string* out) {
  for (unsigned char b : bytes) {
    out->push_back(kLowerHexDigits[b >> 4]);
    out->push_back(kLowerHexDigits[b & 0xf]);
  }
}

// Appends the bytes that text spells in lower-case hex (two digits a byte)
// to *out, so that AppendLowerHex gives text back; false, with *out
// unchanged, for anything else (an odd length, any other character).
// Table-driven and without branches per digit: trace ids are random digits,
// which a branch per digit mispredicts about every third time.
inline bool AppendLowerHexBytes(std::string_view text, std::string* out) {
  static constexpr auto kValue = [] {
    std::array<uint8_t, 256> value{};
    value.fill(0x10);  // not a digit
    for (int c = '0'; c <= '9'; ++c) value[c] = static_cast<uint8_t>(c - '0');
    for (int c = 'a'; c <= 'f'; ++c) value[c] = static_cast<uint8_t>(c - 'a' + 10);
    return value;
  }();
  if (text.size() % 2 != 0) return false;
  const size_t start = out->size();
  out->resize(start + text.size() / 2);
  uint8_t bad = 0;
  for (size_t i = 0; i < text.size(); i += 2) {
    const uint8_t high = kValue[static_cast<unsigned char>(text[i])];
    const uint8_t low = kValue[static_cast<unsigned char>(text[i + 1])];
    bad |= high | low;
    (*out)[start + i / 2] = static_cast<char>(high << 4 | (low & 0xf));
  }
  if ((bad & 0x10) != 0) {
    out->resize(start);
    return false;
  }
  return true;
}

}  // namespace wisp

#endif  // WISP_RUNTIME_BASE_ASCII_H_
