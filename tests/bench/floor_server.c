/* The floor: a bare libuv HTTP/1.1 keep-alive "hello" server on http_parser.
 *
 * Every request, whatever its method, target or body, is answered with
 * "hello, world". Pipelined requests are parsed in one pass over each read and
 * all their replies leave in one uv_write, so the server does the least work
 * libuv and http_parser allow: the figure wisp is measured against.
 *
 * Usage: wisp_bench_floor PORT   (binds 127.0.0.1 only; prints only errors)
 */
#include <http_parser.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static const char kReply[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 12\r\n"
    "\r\n"
    "hello, world";
#define REPLY_LEN (sizeof(kReply) - 1)
#define READ_BUF_SIZE 65536

typedef struct conn {
  uv_tcp_t tcp; /* first member: the handle's address is the conn's */
  http_parser parser;
  size_t replies; /* complete requests seen in the current read */
  int close_after; /* a request asked to close: close once replies are written */
  int closing;
  char read_buf[READ_BUF_SIZE];
} conn;

typedef struct write_req {
  uv_write_t req;
  conn* c;
  int close_after;
  char data[]; /* replies, back to back */
} write_req;

static http_parser_settings settings;

static void on_close(uv_handle_t* handle) { free(handle->data); }

static void close_conn(conn* c) {
  if (c->closing) return;
  c->closing = 1;
  uv_close((uv_handle_t*)&c->tcp, on_close);
}

static int on_message_complete(http_parser* parser) {
  conn* c = parser->data;
  c->replies++;
  if (!http_should_keep_alive(parser)) {
    c->close_after = 1;
    return 1; /* stop parsing: nothing after a closing request is answered */
  }
  return 0;
}

static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf) {
  (void)suggested;
  conn* c = handle->data;
  *buf = uv_buf_init(c->read_buf, READ_BUF_SIZE);
}

static void on_write(uv_write_t* req, int status) {
  write_req* w = (write_req*)req;
  if (status < 0 || w->close_after) close_conn(w->c);
  free(w);
}

static void flush_replies(conn* c) {
  size_t n = c->replies;
  c->replies = 0;
  if (n == 0) {
    if (c->close_after) close_conn(c);
    return;
  }
  write_req* w = malloc(sizeof(write_req) + n * REPLY_LEN);
  if (w == NULL) {
    fprintf(stderr, "floor: out of memory\n");
    close_conn(c);
    return;
  }
  w->c = c;
  w->close_after = c->close_after;
  for (size_t i = 0; i < n; i++) memcpy(w->data + i * REPLY_LEN, kReply, REPLY_LEN);
  uv_buf_t buf = uv_buf_init(w->data, (unsigned int)(n * REPLY_LEN));
  int rc = uv_write(&w->req, (uv_stream_t*)&c->tcp, &buf, 1, on_write);
  if (rc < 0) {
    free(w);
    close_conn(c);
  }
}

static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  conn* c = stream->data;
  if (nread < 0) {
    if (nread != UV_EOF && nread != UV_ECONNRESET) fprintf(stderr, "floor: read: %s\n", uv_strerror((int)nread));
    close_conn(c);
    return;
  }
  if (nread == 0 || c->close_after) return;
  size_t parsed = http_parser_execute(&c->parser, &settings, buf->base, (size_t)nread);
  enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);
  if (err != HPE_OK && !(err == HPE_CB_message_complete && c->close_after)) {
    (void)parsed;
    c->replies = 0;
    close_conn(c);
    return;
  }
  if (c->close_after) uv_read_stop(stream);
  flush_replies(c);
}

static void on_connection(uv_stream_t* server, int status) {
  if (status < 0) {
    fprintf(stderr, "floor: accept: %s\n", uv_strerror(status));
    return;
  }
  conn* c = calloc(1, sizeof(conn));
  if (c == NULL) {
    fprintf(stderr, "floor: out of memory\n");
    return;
  }
  uv_tcp_init(server->loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(server, (uv_stream_t*)&c->tcp) < 0) {
    close_conn(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  uv_read_start((uv_stream_t*)&c->tcp, on_alloc, on_read);
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s PORT\n", argv[0]);
    return 2;
  }
  int port = atoi(argv[1]);
  if (port <= 0 || port > 65535) {
    fprintf(stderr, "floor: bad port: %s\n", argv[1]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  http_parser_settings_init(&settings);
  settings.on_message_complete = on_message_complete;

  uv_loop_t* loop = uv_default_loop();
  uv_tcp_t server;
  uv_tcp_init(loop, &server);
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", port, &addr);
  int rc = uv_tcp_bind(&server, (const struct sockaddr*)&addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t*)&server, 1024, on_connection);
  if (rc < 0) {
    fprintf(stderr, "floor: listen on 127.0.0.1:%d: %s\n", port, uv_strerror(rc));
    return 1;
  }
  return uv_run(loop, UV_RUN_DEFAULT);
}
