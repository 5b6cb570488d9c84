// The HTTP/1.1 trigger. One Connection per accepted socket owns its uv_tcp_t
// (freed in the close callback), a reused HttpRequestParser and an ordered
// queue of replies: a reply may arrive in any order but
// leaves in request order. Output produced during a loop iteration is
// collected per connection and flushed once from a uv_check_t; an idle handle
// keeps the loop from blocking in poll while output is waiting.
#include "triggers/http_server.h"

#include <deque>
#include <unordered_map>

#include "runtime/base/check.h"
#include "triggers/http_request_parser.h"
#include "triggers/http_wire.h"

namespace wisp::triggers {
namespace {

constexpr size_t kReadBufferSize = 64 * 1024;
// Reading pauses at this many unreplied requests and resumes at half of it.
constexpr size_t kMaxPendingRequests = 64;
constexpr size_t kResumePendingRequests = kMaxPendingRequests / 2;
constexpr int kListenBacklog = 511;
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

}  // namespace

struct HttpServer::Impl {
  enum class State { kCreated, kRunning, kClosing, kClosed };

  // A request awaiting its reply, in request order.
  struct PendingReply {
    ResponseFraming framing;
    bool ready = false;      // wire holds the serialized reply
    bool streaming = false;  // a started stream: wire holds what is not yet out
    std::string wire;
  };

  struct Connection : HttpRequestParser::Sink {
    Connection(Impl* server_in, uint64_t id_in)
        : server(server_in), id(id_in), parser(&server_in->options, this) {
      tcp.data = this;
      write_req.data = this;
    }
    uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp); }

    void OnContinueExpected(const HttpRequest&) override { server->SendContinue(this); }
    void OnRequest(HttpRequest request, const ResponseFraming& framing) override {
      server->Dispatch(this, std::move(request), framing);
    }

    uv_tcp_t tcp;
    uv_write_t write_req;
    Impl* server;
    const uint64_t id;
    HttpRequestParser parser;

    std::deque<PendingReply> pending;
    uint64_t next_sequence = 0;           // for the next complete request
    uint64_t first_pending_sequence = 0;  // of pending.front()

