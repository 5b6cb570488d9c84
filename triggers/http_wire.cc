// Response serialization and the JSON error bodies of the HTTP trigger.
#include "triggers/http_wire.h"
#include "runtime/base/ascii.h"

#include <http_parser.h>

#include <charconv>

#include "triggers/json_text.h"

namespace wisp::triggers {
namespace {


bool HasLineBreak(std::string_view s) { return s.find_first_of("\r\n") != std::string_view::npos; }

// Headers the server owns, or that would corrupt the response.
bool ShouldSkipHeader(std::string_view name, std::string_view value) {
  if (name.empty() || HasLineBreak(name) || HasLineBreak(value)) return true;
  if (name.find(':') != std::string_view::npos) return true;
  return EqualsIgnoreCase(name, "content-length") || EqualsIgnoreCase(name, "connection") ||
         EqualsIgnoreCase(name, "transfer-encoding");
}

void AppendNumber(uint64_t value, std::string* out) {
  char digits[24];
  auto result = std::to_chars(digits, digits + sizeof(digits), value);
  out->append(digits, result.ptr);
}

void AppendStatusLine(int status, std::string* out) {
  if (status < 100 || status > 999) status = 500;
  const char* reason = http_status_str(static_cast<enum http_status>(status));
  if (reason[0] == '<') reason = "Unknown";  // "<unknown>"
  out->append("HTTP/1.1 ");
  AppendNumber(static_cast<uint64_t>(status), out);
  out->push_back(' ');
  out->append(reason);
  out->append("\r\n");
}

// Length of the valid UTF-8 sequence starting at text[i], or 0.
size_t Utf8SequenceLength(std::string_view text, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  unsigned char lead = byte(i);
  if (lead < 0x80) return 1;
  size_t length;
  uint32_t min_code;
  uint32_t code;
  if ((lead & 0xE0) == 0xC0) {
    length = 2, min_code = 0x80, code = lead & 0x1F;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, min_code = 0x800, code = lead & 0x0F;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, min_code = 0x10000, code = lead & 0x07;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  for (size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    code = (code << 6) | (byte(i + k) & 0x3F);
  }
  if (code < min_code || code > 0x10FFFF) return 0;
  if (code >= 0xD800 && code <= 0xDFFF) return 0;  // surrogates
  return length;
}

// The status line and the handler's headers, Content-Type defaulted.
void AppendHead(const HttpResponse& response, std::string* out) {
  AppendStatusLine(response.status, out);
  bool has_content_type = false;
  for (const auto& [name, value] : response.headers) {
    if (ShouldSkipHeader(name, value)) continue;
    if (EqualsIgnoreCase(name, "content-type")) has_content_type = true;
    out->append(name);
    out->append(": ");
    out->append(value);
    out->append("\r\n");
  }
  if (!has_content_type) out->append("Content-Type: text/plain; charset=utf-8\r\n");
}

}  // namespace

void AppendResponse(const HttpResponse& response, const ResponseFraming& framing,
                    std::string* out) {
  out->reserve(out->size() + 128 + response.body.size());
  AppendHead(response, out);
  out->append("Content-Length: ");
  AppendNumber(response.body.size(), out);
  out->append("\r\n");
  if (!framing.keep_alive) {
    out->append("Connection: close\r\n");
  } else if (framing.http10) {
    out->append("Connection: keep-alive\r\n");
  }
  out->append("\r\n");
  if (!framing.head) out->append(response.body);
}

void AppendStreamHead(const HttpResponse& head, const ResponseFraming& framing, std::string* out) {
  AppendHead(head, out);
  if (framing.http10) {
    out->append("Connection: close\r\n\r\n");  // the body ends with the connection
    return;
  }
  out->append("Transfer-Encoding: chunked\r\n");
  if (!framing.keep_alive) out->append("Connection: close\r\n");
  out->append("\r\n");
}

void AppendStreamChunk(std::string_view data, const ResponseFraming& framing, std::string* out) {
  if (data.empty()) return;
  if (framing.http10) {
    out->append(data);
    return;
  }
  char size[20];
  auto result = std::to_chars(size, size + sizeof(size), data.size(), 16);
  out->append(size, result.ptr);
  out->append("\r\n");
  out->append(data);
  out->append("\r\n");
}

void AppendStreamEnd(const ResponseFraming& framing, std::string* out) {
  if (!framing.http10) out->append("0\r\n\r\n");
}

std::string SanitizeUtf8(std::string_view text) {
  std::string clean;
  clean.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    size_t length = Utf8SequenceLength(text, i);
    if (length == 0) {
      clean.push_back('?');
      ++i;
    } else {
      clean.append(text.substr(i, length));
      i += length;
    }
  }
  return clean;
}

std::string JsonErrorBody(std::string_view code, std::string_view message) {
  // As json_util prints api::ErrorBody: empty strings are left out.
  JsonObjectText body;
  body.BeginObject("error");
  if (!code.empty()) body.String("code", code);
  if (!message.empty()) body.String("message", message);
  body.EndObject();
  return body.Finish();
}

HttpResponse JsonErrorResponse(int status, std::string_view code, std::string_view message) {
  HttpResponse response;
  response.status = status;
  response.headers.emplace_back("Content-Type", "application/json");
  response.body = JsonErrorBody(code, message);
  return response;
}

}  // namespace wisp::triggers
