// Internal to the HTTP trigger: response serialization and UTF-8 clean-up.
// Pure functions; callable from any thread.
#ifndef WISP_TRIGGERS_HTTP_WIRE_H_
#define WISP_TRIGGERS_HTTP_WIRE_H_

#include <string>
#include <string_view>

#include "triggers/http_server.h"

namespace wisp::triggers {

// How a response is framed for the request it answers.
struct ResponseFraming {
  bool keep_alive = true;  // false adds "Connection: close"
  bool http10 = false;     // an HTTP/1.0 keep-alive peer gets "Connection: keep-alive"
  bool head = false;       // HEAD: headers only, Content-Length of the body
};

// Appends the status line, headers and body of response to *out. The
// handler's Content-Length, Connection and Transfer-Encoding headers, and any
// header containing CR or LF, are dropped; Content-Type defaults to text/plain.
void AppendResponse(const HttpResponse& response, const ResponseFraming& framing, std::string* out);

// Appends the status line and headers of a streamed response: its body
// follows in chunks (Transfer-Encoding: chunked), or, for an HTTP/1.0 peer,
// unframed until the connection closes. Headers are filtered as above.
void AppendStreamHead(const HttpResponse& head, const ResponseFraming& framing, std::string* out);
// Appends data as one chunk (nothing when data is empty: an empty chunk
// would end the body), or as is for an HTTP/1.0 peer.
void AppendStreamChunk(std::string_view data, const ResponseFraming& framing, std::string* out);
// Appends the end of a chunked body (nothing for HTTP/1.0).
void AppendStreamEnd(const ResponseFraming& framing, std::string* out);

// text with every byte that is not part of valid UTF-8 replaced by '?'.
std::string SanitizeUtf8(std::string_view text);

}  // namespace wisp::triggers

#endif  // WISP_TRIGGERS_HTTP_WIRE_H_
