#include "runtime/http_client.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <thread>

#include "tests/triggers/http_test_util.h"

namespace wisp::runtime {
namespace {

using triggers::testing::EchoHandler;
using triggers::testing::ServerThread;

// A listening socket on 127.0.0.1:<free port>.
int ListenLoopback(int* port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  listen(fd, 16);
  socklen_t length = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length);
  *port = ntohs(addr.sin_port);
  return fd;
}

// Reads from fd until the end of a request head (bodies are not expected).
std::string ReadRequestHead(int fd) {
  std::string request;
  char chunk[1024];
  while (request.find("\r\n\r\n") == std::string::npos) {
    ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) break;
    request.append(chunk, static_cast<size_t>(n));
  }
  return request;
}

// A hand-written server: accepts `connections` connections one after another
// and runs serve(fd) on each.
class RawServer {
 public:
  RawServer(int connections, std::function<void(int fd)> serve) {
    listen_fd_ = ListenLoopback(&port_);
    thread_ = std::thread([this, connections, serve] {
      for (int i = 0; i < connections; ++i) {
        int fd = accept(listen_fd_, nullptr, nullptr);
        if (fd < 0) return;
        serve(fd);
        close(fd);
      }
    });
  }
  ~RawServer() {
    thread_.join();
    close(listen_fd_);
  }
  int port() const { return port_; }

 private:
  int listen_fd_;
  int port_ = 0;
  std::thread thread_;
};

TEST(HttpClientTest, GetAndPostRoundTrip) {
  ServerThread server(EchoHandler());
  HttpClient client("127.0.0.1", server.port());
  auto get = client.Request("GET", "/fn/x?a=1", {{"X-Test", "t"}});
  ASSERT_TRUE(get.ok()) << get.status().ToString();
  EXPECT_EQ(200, get->status);
  EXPECT_EQ("method=GET\npath=/fn/x\nquery=a=1\nheaders=x-test\nx-test=t\nbody=", get->body);
  ASSERT_NE(nullptr, get->Header("content-type"));
  EXPECT_EQ("text/plain; charset=utf-8", *get->Header("content-type"));

  auto post = client.Request("POST", "/p", {}, "payload");
  ASSERT_TRUE(post.ok()) << post.status().ToString();
  EXPECT_EQ(200, post->status);
  EXPECT_EQ("method=POST\npath=/p\nquery=\nheaders=content-length\nx-test=-\nbody=payload",
            post->body);
}

TEST(HttpClientTest, ReusesKeepAliveConnection) {
  ServerThread server(EchoHandler());
  HttpClient client("127.0.0.1", server.port());
  std::string first_connection;
  for (int i = 0; i < 3; ++i) {
    auto response = client.Request("GET", "/");
    ASSERT_TRUE(response.ok()) << response.status().ToString();
    const std::string* id = response->Header("x-connection-id");
    ASSERT_NE(nullptr, id);
    if (i == 0) first_connection = *id;
    EXPECT_EQ(first_connection, *id);
  }
}

TEST(HttpClientTest, ReadsChunkedResponse) {
  RawServer server(1, [](int fd) {
    ReadRequestHead(fd);
    std::string reply =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Kind: Chunked\r\n\r\n"
        "4\r\nwisp\r\n7\r\n rocks!\r\n0\r\n\r\n";
    send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
    ReadRequestHead(fd);  // until the client closes
  });
  HttpClient client("127.0.0.1", server.port(), 5000);
  auto response = client.Request("GET", "/");
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(200, response->status);
  EXPECT_EQ("wisp rocks!", response->body);
  ASSERT_NE(nullptr, response->Header("x-kind"));
  EXPECT_EQ("Chunked", *response->Header("x-kind"));
  client.Close();
}

TEST(HttpClientTest, ReadsBodyUntilClose) {
  RawServer server(1, [](int fd) {
    ReadRequestHead(fd);
    std::string reply = "HTTP/1.0 200 OK\r\n\r\nuntil the end";
    send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
  });
  HttpClient client("127.0.0.1", server.port(), 5000);
  auto response = client.Request("GET", "/");
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ("until the end", response->body);
}

TEST(HttpClientTest, ReconnectsWhenIdleConnectionWasClosed) {
  RawServer server(2, [](int fd) {
    ReadRequestHead(fd);
    std::string reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
    // Then close, as a server dropping an idle keep-alive connection does.
  });
  HttpClient client("127.0.0.1", server.port(), 5000);
  for (int i = 0; i < 2; ++i) {
    auto response = client.Request("GET", "/");
    ASSERT_TRUE(response.ok()) << "request " << i << ": " << response.status().ToString();
    EXPECT_EQ("ok", response->body);
  }
}

TEST(HttpClientTest, MalformedResponseIsCorruption) {
  RawServer server(1, [](int fd) {
    ReadRequestHead(fd);
    std::string reply = "NOT HTTP AT ALL\r\n\r\n";
    send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
  });
  HttpClient client("127.0.0.1", server.port(), 5000);
  auto response = client.Request("GET", "/");
  EXPECT_EQ(Status::Code::kCorruption, response.status().code()) << response.status().ToString();
}

TEST(HttpClientTest, ConnectionRefusedIsUnavailable) {
  int port = 0;
  close(ListenLoopback(&port));  // a port nobody listens on
  HttpClient client("127.0.0.1", port, 2000);
  auto response = client.Request("GET", "/");
  EXPECT_EQ(Status::Code::kUnavailable, response.status().code()) << response.status().ToString();
}

TEST(HttpClientTest, SilentServerTimesOut) {
  int port = 0;
  int listen_fd = ListenLoopback(&port);  // the kernel accepts; nobody answers
  HttpClient client("127.0.0.1", port, 200);
  auto response = client.Request("GET", "/");
  EXPECT_EQ(Status::Code::kTimeout, response.status().code()) << response.status().ToString();
  close(listen_fd);
}

TEST(ParseServerUrlTest, Table) {
  const struct {
    std::string url;
    bool ok;
    std::string host;
    int port;
  } cases[] = {
      {"http://127.0.0.1:8080", true, "127.0.0.1", 8080},
      {"http://localhost:9/", true, "localhost", 9},
      {"http://example.com", true, "example.com", 80},
      {"http://[::1]:8080", true, "::1", 8080},
      {"http://[::1]", true, "::1", 80},
      {"https://127.0.0.1:8080", false, "", 0},
      {"127.0.0.1:8080", false, "", 0},
      {"ftp://host:21", false, "", 0},
      {"http://host:0", false, "", 0},
      {"http://host:65536", false, "", 0},
      {"http://host:80a", false, "", 0},
      {"http://host:", false, "", 0},
      {"http://:8080", false, "", 0},
      {"http://", false, "", 0},
      {"http://host:8080/path", false, "", 0},
  };
  for (const auto& c : cases) {
    std::string host;
    int port = 0;
    Status status = ParseServerUrl(c.url, &host, &port);
    EXPECT_EQ(c.ok, status.ok()) << c.url << ": " << status.ToString();
    if (!c.ok || !status.ok()) continue;
    EXPECT_EQ(c.host, host) << c.url;
    EXPECT_EQ(c.port, port) << c.url;
  }
}

TEST(ParseServerUrlTest, HttpsMessageSaysUseHttp) {
  std::string host;
  int port = 0;
  Status status = ParseServerUrl("https://x:1", &host, &port);
  EXPECT_EQ(Status::Code::kInvalidArgument, status.code());
  EXPECT_EQ("https is not supported; use http://", status.message());
}

}  // namespace
}  // namespace wisp::runtime
