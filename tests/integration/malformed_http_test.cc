// Malformed and hostile HTTP sent over raw sockets to the real controller:
// each gets its expected status and, where the stream can no longer be
// trusted, a close; the controller answers a good request after each.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "tests/integration/controller_fixture.h"
#include "tests/triggers/http_test_util.h"

namespace wisp::testing {
namespace {

using ::testing::HasSubstr;
using triggers::testing::RawClient;

struct MalformedCase {
  const char* what;
  std::string request;
  const char* status_line;
  const char* code;  // in the JSON error body; empty for a success
  bool closes;
};

std::string Repeat(const std::string& piece, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += piece;
  return out;
}

class MalformedHttpTest : public ControllerTest {
 protected:
  // A good call on a fresh connection still gets its answer.
  void ExpectStillServing(const std::string& after) {
    RawClient client(controller_->port());
    ASSERT_TRUE(client.connected()) << "after " << after;
    ASSERT_TRUE(client.Send("POST /fn/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nok"));
    const std::string response = client.ReadResponse();
    EXPECT_THAT(response, HasSubstr("200 OK")) << "after " << after;
    EXPECT_EQ(triggers::testing::BodyOf(response), "ok") << "after " << after;
  }
};

TEST_F(MalformedHttpTest, EachGetsItsStatusAndTheControllerGoesOn) {
  DeployOk(ExamplePath("echo"), "echo");
  const std::string post = "POST /fn/echo HTTP/1.1\r\nHost: t\r\n";
  const MalformedCase cases[] = {
      {"HTTP/1.0 without Host", "GET /healthz HTTP/1.0\r\n\r\n", "HTTP/1.1 200 OK", "", true},
      {"HTTP/1.1 without Host", "GET /healthz HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request",
       "bad_request", true},
      {"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "HTTP/1.1 400 Bad Request",
       "bad_request", true},
      {"HTTP/9.9", "GET /healthz HTTP/9.9\r\nHost: t\r\n\r\n",
       "HTTP/1.1 505 HTTP Version Not Supported", "version_not_supported", true},
      {"binary garbage", std::string("\x01\x02\x03\x00\xff\r\n\r\n", 9), "HTTP/1.1 400 Bad Request",
       "bad_request", true},
      {"absurd Content-Length", post + "Content-Length: 99999999999999999999\r\n\r\n",
       "HTTP/1.1 400 Bad Request", "bad_request", true},
      {"negative Content-Length", post + "Content-Length: -1\r\n\r\n", "HTTP/1.1 400 Bad Request",
       "bad_request", true},
      {"two Content-Lengths", post + "Content-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
       "HTTP/1.1 400 Bad Request", "bad_request", true},
      {"Content-Length with chunked",
       post + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
       "HTTP/1.1 400 Bad Request", "bad_request", true},
      {"a chunk size that is not hex",
       post + "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
       "HTTP/1.1 400 Bad Request", "bad_request", true},
      {"a chunk size past 64 bits",
       post + "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nhello\r\n",
       "HTTP/1.1 400 Bad Request", "bad_request", true},
      {"chunks over the body limit",
       post + "Transfer-Encoding: chunked\r\n\r\n7fffffff\r\n", "HTTP/1.1 413 Payload Too Large",
       "payload_too_large", true},
      {"a body over the limit announced", post + "Content-Length: 99999999\r\n\r\n",
       "HTTP/1.1 413 Payload Too Large", "payload_too_large", true},
      {"a space before the colon", "GET /healthz HTTP/1.1\r\nHost : t\r\n\r\n",
       "HTTP/1.1 400 Bad Request", "bad_request", true},
      {"a NUL in a header", std::string("GET /healthz HTTP/1.1\r\nHost: t\r\nX: a\0b\r\n\r\n", 41),
       "HTTP/1.1 400 Bad Request", "bad_request", true},
      {"a 100 KB request line", "GET /" + std::string(100000, 'a') + " HTTP/1.1\r\nHost: t\r\n\r\n",
       "HTTP/1.1 431 Request Header Fields Too Large", "headers_too_large", true},
      {"2000 headers",
       "GET /healthz HTTP/1.1\r\nHost: t\r\n" + Repeat("X-A: b\r\n", 2000) + "\r\n",
       "HTTP/1.1 431 Request Header Fields Too Large", "headers_too_large", true},
      {"an unknown method", "BREW /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
       "HTTP/1.1 400 Bad Request", "bad_request", true},
      {"Expect over the limit", post + "Expect: 100-continue\r\nContent-Length: 99999999\r\n\r\n",
       "HTTP/1.1 413 Payload Too Large", "payload_too_large", true},
  };
  for (const MalformedCase& c : cases) {
    RawClient client(controller_->port());
    ASSERT_TRUE(client.connected());
    client.Send(c.request);  // the server may close before it has read everything
    if (*c.code == '\0') {
      const std::string response = client.ReadResponse();
      EXPECT_EQ(triggers::testing::StatusLineOf(response), c.status_line) << c.what << ": " << response;
      if (c.closes) {
        EXPECT_TRUE(client.ReadsEof()) << c.what << ": the connection stayed open";
      }
    } else {
      const std::string head = client.ReadHead();
      EXPECT_EQ(triggers::testing::StatusLineOf(head), c.status_line) << c.what << ": " << head;
      EXPECT_EQ(triggers::testing::HeaderOf(head, "Connection"), "close") << c.what;
      const std::string rest = client.ReadToEof();
      EXPECT_THAT(rest, HasSubstr("\"code\":\"" + std::string(c.code) + "\"")) << c.what;
    }
    ExpectStillServing(c.what);
  }
}

TEST_F(MalformedHttpTest, ContinueThenPipelinedRequestsAnswerInOrder) {
  DeployOk(ExamplePath("echo"), "echo");
  RawClient client(controller_->port());
  ASSERT_TRUE(client.Send(
      "POST /fn/echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"));
  EXPECT_EQ(triggers::testing::StatusLineOf(client.ReadHead()), "HTTP/1.1 100 Continue");
  ASSERT_TRUE(client.Send("first"
                          "POST /fn/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nsecond"
                          "POST /fn/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "2\r\nth\r\n3\r\nird\r\n0\r\n\r\n"));
  for (const char* want : {"first", "second", "third"}) {
    const std::string response = client.ReadResponse();
    EXPECT_THAT(response, HasSubstr("200 OK")) << want;
    EXPECT_EQ(triggers::testing::BodyOf(response), want);
  }
}

TEST_F(MalformedHttpTest, AConnectionResetMidRequestLeavesTheControllerServing) {
  DeployOk(ExamplePath("echo"), "echo");
  for (int i = 0; i < 20; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(controller_->port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    const std::string half = "POST /fn/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nhalf";
    ASSERT_EQ(::write(fd, half.data(), half.size()), static_cast<ssize_t>(half.size()));
    linger reset{1, 0};  // close sends RST
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    ::close(fd);
  }
  ExpectStillServing("20 connections reset mid-request");
}

}  // namespace
}  // namespace wisp::testing
