#include "triggers/http_server.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tests/triggers/http_test_util.h"

namespace wisp::triggers {
namespace {

using testing::BodyOf;
using testing::EchoHandler;
using testing::EchoResponse;
using testing::HeaderOf;
using testing::RawClient;
using testing::ServerThread;
using testing::StatusLineOf;
using testing::TestHandler;

// Holds requests until `batch` have arrived, then answers them newest first.
TestHandler ReverseHandler(size_t batch) {
  auto held = std::make_shared<std::vector<std::pair<ReplyToken, HttpRequest>>>();
  return [held, batch](HttpServer* server, uv_loop_t*, ReplyToken token, HttpRequest request) {
    held->emplace_back(token, std::move(request));
    if (held->size() < batch) return;
    for (auto it = held->rbegin(); it != held->rend(); ++it) {
      server->Reply(it->first, EchoResponse(it->first, it->second));
    }
    held->clear();
  };
}

// Answers from a uv_timer: request n of a connection waits 30 - 10 * (n % 3)
// ms, so pipelined requests are answered out of order.
struct DelayedReply {
  uv_timer_t timer;
  HttpServer* server;
  ReplyToken token;
  HttpRequest request;
};

TestHandler DelayedHandler() {
  return [](HttpServer* server, uv_loop_t* loop, ReplyToken token, HttpRequest request) {
    auto* delayed = new DelayedReply{{}, server, token, std::move(request)};
    uv_timer_init(loop, &delayed->timer);
    delayed->timer.data = delayed;
    uint64_t delay_ms = 30 - 10 * (token.sequence % 3);
    uv_timer_start(
        &delayed->timer,
        [](uv_timer_t* timer) {
          auto* d = static_cast<DelayedReply*>(timer->data);
          d->server->Reply(d->token, EchoResponse(d->token, d->request));
          uv_close(reinterpret_cast<uv_handle_t*>(timer),
                   [](uv_handle_t* handle) { delete static_cast<DelayedReply*>(handle->data); });
        },
        delay_ms, 0);
  };
}

std::string Expected(std::string_view method, std::string_view path, std::string_view query,
                     std::string_view headers, std::string_view body,
                     std::string_view x_test = "-") {
  return "method=" + std::string(method) + "\npath=" + std::string(path) +
         "\nquery=" + std::string(query) + "\nheaders=" + std::string(headers) +
         "\nx-test=" + std::string(x_test) + "\nbody=" + std::string(body);
}

// The first value of a header in a raw response ("" when absent).
// /stream answers with a stream: "first" at once, then "second" and the end
// 20 ms later (from a timer); anything else is echoed.
struct StreamTimer {
  uv_timer_t timer;
  HttpServer* server;
  ReplyToken token;
};

TestHandler StreamingHandler() {
  return [](HttpServer* server, uv_loop_t* loop, ReplyToken token, HttpRequest request) {
    if (request.path != "/stream") {
      server->Reply(token, EchoResponse(token, request));
      return;
    }
    HttpResponse head;
    head.headers.emplace_back("Content-Type", "application/x-ndjson");
    EXPECT_TRUE(server->StreamStart(token, head));
    EXPECT_TRUE(server->StreamWrite(token, "first\n"));
    EXPECT_TRUE(server->StreamWrite(token, ""));  // sends nothing, ends nothing
    auto* t = new StreamTimer{{}, server, token};
    uv_timer_init(loop, &t->timer);
    t->timer.data = t;
    uv_timer_start(
        &t->timer,
        [](uv_timer_t* timer) {
          auto* st = static_cast<StreamTimer*>(timer->data);
          EXPECT_TRUE(st->server->StreamWrite(st->token, "second\n"));
          st->server->StreamEnd(st->token);
          EXPECT_FALSE(st->server->StreamWrite(st->token, "late")) << "a stream went on after its end";
          uv_close(reinterpret_cast<uv_handle_t*>(timer),
                   [](uv_handle_t* handle) { delete static_cast<StreamTimer*>(handle->data); });
        },
        20, 0);
  };
}

TEST(HttpServerTest, StreamedReplyIsChunkedAndPipelinedRepliesWaitForItsEnd) {
  ServerThread server(StreamingHandler());
  RawClient client(server.port());
  ASSERT_TRUE(client.Send("GET /stream HTTP/1.1\r\nHost: a\r\n\r\n"
                          "GET /after HTTP/1.1\r\nHost: a\r\n\r\n"));
  std::string head = client.ReadHead();
  EXPECT_EQ("HTTP/1.1 200 OK", StatusLineOf(head));
  EXPECT_EQ("chunked", HeaderOf(head, "Transfer-Encoding"));
  EXPECT_EQ("", HeaderOf(head, "Content-Length"));
  std::vector<std::string> chunks;
  std::string chunk;
  do {
    ASSERT_TRUE(client.ReadChunk(&chunk)) << "the stream broke off after " << chunks.size() << " chunks";
    chunks.push_back(chunk);
  } while (!chunk.empty());
  EXPECT_EQ(chunks, (std::vector<std::string>{"first\n", "second\n", ""}));
  std::string after = client.ReadResponse();
  EXPECT_EQ("HTTP/1.1 200 OK", StatusLineOf(after));
  EXPECT_EQ(Expected("GET", "/after", "", "", ""), BodyOf(after))
      << "the pipelined reply must follow the stream's end";
}

TEST(HttpServerTest, StreamedReplyToHttp10EndsWithTheConnection) {
  ServerThread server(StreamingHandler());
  RawClient client(server.port());
  ASSERT_TRUE(client.Send("GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  std::string all = client.ReadToEof();
  EXPECT_EQ("HTTP/1.1 200 OK", StatusLineOf(all));
  EXPECT_EQ("close", HeaderOf(all, "Connection"));
  EXPECT_EQ("", HeaderOf(all, "Transfer-Encoding"));
  EXPECT_EQ("first\nsecond\n", BodyOf(all));
}

TEST(HttpServerTest, SimpleGet) {
  ServerThread server(EchoHandler());
  RawClient client(server.port());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.Send("GET /hello?x=1 HTTP/1.1\r\nHost: a\r\nX-Test: v\r\n\r\n"));
  std::string response = client.ReadResponse();
  EXPECT_EQ("HTTP/1.1 200 OK", StatusLineOf(response));
  EXPECT_EQ("text/plain; charset=utf-8", HeaderOf(response, "Content-Type"));
  EXPECT_EQ("", HeaderOf(response, "Connection"));
  EXPECT_EQ(Expected("GET", "/hello", "x=1", "x-test", "", "v"), BodyOf(response));
}

TEST(HttpServerTest, PostWithContentLength) {
  ServerThread server(EchoHandler());
  RawClient client(server.port());
  ASSERT_TRUE(client.Send("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"));
  std::string response = client.ReadResponse();
  EXPECT_EQ("HTTP/1.1 200 OK", StatusLineOf(response));
  EXPECT_EQ(Expected("POST", "/p", "", "content-length", "hello world"), BodyOf(response));
}

TEST(HttpServerTest, ChunkedBody) {
  ServerThread server(EchoHandler());
  RawClient client(server.port());
  ASSERT_TRUE(
      client.Send("POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
  std::string response = client.ReadResponse();
  EXPECT_EQ("HTTP/1.1 200 OK", StatusLineOf(response));
  EXPECT_EQ(Expected("POST", "/c", "", "transfer-encoding", "hello world"), BodyOf(response));
}

TEST(HttpServerTest, KeepAliveServesSequentialRequestsOnOneConnection) {
  ServerThread server(EchoHandler());
  RawClient client(server.port());
  std::string first_connection;
  for (int i = 0; i < 3; ++i) {
    std::string path = "/seq" + std::to_string(i);
    ASSERT_TRUE(client.Send("GET " + path + " HTTP/1.1\r\nHost: a\r\n\r\n"));
    std::string response = client.ReadResponse();
    EXPECT_EQ("HTTP/1.1 200 OK", StatusLineOf(response));
    EXPECT_EQ(Expected("GET", path, "", "", ""), BodyOf(response));
    if (i == 0) first_connection = HeaderOf(response, "X-Connection-Id");
    EXPECT_EQ(first_connection, HeaderOf(response, "X-Connection-Id"));
  }
}

TEST(HttpServerTest, PipelinedRepliesKeepRequestOrderWhenAnsweredInReverse) {
  ServerThread server(ReverseHandler(3));
  RawClient client(server.port());
  ASSERT_TRUE(
      client.Send("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                  "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\ntwo"
                  "GET /3 HTTP/1.1\r\nHost: a\r\n\r\n"));
  EXPECT_EQ(Expected("GET", "/1", "", "", ""), BodyOf(client.ReadResponse()));
  EXPECT_EQ(Expected("POST", "/2", "", "content-length", "two"),
            BodyOf(client.ReadResponse()));
  EXPECT_EQ(Expected("GET", "/3", "", "", ""), BodyOf(client.ReadResponse()));
}

TEST(HttpServerTest, PipelinedAsyncRepliesFromTimersKeepRequestOrder) {
  ServerThread server(DelayedHandler());
  RawClient client(server.port());
  ASSERT_TRUE(
      client.Send("GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
                  "GET /b HTTP/1.1\r\nHost: a\r\n\r\n"
                  "GET /c HTTP/1.1\r\nHost: a\r\n\r\n"));
  EXPECT_EQ(Expected("GET", "/a", "", "", ""), BodyOf(client.ReadResponse()));
  EXPECT_EQ(Expected("GET", "/b", "", "", ""), BodyOf(client.ReadResponse()));
  EXPECT_EQ(Expected("GET", "/c", "", "", ""), BodyOf(client.ReadResponse()));
}

TEST(HttpServerTest, ManyPipelinedRequestsAllAnswered) {
  ServerThread server(EchoHandler());
  RawClient client(server.port());
  std::string batch;
  const int kRequests = 500;  // well past the pause threshold
  for (int i = 0; i < kRequests; ++i) batch += "GET /" + std::to_string(i) + " HTTP/1.1\r\nHost: t\r\n\r\n";
  ASSERT_TRUE(client.Send(batch));
  for (int i = 0; i < kRequests; ++i) {
    std::string response = client.ReadResponse();
    ASSERT_EQ(Expected("GET", "/" + std::to_string(i), "", "", ""), BodyOf(response));
  }
}

TEST(HttpServerTest, LargeResponseIsWrittenCompletely) {
  const size_t kSize = 8 * 1024 * 1024;
  ServerThread server([&](HttpServer* s, uv_loop_t*, ReplyToken token, HttpRequest) {
    HttpResponse response;
    response.body.assign(kSize, 'x');
    s->Reply(token, std::move(response));
  });
  RawClient client(server.port());
  ASSERT_TRUE(client.Send("GET /big HTTP/1.1\r\nHost: t\r\n\r\nGET /big HTTP/1.1\r\nHost: t\r\n\r\n"));
  for (int i = 0; i < 2; ++i) {
    std::string response = client.ReadResponse();
    EXPECT_EQ("HTTP/1.1 200 OK", StatusLineOf(response));
    EXPECT_EQ(kSize, BodyOf(response).size());
  }
}

TEST(HttpServerTest, BodyOverLimitGets413AndClose) {
  HttpServerOptions options;
  options.max_body_bytes = 16;
  ServerThread server(EchoHandler(), options);
  RawClient client(server.port());
  ASSERT_TRUE(client.Send("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n"));
  std::string response = client.ReadResponse();
  EXPECT_EQ("HTTP/1.1 413 Payload Too Large", StatusLineOf(response));
  EXPECT_EQ("application/json", HeaderOf(response, "Content-Type"));
  EXPECT_EQ("close", HeaderOf(response, "Connection"));
  EXPECT_NE(std::string::npos, BodyOf(response).find("\"error\"")) << BodyOf(response);
  EXPECT_NE(std::string::npos, BodyOf(response).find("payload_too_large")) << BodyOf(response);
  EXPECT_TRUE(client.ReadsEof());
}

TEST(HttpServerTest, ChunkedBodyOverLimitGets413) {
  HttpServerOptions options;
  options.max_body_bytes = 16;
  ServerThread server(EchoHandler(), options);
  RawClient client(server.port());
  ASSERT_TRUE(
      client.Send("POST /p HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n"));
  EXPECT_EQ("HTTP/1.1 413 Payload Too Large", StatusLineOf(client.ReadResponse()));
  EXPECT_TRUE(client.ReadsEof());
}

TEST(HttpServerTest, HeadersOverLimitGet431) {
  HttpServerOptions options;
  options.max_header_bytes = 100;
  ServerThread server(EchoHandler(), options);
  RawClient client(server.port());
  ASSERT_TRUE(client.Send("GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(200, 'b') + "\r\n\r\n"));
  EXPECT_EQ("HTTP/1.1 431 Request Header Fields Too Large", StatusLineOf(client.ReadResponse()));
  EXPECT_TRUE(client.ReadsEof());
}

TEST(HttpServerTest, GarbageGets400AndClose) {
  ServerThread server(EchoHandler());
  RawClient client(server.port());
  ASSERT_TRUE(client.Send("THIS IS NOT HTTP\r\n\r\n"));
  std::string response = client.ReadResponse();
  EXPECT_EQ("HTTP/1.1 400 Bad Request", StatusLineOf(response));
  EXPECT_NE(std::string::npos, BodyOf(response).find("\"bad_request\"")) << BodyOf(response);
  EXPECT_TRUE(client.ReadsEof());
}

TEST(HttpServerTest, GarbageAfterGoodRequestAnswersBothInOrder) {
  ServerThread server(ReverseHandler(1));
  RawClient client(server.port());
  ASSERT_TRUE(client.Send("GET /ok HTTP/1.1\r\nHost: t\r\n\r\n\x01\x02garbage\r\n\r\n"));
  EXPECT_EQ("HTTP/1.1 200 OK", StatusLineOf(client.ReadResponse()));
  EXPECT_EQ("HTTP/1.1 400 Bad Request", StatusLineOf(client.ReadResponse()));
  EXPECT_TRUE(client.ReadsEof());
}

TEST(HttpServerTest, Http10WithoutKeepAliveRepliesThenCloses) {
  ServerThread server(EchoHandler());
  RawClient client(server.port());
  ASSERT_TRUE(client.Send("GET /old HTTP/1.0\r\n\r\n"));
  std::string response = client.ReadResponse();
  EXPECT_EQ("HTTP/1.1 200 OK", StatusLineOf(response));
  EXPECT_EQ("close", HeaderOf(response, "Connection"));
  EXPECT_EQ(Expected("GET", "/old", "", "", ""), BodyOf(response));
  EXPECT_TRUE(client.ReadsEof());
}

TEST(HttpServerTest, Http10WithKeepAliveStaysOpen) {
  ServerThread server(EchoHandler());
  RawClient client(server.port());
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(client.Send("GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    std::string response = client.ReadResponse();
    EXPECT_EQ("HTTP/1.1 200 OK", StatusLineOf(response));
    EXPECT_EQ("keep-alive", HeaderOf(response, "Connection"));
  }
}

TEST(HttpServerTest, ConnectionCloseHeaderClosesAfterReply) {
  ServerThread server(EchoHandler());
  RawClient client(server.port());
  ASSERT_TRUE(
      client.Send("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET /ignored HTTP/1.1\r\nHost: t\r\n\r\n"));
  EXPECT_EQ("close", HeaderOf(client.ReadResponse(), "Connection"));
  EXPECT_TRUE(client.ReadsEof());
}

TEST(HttpServerTest, ExpectContinueGets100BeforeBody) {
  ServerThread server(EchoHandler());
  RawClient client(server.port());
  ASSERT_TRUE(client.Send(
      "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  EXPECT_EQ("HTTP/1.1 100 Continue\r\n\r\n", client.ReadHead());
  ASSERT_TRUE(client.Send("hello"));
  std::string response = client.ReadResponse();
  EXPECT_EQ("HTTP/1.1 200 OK", StatusLineOf(response));
  EXPECT_EQ(Expected("POST", "/up", "", "content-length,expect", "hello"), BodyOf(response));
}

TEST(HttpServerTest, HeaderNamesAreLowerCased) {
  ServerThread server(EchoHandler());
  RawClient client(server.port());
  ASSERT_TRUE(client.Send(
      "GET / HTTP/1.1\r\nHOST: a\r\nX-TEST: Mixed Value\r\nAccept-Encoding: x\r\n\r\n"));
  EXPECT_EQ(Expected("GET", "/", "", "x-test,accept-encoding", "", "Mixed Value"),
            BodyOf(client.ReadResponse()));
}

TEST(HttpServerTest, HeadResponseHasLengthButNoBody) {
  ServerThread server(EchoHandler());
  RawClient client(server.port());
  ASSERT_TRUE(client.Send("HEAD /h HTTP/1.1\r\nHost: t\r\n\r\nGET /g HTTP/1.1\r\nHost: t\r\n\r\n"));
  std::string head = client.ReadHead();
  EXPECT_EQ("HTTP/1.1 200 OK", StatusLineOf(head));
  EXPECT_EQ(std::to_string(Expected("HEAD", "/h", "", "", "").size()),
            HeaderOf(head, "Content-Length"));
  EXPECT_EQ(Expected("GET", "/g", "", "", ""), BodyOf(client.ReadResponse()));
}

TEST(HttpServerTest, ClientDisconnectingMidRequestLeavesServerWorking) {
  ServerThread server(EchoHandler());
  {
    RawClient partial(server.port());
    ASSERT_TRUE(partial.Send("POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly some"));
  }
  RawClient client(server.port());
  ASSERT_TRUE(client.Send("GET /after HTTP/1.1\r\nHost: t\r\n\r\n"));
  EXPECT_EQ(Expected("GET", "/after", "", "", ""), BodyOf(client.ReadResponse()));
}

TEST(HttpServerTest, ReplyAfterClientLeftIsIgnored) {
  ServerThread server(DelayedHandler());
  {
    RawClient gone(server.port());
    ASSERT_TRUE(gone.Send("GET /gone HTTP/1.1\r\nHost: t\r\n\r\nGET /gone2 HTTP/1.1\r\nHost: t\r\n\r\n"));
  }
  RawClient client(server.port());
  ASSERT_TRUE(client.Send("GET /after HTTP/1.1\r\nHost: t\r\n\r\n"));
  EXPECT_EQ(Expected("GET", "/after", "", "", ""), BodyOf(client.ReadResponse()));
}

TEST(HttpServerTest, ConnectionsOverLimitGet503) {
  HttpServerOptions options;
  options.max_connections = 1;
  ServerThread server(EchoHandler(), options);
  RawClient first(server.port());
  ASSERT_TRUE(first.Send("GET /1 HTTP/1.1\r\nHost: t\r\n\r\n"));
  EXPECT_EQ("HTTP/1.1 200 OK", StatusLineOf(first.ReadResponse()));
  RawClient second(server.port());
  std::string response = second.ReadResponse();
  EXPECT_EQ("HTTP/1.1 503 Service Unavailable", StatusLineOf(response));
  EXPECT_NE(std::string::npos, BodyOf(response).find("too_many_connections")) << response;
  EXPECT_TRUE(second.ReadsEof());
}

HttpServerOptions ShortTimeouts() {
  HttpServerOptions options;
  options.header_timeout_ms = 300;
  options.body_timeout_ms = 300;
  options.idle_timeout_ms = 600;
  options.timeout_tick_ms = 50;
  return options;
}

TEST(HttpServerTest, SlowHeadersGet408AndClose) {
  ServerThread server(EchoHandler(), ShortTimeouts());
  RawClient slow(server.port());
  ASSERT_TRUE(slow.Send("GET /slow HTTP/1.1\r\nHost: t\r\nX-Drip: "));  // and nothing more
  std::string response = slow.ReadResponse();
  EXPECT_EQ("HTTP/1.1 408 Request Timeout", StatusLineOf(response)) << response;
  EXPECT_NE(std::string::npos, BodyOf(response).find("request_timeout")) << response;
  EXPECT_TRUE(slow.ReadsEof());

  RawClient silent(server.port());  // connects and never sends a byte
  response = silent.ReadResponse();
  EXPECT_EQ("HTTP/1.1 408 Request Timeout", StatusLineOf(response)) << response;
}

TEST(HttpServerTest, SlowBodyGets408) {
  ServerThread server(EchoHandler(), ShortTimeouts());
  RawClient slow(server.port());
  ASSERT_TRUE(slow.Send("POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"));
  std::string response = slow.ReadResponse();
  EXPECT_EQ("HTTP/1.1 408 Request Timeout", StatusLineOf(response)) << response;
  EXPECT_NE(std::string::npos, BodyOf(response).find("body")) << response;
}

TEST(HttpServerTest, IdleKeepAliveConnectionIsClosedButABusyOneIsNot) {
  ServerThread server(EchoHandler(), ShortTimeouts());
  RawClient busy(server.port());
  RawClient idle(server.port());
  ASSERT_TRUE(idle.Send("GET /once HTTP/1.1\r\nHost: t\r\n\r\n"));
  EXPECT_EQ("HTTP/1.1 200 OK", StatusLineOf(idle.ReadResponse()));
  // busy sends a request every 100 ms for longer than the idle timeout.
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(busy.Send("GET /again HTTP/1.1\r\nHost: t\r\n\r\n")) << "request " << i;
    ASSERT_EQ("HTTP/1.1 200 OK", StatusLineOf(busy.ReadResponse())) << "request " << i;
    usleep(100 * 1000);
  }
  EXPECT_TRUE(idle.ReadsEof()) << "the idle connection was kept open";
}

TEST(HttpServerTest, ListenOnBusyPortFails) {
  ServerThread first(EchoHandler());
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    HttpServer server(&loop, {}, [](ReplyToken, HttpRequest) {});
    Status status = server.Listen("127.0.0.1", first.port());
    EXPECT_EQ(Status::Code::kIOError, status.code()) << status.ToString();
    uv_run(&loop, UV_RUN_DEFAULT);  // frees the failed listener
  }
  EXPECT_EQ(0, uv_loop_close(&loop));
}

TEST(JsonErrorTest, BodyUsesSnakeCaseAndReplacesInvalidUtf8) {
  EXPECT_EQ(R"({"error":{"code":"not_found","message":"no such function: x"}})",
            JsonErrorBody("not_found", "no such function: x"));
  EXPECT_EQ(R"({"error":{"code":"bad","message":"a?b ü ?"}})", JsonErrorBody("bad",
                                                                             "a\xff"
                                                                             "b \xc3\xbc \xc3"));
  HttpResponse response = JsonErrorResponse(404, "not_found", "gone");
  EXPECT_EQ(404, response.status);
  EXPECT_EQ(R"({"error":{"code":"not_found","message":"gone"}})", response.body);
}

}  // namespace
}  // namespace wisp::triggers