    std::string out;      // replies waiting for the next flush
    std::string writing;  // owned by the in-flight uv_write
    bool write_in_flight = false;
    bool dirty = false;  // listed in Impl::dirty_
    bool reading = false;
    bool read_done = false;  // no further requests will be parsed
    bool peer_eof = false;
    bool close_after_flush = false;
    bool closing = false;
    // For the read timeouts: the parser's phase, since when, and the last
    // time anything moved on the connection.
    HttpRequestParser::Phase phase = HttpRequestParser::Phase::kIdle;
    uint64_t phase_since_ms = 0;
    uint64_t phase_sequence = 0;
    uint64_t last_activity_ms = 0;
  };

  Impl(uv_loop_t* loop_in, HttpServerOptions options_in, Handler handler_in)
      : loop(loop_in),
        options(options_in),
        handler(std::move(handler_in)),
        read_buffer(new char[kReadBufferSize]) {}

  // --- Listening and lifecycle ---------------------------------------------

  Status Listen(const std::string& host, int port_in) {
    if (state != State::kCreated) return Status::InvalidArgument("server already listening");
    sockaddr_storage addr;
    int r = host.find(':') != std::string::npos
                ? uv_ip6_addr(host.c_str(), port_in, reinterpret_cast<sockaddr_in6*>(&addr))
                : uv_ip4_addr(host.c_str(), port_in, reinterpret_cast<sockaddr_in*>(&addr));
    if (r != 0) return Status::InvalidArgument("bad listen address: " + host);
    listener = new uv_tcp_t;
    uv_tcp_init(loop, listener);
    listener->data = this;
    r = uv_tcp_bind(listener, reinterpret_cast<const sockaddr*>(&addr), 0);
    if (r == 0) {
      r = uv_listen(reinterpret_cast<uv_stream_t*>(listener), kListenBacklog, OnConnection);
    }
    if (r != 0) {
      listener->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(listener), OnListenerClosed);
      listener = nullptr;
      return Status::IOError("listen on " + host + ":" + std::to_string(port_in) + ": " +
                             uv_strerror(r));
    }
    ++open_handles;
    bound_port = LocalPort();
    StartFlushHandles();
    state = State::kRunning;
    return Status::OK();
  }

  void StopAccepting() {
    if (state != State::kRunning || listener == nullptr) return;
    uv_close(reinterpret_cast<uv_handle_t*>(listener), OnListenerClosed);
    listener = nullptr;
  }

  int LocalPort() {
    if (listener == nullptr) return bound_port;
    sockaddr_storage addr;
    int length = sizeof(addr);
    uv_tcp_getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &length);
    if (addr.ss_family == AF_INET6) {
      return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
    }
    return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  }

  void StartFlushHandles() {
    uv_timer_init(loop, &timeout_timer);
    timeout_timer.data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(&timeout_timer));
    ++open_handles;
    if (options.header_timeout_ms > 0 || options.body_timeout_ms > 0 ||
        options.idle_timeout_ms > 0) {
      uv_timer_start(&timeout_timer, OnTimeoutTick, options.timeout_tick_ms,
                     options.timeout_tick_ms);
    }
    uv_check_init(loop, &check);
    check.data = this;
    uv_check_start(&check, OnCheck);
    uv_unref(reinterpret_cast<uv_handle_t*>(&check));
    uv_idle_init(loop, &idle);
    idle.data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(&idle));
    open_handles += 2;
  }

  void Close(std::function<void()> on_closed_in) {
    if (state == State::kClosing || state == State::kClosed) return;
    on_closed = std::move(on_closed_in);
    bool had_handles = state == State::kRunning;
    state = State::kClosing;
    if (had_handles) {
      if (listener != nullptr) {
        uv_close(reinterpret_cast<uv_handle_t*>(listener), OnListenerClosed);
        listener = nullptr;
      }
      uv_close(reinterpret_cast<uv_handle_t*>(&check), OnFlushHandleClosed);
      uv_close(reinterpret_cast<uv_handle_t*>(&idle), OnFlushHandleClosed);
      uv_close(reinterpret_cast<uv_handle_t*>(&timeout_timer), OnFlushHandleClosed);
    }
    std::vector<Connection*> open;
    open.reserve(connections.size());
    for (auto& entry : connections) open.push_back(entry.second);
    for (Connection* conn : open) CloseConnection(conn);
    MaybeFinishClose();
  }

  void OnHandleClosed() {
    --open_handles;
    MaybeFinishClose();
  }

  void MaybeFinishClose() {
    if (state != State::kClosing || open_handles != 0) return;
    state = State::kClosed;
    auto callback = std::move(on_closed);
    if (callback) callback();
  }

  static void OnListenerClosed(uv_handle_t* handle) {
    auto* server = static_cast<Impl*>(handle->data);
    delete reinterpret_cast<uv_tcp_t*>(handle);
    if (server != nullptr) server->OnHandleClosed();
  }

  static void OnFlushHandleClosed(uv_handle_t* handle) {
    static_cast<Impl*>(handle->data)->OnHandleClosed();
  }

  // --- Connections ---------------------------------------------------------

  static void OnConnection(uv_stream_t* listener_stream, int status) {
    auto* server = static_cast<Impl*>(listener_stream->data);
    if (status < 0 || server->state != State::kRunning) return;
    auto* conn = new Connection(server, server->next_connection_id++);
    uv_tcp_init(server->loop, &conn->tcp);
    ++server->open_handles;
    if (uv_accept(listener_stream, conn->stream()) != 0) {
      server->CloseConnection(conn);
      return;
    }
    uv_tcp_nodelay(&conn->tcp, 1);
    // A connection owes its first request line from the start.
    conn->last_activity_ms = conn->phase_since_ms = uv_now(server->loop);
    conn->phase = HttpRequestParser::Phase::kHeaders;
    bool over_limit = server->connections.size() >= server->options.max_connections;
    server->connections.emplace(conn->id, conn);
    if (over_limit) {
      server->FailConnection(conn, 503, "too_many_connections",
                             "the server has too many open connections");
      return;
    }
    server->StartReading(conn);
  }

  void CloseConnection(Connection* conn) {
    if (conn->closing) return;
    conn->closing = true;
    connections.erase(conn->id);
    StopReading(conn);
    uv_close(reinterpret_cast<uv_handle_t*>(&conn->tcp), OnConnectionClosed);
  }

  static void OnConnectionClosed(uv_handle_t* handle) {
    auto* conn = static_cast<Connection*>(handle->data);
    Impl* server = conn->server;
    if (conn->dirty) std::erase(server->dirty, conn);
    delete conn;
    server->OnHandleClosed();
  }

  // --- Reading and parsing -------------------------------------------------

  void StartReading(Connection* conn) {
    if (conn->reading || conn->read_done || conn->closing) return;
    conn->reading = true;
    uv_read_start(conn->stream(), OnAlloc, OnRead);
  }

  void StopReading(Connection* conn) {
    if (!conn->reading) return;
    conn->reading = false;
    uv_read_stop(conn->stream());
  }

  // Every read is consumed synchronously by OnRead, so all connections share
  // one buffer.
  static void OnAlloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
    Impl* server = static_cast<Connection*>(handle->data)->server;
    *buf = uv_buf_init(server->read_buffer.get(), kReadBufferSize);
  }

  static void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    auto* conn = static_cast<Connection*>(stream->data);
    Impl* server = conn->server;
    if (nread > 0) {
      server->Parse(conn, buf->base, static_cast<size_t>(nread));
    } else if (nread == UV_EOF) {
      server->OnPeerEof(conn);
    } else if (nread < 0) {
      server->CloseConnection(conn);
    }
  }

  void OnPeerEof(Connection* conn) {
    StopReading(conn);
    conn->read_done = true;
    conn->peer_eof = true;
    Drain(conn);
  }

  void Parse(Connection* conn, const char* data, size_t length) {
    ParseError error;
    HttpRequestParser::Outcome outcome = conn->parser.Execute(data, length, &error);
    if (outcome == HttpRequestParser::Outcome::kFailed && !conn->closing) {
      FailConnection(conn, error.status, error.code, error.message);
      return;
    }
    const uint64_t now = uv_now(loop);
    conn->last_activity_ms = now;
    if (conn->parser.phase() != conn->phase || conn->next_sequence != conn->phase_sequence) {
      conn->phase = conn->parser.phase();
      conn->phase_since_ms = now;
      conn->phase_sequence = conn->next_sequence;
    }
  }

  static void OnTimeoutTick(uv_timer_t* timer) {
    auto* server = static_cast<Impl*>(timer->data);
    const uint64_t now = uv_now(server->loop);
    std::vector<std::pair<Connection*, const char*>> expired;
    for (auto& [id, conn] : server->connections) {
      if (conn->closing) continue;
      const HttpServerOptions& o = server->options;
      const uint64_t in_phase = now - conn->phase_since_ms;
      // A connection whose reading wisp paused is not the client's fault.
      if (conn->reading && conn->phase == HttpRequestParser::Phase::kHeaders &&
          o.header_timeout_ms > 0 && in_phase >= o.header_timeout_ms) {
        expired.emplace_back(conn, "the request line and headers");
      } else if (conn->reading && conn->phase == HttpRequestParser::Phase::kBody &&
                 o.body_timeout_ms > 0 && in_phase >= o.body_timeout_ms) {
        expired.emplace_back(conn, "the request body");
      } else if (conn->phase == HttpRequestParser::Phase::kIdle && conn->pending.empty() &&
                 conn->out.empty() && !conn->write_in_flight && o.idle_timeout_ms > 0 &&
                 now - conn->last_activity_ms >= o.idle_timeout_ms) {
        expired.emplace_back(conn, nullptr);
      }
    }
    for (auto& [conn, what] : expired) {
      if (conn->closing) continue;
      if (what == nullptr) {
        server->CloseConnection(conn);
        continue;
      }
      conn->parser.Stop();
      server->FailConnection(conn, 408, "request_timeout",
                             std::string(what) + " did not arrive in time");
    }
  }

  // Rejects the connection's current input: the error reply follows the
  // replies still owed, then the connection closes.
  void FailConnection(Connection* conn, int status, std::string_view code,
                      std::string_view message) {
    conn->read_done = true;
    StopReading(conn);
    PendingReply& slot = conn->pending.emplace_back();
    slot.framing.keep_alive = false;
    slot.ready = true;
    AppendResponse(JsonErrorResponse(status, code, message), slot.framing, &slot.wire);
    ++conn->next_sequence;
    Drain(conn);
  }

  // The interim response goes out only when nothing is owed before it;
  // otherwise the client sends its body after its own timeout.
  void SendContinue(Connection* conn) {
    if (!conn->pending.empty()) return;
    conn->out.append(kContinue);
    MarkDirty(conn);
  }

  void Dispatch(Connection* conn, HttpRequest request, const ResponseFraming& framing) {
    conn->pending.emplace_back().framing = framing;
    if (!framing.keep_alive) {
      conn->read_done = true;
      StopReading(conn);
    } else if (conn->pending.size() >= kMaxPendingRequests) {
      StopReading(conn);
    }
    ReplyToken token{conn->id, conn->next_sequence++};
    handler(token, std::move(request));
    if (conn->closing) conn->parser.Stop();  // the handler closed the server
  }

  // --- Replies and writing -------------------------------------------------

  void Reply(ReplyToken token, HttpResponse response) {
    auto it = connections.find(token.connection_id);
    if (it == connections.end()) return;
    Connection* conn = it->second;
    conn->last_activity_ms = uv_now(loop);
    if (token.sequence < conn->first_pending_sequence) return;  // already answered
    size_t index = token.sequence - conn->first_pending_sequence;
    if (index >= conn->pending.size() || conn->pending[index].ready) return;
    PendingReply& slot = conn->pending[index];
    if (index == 0) {
      AppendResponse(response, slot.framing, &conn->out);
      if (!slot.framing.keep_alive) conn->close_after_flush = true;
      conn->pending.pop_front();
      ++conn->first_pending_sequence;
    } else {
      AppendResponse(response, slot.framing, &slot.wire);
      slot.ready = true;
    }
    Drain(conn);
  }

  // The unanswered slot of token, or nullptr (connection gone, answered).
  PendingReply* FindSlot(ReplyToken token, Connection** conn_out) {
    auto it = connections.find(token.connection_id);
    if (it == connections.end() || it->second->closing) return nullptr;
    Connection* conn = it->second;
    if (token.sequence < conn->first_pending_sequence) return nullptr;
    const size_t index = token.sequence - conn->first_pending_sequence;
    if (index >= conn->pending.size() || conn->pending[index].ready) return nullptr;
    *conn_out = conn;
    return &conn->pending[index];
  }

  bool StreamStart(ReplyToken token, const HttpResponse& head) {
    Connection* conn = nullptr;
    PendingReply* slot = FindSlot(token, &conn);
    if (slot == nullptr || slot->streaming) return false;
    slot->streaming = true;
    AppendStreamHead(head, slot->framing, &slot->wire);
    if (slot->framing.http10) slot->framing.keep_alive = false;
    conn->last_activity_ms = uv_now(loop);
    Drain(conn);
    return true;
  }

  bool StreamWrite(ReplyToken token, std::string_view data) {
    Connection* conn = nullptr;
    PendingReply* slot = FindSlot(token, &conn);
    if (slot == nullptr || !slot->streaming) return false;
    if (conn->out.size() + slot->wire.size() > kMaxStreamBacklogBytes) {
      CloseConnection(conn);  // the peer does not read what it asked for
      return false;
    }
    AppendStreamChunk(data, slot->framing, &slot->wire);
    conn->last_activity_ms = uv_now(loop);
    Drain(conn);
    return true;
  }

  void StreamEnd(ReplyToken token) {
    Connection* conn = nullptr;
    PendingReply* slot = FindSlot(token, &conn);
    if (slot == nullptr || !slot->streaming) return;
    AppendStreamEnd(slot->framing, &slot->wire);
    slot->streaming = false;
    slot->ready = true;
    Drain(conn);
  }

  // Moves ready replies at the head of the queue to the output buffer, and
  // what a stream at the head has so far.
  void Drain(Connection* conn) {
    while (!conn->pending.empty()) {
      PendingReply& slot = conn->pending.front();
      if (slot.streaming) {
        conn->out.append(slot.wire);
        slot.wire.clear();
        break;
      }
      if (!slot.ready) break;
      if (conn->out.empty()) {
        conn->out.swap(slot.wire);
      } else {
        conn->out.append(slot.wire);
      }
      if (!slot.framing.keep_alive) conn->close_after_flush = true;
      conn->pending.pop_front();
      ++conn->first_pending_sequence;
    }
    if (conn->peer_eof && conn->pending.empty()) conn->close_after_flush = true;
    if (!conn->out.empty() || conn->close_after_flush) MarkDirty(conn);
    if (!conn->reading && conn->pending.size() <= kResumePendingRequests) StartReading(conn);
  }

  void MarkDirty(Connection* conn) {
    if (conn->dirty || conn->closing) return;
    conn->dirty = true;
    dirty.push_back(conn);
    uv_idle_start(&idle, OnIdle);
  }

  static void OnIdle(uv_idle_t*) {}

  static void OnCheck(uv_check_t* handle) {
    auto* server = static_cast<Impl*>(handle->data);
    if (server->dirty.empty()) return;
    server->flushing.swap(server->dirty);
    for (Connection* conn : server->flushing) {
      conn->dirty = false;
      if (!conn->closing) server->Flush(conn);
    }
    server->flushing.clear();
    if (server->dirty.empty()) uv_idle_stop(&server->idle);
  }

  // Writes conn->out: as much as the socket takes now, the rest with uv_write.
  void Flush(Connection* conn) {
    if (conn->write_in_flight) return;  // OnWrite flushes what accumulated
    if (conn->out.empty()) {
      if (conn->close_after_flush) CloseConnection(conn);
      return;
    }
    uv_buf_t buf = uv_buf_init(conn->out.data(), conn->out.size());
    int written = uv_try_write(conn->stream(), &buf, 1);
    if (written == UV_EAGAIN) written = 0;
    if (written < 0) {
      CloseConnection(conn);
      return;
    }
    if (static_cast<size_t>(written) == conn->out.size()) {
      conn->out.clear();
      if (conn->close_after_flush) CloseConnection(conn);
      return;
    }
    conn->writing.swap(conn->out);
    conn->out.clear();
    buf = uv_buf_init(conn->writing.data() + written, conn->writing.size() - written);
    conn->write_in_flight = true;
    int r = uv_write(&conn->write_req, conn->stream(), &buf, 1, OnWrite);
    if (r != 0) {
      conn->write_in_flight = false;
      CloseConnection(conn);
    }
  }

  static void OnWrite(uv_write_t* req, int status) {
    auto* conn = static_cast<Connection*>(req->data);
    conn->write_in_flight = false;
    conn->last_activity_ms = uv_now(conn->server->loop);
    conn->writing.clear();
    if (conn->closing) return;
    if (status < 0) {
      conn->server->CloseConnection(conn);
      return;
    }
    if (!conn->out.empty() || conn->close_after_flush) conn->server->MarkDirty(conn);
  }

  uv_loop_t* loop;
  HttpServerOptions options;
  Handler handler;
  State state = State::kCreated;
  std::unique_ptr<char[]> read_buffer;
  uv_tcp_t* listener = nullptr;  // heap: freed in OnListenerClosed
  int bound_port = 0;
  uv_check_t check;
  uv_idle_t idle;
  uv_timer_t timeout_timer;  // read and idle timeouts
  int open_handles = 0;
  std::function<void()> on_closed;
  uint64_t next_connection_id = 1;
  std::unordered_map<uint64_t, Connection*> connections;
  std::vector<Connection*> dirty;     // connections with output to flush
  std::vector<Connection*> flushing;  // dirty's storage during OnCheck
};

HttpServer::HttpServer(uv_loop_t* loop, HttpServerOptions options, Handler handler)
    : impl_(std::make_unique<Impl>(loop, options, std::move(handler))) {}

HttpServer::~HttpServer() { WISP_CHECK(impl_->open_handles == 0); }

Status HttpServer::Listen(const std::string& host, int port) { return impl_->Listen(host, port); }

int HttpServer::port() const { return impl_->bound_port; }

bool HttpServer::StreamStart(ReplyToken token, HttpResponse head) {
  return impl_->StreamStart(token, head);
}

bool HttpServer::StreamWrite(ReplyToken token, std::string_view data) {
  return impl_->StreamWrite(token, data);
}

void HttpServer::StreamEnd(ReplyToken token) { impl_->StreamEnd(token); }

void HttpServer::Reply(ReplyToken token, HttpResponse response) {
  impl_->Reply(token, std::move(response));
}

void HttpServer::Close(std::function<void()> on_closed) { impl_->Close(std::move(on_closed)); }

void HttpServer::StopAccepting() { impl_->StopAccepting(); }

size_t HttpServer::connection_count() const { return impl_->connections.size(); }

}  // namespace wisp::triggers
