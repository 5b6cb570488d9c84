// A small blocking HTTP/1.1 client over one keep-alive TCP connection, used by
// the CLI and the tests. Responses are parsed with http_parser (Content-Length,
// chunked, and read-until-close bodies).
// Threading: one thread at a time per client.
#ifndef WISP_RUNTIME_HTTP_CLIENT_H_
#define WISP_RUNTIME_HTTP_CLIENT_H_

#include <functional>
#include <string>
#include <string_view>

#include "runtime/base/status.h"
#include "triggers/http_server.h"

namespace wisp::runtime {

struct HttpClientResponse {
  int status = 0;
  triggers::HeaderList headers;  // names lower-cased
  std::string body;

  const std::string* Header(std::string_view name) const;
};

// Splits "http://host:port[/]" into host and port (default 80). Only plain
// http is accepted. InvalidArgument names what is wrong.
Status ParseServerUrl(std::string_view url, std::string* host, int* port);

class HttpClient {
 public:
  // Connects lazily on the first request; reconnects once if the server
  // closed an idle keep-alive connection. timeout_ms bounds each request.
  HttpClient(std::string host, int port, int timeout_ms = 60000);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends one request and waits for the full response. Host and
  // Content-Length are added. Unavailable when the server cannot be reached,
  // Timeout when it does not answer in time, Corruption on a malformed reply.
  StatusOr<HttpClientResponse> Request(std::string_view method, std::string_view target,
                                       const triggers::HeaderList& headers = {},
                                       std::string_view body = {});

  void Close();

  // progress(sent, total) runs as a request's bytes leave (from Request's
  // thread); empty: none.
  void set_progress(std::function<void(size_t sent, size_t total)> progress) {
    progress_ = std::move(progress);
  }

 private:
  Status Connect();
  std::string host_;
  int port_;
  int timeout_ms_;
  int fd_ = -1;
  std::function<void(size_t sent, size_t total)> progress_;
};

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_HTTP_CLIENT_H_
