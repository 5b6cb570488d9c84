// ASCII helpers for protocol text (header names, schemes). Pure; any thread.
#ifndef WISP_RUNTIME_BASE_ASCII_H_
#define WISP_RUNTIME_BASE_ASCII_H_

#include <string_view>

namespace wisp {

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

}  // namespace wisp

#endif  // WISP_RUNTIME_BASE_ASCII_H_
