// Test helpers for the HTTP trigger and client: an HttpServer on its own loop
// thread, and a raw-socket client that reads responses byte-exactly.
#ifndef WISP_TESTS_TRIGGERS_HTTP_TEST_UTIL_H_
#define WISP_TESTS_TRIGGERS_HTTP_TEST_UTIL_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "triggers/http_server.h"

namespace wisp::triggers::testing {

// A handler with access to the server (to Reply) and its loop (for timers).
using TestHandler =
    std::function<void(HttpServer* server, uv_loop_t* loop, ReplyToken token, HttpRequest request)>;

// A deterministic description of a request: method, path, query, header
// names (but host), the x-test header and the body, one per line.
inline std::string DescribeRequest(const HttpRequest& request) {
  std::string names;
  for (const auto& header : request.headers) {
    if (header.first == "host") continue;  // every HTTP/1.1 request carries one
    if (!names.empty()) names += ",";
    names += header.first;
  }
  const std::string* x_test = request.Header("x-test");
  return "method=" + request.method + "\npath=" + request.path + "\nquery=" + request.query +
         "\nheaders=" + names + "\nx-test=" + (x_test ? *x_test : "-") + "\nbody=" + request.body;
}

inline HttpResponse EchoResponse(ReplyToken token, const HttpRequest& request) {
  HttpResponse response;
  response.headers.emplace_back("X-Connection-Id", std::to_string(token.connection_id));
  response.body = DescribeRequest(request);
  return response;
}

inline TestHandler EchoHandler() {
  return [](HttpServer* server, uv_loop_t*, ReplyToken token, HttpRequest request) {
    server->Reply(token, EchoResponse(token, request));
  };
}

// Runs an HttpServer on 127.0.0.1:<free port> in a background loop thread.
// Every server call happens on that thread; the destructor stops it through
// uv_async_send, closes the server and joins.
class ServerThread {
 public:
  explicit ServerThread(TestHandler handler, HttpServerOptions options = {}) {
    std::promise<int> port;
    auto ready = port.get_future();
    thread_ = std::thread([&] { Run(std::move(handler), options, &port); });
    port_ = ready.get();
  }
  ~ServerThread() {
    if (port_ > 0) uv_async_send(&stop_);
    thread_.join();
  }
  ServerThread(const ServerThread&) = delete;
  ServerThread& operator=(const ServerThread&) = delete;

  int port() const { return port_; }

 private:
  void Run(TestHandler handler, HttpServerOptions options, std::promise<int>* port) {
    uv_loop_init(&loop_);
    uv_async_init(&loop_, &stop_, OnStop);
    stop_.data = this;
    server_ = std::make_unique<HttpServer>(
        &loop_, options, [this, handler](ReplyToken token, HttpRequest request) {
          handler(server_.get(), &loop_, token, std::move(request));
        });
    Status status = server_->Listen("127.0.0.1", 0);
    if (!status.ok()) {
      uv_close(reinterpret_cast<uv_handle_t*>(&stop_), nullptr);
      uv_run(&loop_, UV_RUN_DEFAULT);
      server_.reset();
      uv_loop_close(&loop_);
      port->set_value(-1);
      return;
    }
    port->set_value(server_->port());
    uv_run(&loop_, UV_RUN_DEFAULT);
    server_.reset();
    uv_loop_close(&loop_);
  }

  static void OnStop(uv_async_t* async) {
    auto* self = static_cast<ServerThread*>(async->data);
    self->server_->Close([] {});
    uv_close(reinterpret_cast<uv_handle_t*>(async), nullptr);
  }

  std::thread thread_;
  uv_loop_t loop_;
  uv_async_t stop_;
  std::unique_ptr<HttpServer> server_;
  int port_ = -1;
};

// A blocking client socket with a receive timeout, for byte-level tests.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    timeval timeout{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~RawClient() { Close(); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }

  bool Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Bytes up to and including the next "\r\n\r\n" (an interim response).
  std::string ReadHead() {
    size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return TakeAll();
    }
    return Take(end + 4);
  }

  // One full response framed by Content-Length (what the server always sends).
  std::string ReadResponse() {
    std::string head = ReadHead();
    size_t length = ContentLength(head);
    while (buffer_.size() < length) {
      if (!Fill()) return head + TakeAll();
    }
    return head + Take(length);
  }

  // One chunk of a chunked body into *data ("" for the last chunk); false
  // when the connection ends or times out first, or the framing is broken.
  bool ReadChunk(std::string* data) {
    size_t end;
    while ((end = buffer_.find("\r\n")) == std::string::npos) {
      if (!Fill()) return false;
    }
    size_t size = 0;
    try {
      size = std::stoul(buffer_.substr(0, end), nullptr, 16);
    } catch (...) {
      return false;
    }
    while (buffer_.size() < end + 2 + size + 2) {
      if (!Fill()) return false;
    }
    *data = buffer_.substr(end + 2, size);
    if (buffer_.compare(end + 2 + size, 2, "\r\n") != 0) return false;
    buffer_.erase(0, end + 2 + size + 2);
    return true;
  }

  // Everything until the server closes the connection.
  std::string ReadToEof() {
    while (Fill()) {
    }
    return TakeAll();
  }

  // True when the server closes the connection (and sends nothing more).
  bool ReadsEof() {
    char byte;
    ssize_t n = recv(fd_, &byte, 1, 0);
    return n == 0 && buffer_.empty();
  }

  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  static size_t ContentLength(const std::string& head) {
    static constexpr std::string_view kName = "\r\nContent-Length: ";
    size_t at = head.find(kName);
    if (at == std::string::npos) return 0;
    return std::stoul(head.substr(at + kName.size()));
  }

 private:
  bool Fill() {
    char chunk[4096];
    ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<size_t>(n));
    return true;
  }
  std::string Take(size_t n) {
    std::string taken = buffer_.substr(0, n);
    buffer_.erase(0, n);
    return taken;
  }
  std::string TakeAll() { return Take(buffer_.size()); }

  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

// The body of a raw response (after the blank line).
inline std::string BodyOf(const std::string& response) {
  size_t at = response.find("\r\n\r\n");
  return at == std::string::npos ? "" : response.substr(at + 4);
}

// The status line of a raw response, without CRLF.
inline std::string StatusLineOf(const std::string& response) {
  return response.substr(0, response.find("\r\n"));
}

// The value of header name (as written) in a raw response; empty if absent.
inline std::string HeaderOf(const std::string& response, const std::string& name) {
  const std::string key = "\r\n" + name + ": ";
  const size_t at = response.find(key);
  if (at == std::string::npos) return "";
  const size_t start = at + key.size();
  return response.substr(start, response.find("\r\n", start) - start);
}

}  // namespace wisp::triggers::testing

#endif  // WISP_TESTS_TRIGGERS_HTTP_TEST_UTIL_H_
