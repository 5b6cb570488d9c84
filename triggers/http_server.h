// The HTTP/1.1 trigger: a libuv TCP server parsing requests with http_parser.
//
// Keep-alive, pipelined requests (replies go out in request order), chunked
// and Content-Length bodies up to a limit (413 above it), HTTP/1.0. Malformed
// input gets a JSON error and the connection is closed; nothing a client sends
// can crash the server. Writes are batched: replies produced during one loop
// iteration leave in one write per connection.
//
// Threading: every method, and the handler, runs on the loop thread.
#ifndef WISP_TRIGGERS_HTTP_SERVER_H_
#define WISP_TRIGGERS_HTTP_SERVER_H_

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "runtime/base/status.h"

namespace wisp::triggers {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string url;     // as sent: path and query
  std::string path;    // percent-decoding is left to the router
  std::string query;   // without '?'
  HeaderList headers;  // names lower-cased, in arrival order
  std::string body;    // de-chunked
  int http_major = 1;
  int http_minor = 1;

  // The first header with this lower-case name, or nullptr.
  const std::string* Header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  HeaderList headers;  // Content-Length and Connection are added by the server
  std::string body;
};

struct HttpServerOptions {
  size_t max_body_bytes = 6 * 1024 * 1024;
  // Optional: the body limit for one request, decided from its method, path
  // and headers before any of its body is read (never above max_body_bytes).
  // Bodies over it get 413 without being buffered.
  std::function<size_t(const HttpRequest&)> body_limit;
  size_t max_header_bytes = 64 * 1024;
  size_t max_headers = 100;  // header lines per request; more get 431
  size_t max_connections = 10000;
  // Slow clients: a request line and headers must arrive within
  // header_timeout_ms of their first byte and a body within body_timeout_ms
  // of the headers (else 408 and close); a keep-alive connection with
  // nothing in flight closes after idle_timeout_ms. 0 turns one off. Checked
  // about every timeout_tick_ms.
  uint64_t header_timeout_ms = 20000;
  uint64_t body_timeout_ms = 60000;
  uint64_t idle_timeout_ms = 75000;
  uint64_t timeout_tick_ms = 1000;
};

// Identifies one request awaiting its reply; stays valid (and harmless) after
// its connection has gone.
struct ReplyToken {
  uint64_t connection_id = 0;
  uint64_t sequence = 0;
};

// A JSON error body {"error":{"code":...,"message":...}}.
std::string JsonErrorBody(std::string_view code, std::string_view message);
// A response with status and JSON error body.
HttpResponse JsonErrorResponse(int status, std::string_view code, std::string_view message);

class HttpServer {
 public:
  // Called once per complete request. The handler (or code it hands the token
  // to) must call Reply(token, ...) exactly once, now or later, on the loop
  // thread.
  using Handler = std::function<void(ReplyToken token, HttpRequest request)>;

  // loop is borrowed and must outlive the server.
  HttpServer(uv_loop_t* loop, HttpServerOptions options, Handler handler);
  // The server must have been closed (Close + its callback) or never listened.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port (port 0 picks a free one) and starts accepting.
  // Fails with IOError when the address cannot be bound.
  Status Listen(const std::string& host, int port);
  // The bound port, after a successful Listen.
  int port() const;

  // Sends the reply for token. A token whose connection closed is ignored.
  void Reply(ReplyToken token, HttpResponse response);

  // A streamed reply for token (server-sent logs, ...): StreamStart sends
  // head's status and headers, each StreamWrite one chunk of the body
  // (Transfer-Encoding: chunked; for an HTTP/1.0 peer the body ends with the
  // connection), StreamEnd the end of the body. Replies to later pipelined
  // requests wait until the stream ends. StreamStart and StreamWrite return
  // false when the connection is gone or the token was answered: the caller
  // should stop. StreamWrite also returns false, and closes the connection,
  // when the peer has left more than kMaxStreamBacklogBytes unread.
  bool StreamStart(ReplyToken token, HttpResponse head);
  bool StreamWrite(ReplyToken token, std::string_view data);
  void StreamEnd(ReplyToken token);
  static constexpr size_t kMaxStreamBacklogBytes = 4 * 1024 * 1024;

  // Stops accepting new connections; open ones are served on (until Close).
  void StopAccepting();

  // Stops accepting, closes every connection; on_closed runs once all
  // handles are closed. Afterwards the server may be destroyed.
  void Close(std::function<void()> on_closed);

  size_t connection_count() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wisp::triggers

#endif  // WISP_TRIGGERS_HTTP_SERVER_H_
