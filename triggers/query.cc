#include "triggers/query.h"

namespace wisp::triggers {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Status PercentDecode(std::string_view text, bool plus_is_space, std::string* out) {
  out->clear();
  out->reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) {
        return Status::InvalidArgument("bad percent escape at the end of '" + std::string(text) + "'");
      }
      const int h = HexValue(text[i + 1]);
      const int l = HexValue(text[i + 2]);
      if (h < 0 || l < 0) {
        return Status::InvalidArgument("bad percent escape in '" + std::string(text) + "'");
      }
      out->push_back(static_cast<char>(h * 16 + l));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out->push_back(' ');
    } else {
      out->push_back(c);
    }
  }
  return Status::OK();
}

Status ParseQuery(std::string_view query, QueryParams* out) {
  out->clear();
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view piece = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (piece.empty()) continue;
    const size_t eq = piece.find('=');
    std::string key;
    std::string value;
    WISP_RETURN_IF_ERROR(PercentDecode(piece.substr(0, eq), true, &key));
    if (eq != std::string_view::npos) {
      WISP_RETURN_IF_ERROR(PercentDecode(piece.substr(eq + 1), true, &value));
    }
    out->emplace_back(std::move(key), std::move(value));
  }
  return Status::OK();
}

std::string PercentEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if ((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || u == '-' ||
        u == '.' || u == '_' || u == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

}  // namespace wisp::triggers
