// A blocking HTTP/1.1 client: a non-blocking socket driven by poll() against
// one deadline per request, responses parsed with http_parser.
#include "runtime/http_client.h"
#include "runtime/base/ascii.h"

#include <errno.h>
#include <http_parser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

namespace wisp::runtime {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kHttpScheme = "http://";
constexpr std::string_view kHttpsScheme = "https://";
constexpr size_t kReadChunk = 16 * 1024;

// Milliseconds left before deadline, never negative.
int RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// Waits until fd is ready for events. Timeout when the deadline passes.
Status WaitFor(int fd, short events, Clock::time_point deadline) {
  while (true) {
    pollfd pfd{fd, events, 0};
    int r = poll(&pfd, 1, RemainingMs(deadline));
    if (r > 0) return Status::OK();
    if (r == 0) return Status::Timeout("no response from server in time");
    if (errno != EINTR) return Status::FromErrno("poll", errno);
  }
}

Status ParsePort(std::string_view text, int* port) {
  if (text.empty() || text.size() > 5)
    return Status::InvalidArgument("bad port: '" + std::string(text) + "'");
  int value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return Status::InvalidArgument("bad port: '" + std::string(text) + "'");
    value = value * 10 + (c - '0');
  }
  if (value < 1 || value > 65535)
    return Status::InvalidArgument("port out of range: " + std::string(text));
  *port = value;
  return Status::OK();
}

// "host", "host:port", "[v6]" or "[v6]:port".
Status SplitAuthority(std::string_view authority, std::string* host, int* port) {
  std::string_view host_part = authority;
  std::string_view port_part;
  bool has_port = false;
  if (authority.starts_with('[')) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return Status::InvalidArgument("unterminated '[' in host");
    host_part = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after.front() != ':')
      return Status::InvalidArgument("junk after ']' in host");
    has_port = !after.empty();
    if (has_port) port_part = after.substr(1);
  } else if (size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host_part = authority.substr(0, colon);
    port_part = authority.substr(colon + 1);
    has_port = true;
  }
  if (host_part.empty()) return Status::InvalidArgument("server URL has no host");
  *port = 80;
  if (has_port) WISP_RETURN_IF_ERROR(ParsePort(port_part, port));
  *host = std::string(host_part);
  return Status::OK();
}


std::string BuildRequest(std::string_view method, std::string_view target,
                         const triggers::HeaderList& headers, std::string_view body,
                         const std::string& host, int port) {
  std::string wire;
  wire.reserve(128 + body.size());
  wire.append(method).append(" ").append(target.empty() ? "/" : target).append(" HTTP/1.1\r\n");
  bool has_host = false;
  for (const auto& [name, value] : headers) {
    if (EqualsIgnoreCase(name, "content-length")) continue;
    if (EqualsIgnoreCase(name, "host")) has_host = true;
    wire.append(name).append(": ").append(value).append("\r\n");
  }
  if (!has_host) {
    bool v6 = host.find(':') != std::string::npos;
    wire.append("Host: ").append(v6 ? "[" + host + "]" : host);
    wire.append(":").append(std::to_string(port)).append("\r\n");
  }
  if (!body.empty() || (method != "GET" && method != "HEAD")) {
    wire.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  }
  wire.append("\r\n").append(body);
  return wire;
}

// The http_parser side of one response.
struct ResponseReader {
  explicit ResponseReader(bool head_in) : head(head_in) {
    http_parser_init(&parser, HTTP_RESPONSE);
    parser.data = this;
    http_parser_settings_init(&settings);
    settings.on_header_field = OnHeaderField;
    settings.on_header_value = OnHeaderValue;
    settings.on_headers_complete = OnHeadersComplete;
    settings.on_body = OnBody;
    settings.on_message_complete = OnMessageComplete;
  }

  // Feeds bytes (length 0 signals EOF). Corruption on a malformed response.
  Status Feed(const char* data, size_t length) {
    size_t parsed = http_parser_execute(&parser, &settings, data, length);
    http_errno error = HTTP_PARSER_ERRNO(&parser);
    if (error == HPE_PAUSED || complete) return Status::OK();
    if (error != HPE_OK || parsed != length) {
      return Status::Corruption(std::string("malformed HTTP response: ") +
                                http_errno_description(error));
    }
    return Status::OK();
  }

  static ResponseReader* From(http_parser* p) { return static_cast<ResponseReader*>(p->data); }

  static int OnHeaderField(http_parser* p, const char* at, size_t length) {
    ResponseReader* r = From(p);
    auto& headers = r->response.headers;
    if (r->in_value || headers.empty()) headers.emplace_back();
    r->in_value = false;
    AppendLowerCase(at, length, &headers.back().first);
    return 0;
  }

  static int OnHeaderValue(http_parser* p, const char* at, size_t length) {
    ResponseReader* r = From(p);
    r->in_value = true;
    r->response.headers.back().second.append(at, length);
    return 0;
  }

  static int OnHeadersComplete(http_parser* p) {
    ResponseReader* r = From(p);
    r->response.status = p->status_code;
    return r->head ? 1 : 0;  // a HEAD response has no body
  }

  static int OnBody(http_parser* p, const char* at, size_t length) {
    From(p)->response.body.append(at, length);
    return 0;
  }

  static int OnMessageComplete(http_parser* p) {
    ResponseReader* r = From(p);
    if (p->status_code / 100 == 1) {  // interim (100 Continue): the real one follows
      r->response = HttpClientResponse();
      r->in_value = false;
      return 0;
    }
    r->complete = true;
    r->keep_alive = http_should_keep_alive(p) != 0;
    http_parser_pause(p, 1);
    return 0;
  }

  http_parser parser;
  http_parser_settings settings;
  HttpClientResponse response;
  bool head;
  bool in_value = false;
  bool complete = false;
  bool keep_alive = false;
};

Status SendAll(int fd, std::string_view data, Clock::time_point deadline,
               const std::function<void(size_t, size_t)>& progress) {
  const size_t total = data.size();
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n >= 0) {
      data.remove_prefix(static_cast<size_t>(n));
      if (progress) progress(total - data.size(), total);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      WISP_RETURN_IF_ERROR(WaitFor(fd, POLLOUT, deadline));
    } else if (errno == EPIPE || errno == ECONNRESET) {
      return Status::Unavailable("server closed the connection");
    } else if (errno != EINTR) {
      return Status::FromErrno("send", errno);
    }
  }
  return Status::OK();
}

// Reads one response. *got_bytes tells whether any byte of it arrived, which
// decides whether a failed request on a reused connection may be retried.
Status ReadResponse(int fd, ResponseReader* reader, Clock::time_point deadline, bool* got_bytes) {
  char buffer[kReadChunk];
  while (!reader->complete) {
    WISP_RETURN_IF_ERROR(WaitFor(fd, POLLIN, deadline));
    ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n > 0) {
      *got_bytes = true;
      WISP_RETURN_IF_ERROR(reader->Feed(buffer, static_cast<size_t>(n)));
    } else if (n == 0) {
      if (!*got_bytes) return Status::Unavailable("server closed the connection");
      WISP_RETURN_IF_ERROR(reader->Feed(nullptr, 0));  // until-close bodies end here
      if (!reader->complete) return Status::Corruption("connection closed mid-response");
    } else if (errno == ECONNRESET) {
      return *got_bytes ? Status::IOError("connection reset mid-response")
                        : Status::Unavailable("server reset the connection");
    } else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
      return Status::FromErrno("recv", errno);
    }
  }
  return Status::OK();
}

// Connects fd to addr before deadline.
Status ConnectOne(int fd, const addrinfo* ai, Clock::time_point deadline) {
  if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) return Status::OK();
  if (errno != EINPROGRESS) return Status::FromErrno("connect", errno);
  Status ready = WaitFor(fd, POLLOUT, deadline);
  if (!ready.ok()) return Status::Unavailable("connect: timed out");
  int error = 0;
  socklen_t length = sizeof(error);
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
  if (error != 0) return Status::FromErrno("connect", error);
  return Status::OK();
}

}  // namespace

const std::string* HttpClientResponse::Header(std::string_view name) const {
  for (const auto& header : headers) {
    if (header.first == name) return &header.second;
  }
  return nullptr;
}

Status ParseServerUrl(std::string_view url, std::string* host, int* port) {
  if (url.starts_with(kHttpsScheme)) {
    return Status::InvalidArgument("https is not supported; use http://");
  }
  if (!url.starts_with(kHttpScheme)) {
    return Status::InvalidArgument("server URL must start with http://: '" + std::string(url) +
                                   "'");
  }
  std::string_view rest = url.substr(kHttpScheme.size());
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos && rest.substr(slash) != "/") {
    return Status::InvalidArgument("server URL must not have a path: '" + std::string(url) + "'");
  }
  return SplitAuthority(authority, host, port);
}

HttpClient::HttpClient(std::string host, int port, int timeout_ms)
    : host_(std::move(host)), port_(port), timeout_ms_(timeout_ms) {}

HttpClient::~HttpClient() { Close(); }

void HttpClient::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Status HttpClient::Connect() {
  Close();
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms_);
  std::string where = host_ + ":" + std::to_string(port_);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* addresses = nullptr;
  int r = getaddrinfo(host_.c_str(), std::to_string(port_).c_str(), &hints, &addresses);
  if (r != 0) return Status::Unavailable("resolve " + host_ + ": " + gai_strerror(r));
  Status last = Status::Unavailable("no address for " + host_);
  for (addrinfo* ai = addresses; ai != nullptr; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last = Status::FromErrno("socket", errno);
      continue;
    }
    Status connected = ConnectOne(fd, ai, deadline);
    if (connected.ok()) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      fd_ = fd;
      break;
    }
    ::close(fd);
    last = Status::Unavailable(connected.message()).WithContext(where);
  }
  freeaddrinfo(addresses);
  return fd_ >= 0 ? Status::OK() : last;
}

StatusOr<HttpClientResponse> HttpClient::Request(std::string_view method, std::string_view target,
                                                 const triggers::HeaderList& headers,
                                                 std::string_view body) {
  std::string wire = BuildRequest(method, target, headers, body, host_, port_);
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms_);
  bool head = method == "HEAD";
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool reused = fd_ >= 0;
    if (!reused) WISP_RETURN_IF_ERROR(Connect());
    ResponseReader reader(head);
    bool got_bytes = false;
    Status status = SendAll(fd_, wire, deadline, progress_);
    if (status.ok()) status = ReadResponse(fd_, &reader, deadline, &got_bytes);
    if (status.ok()) {
      if (!reader.keep_alive) Close();
      return std::move(reader.response);
    }
    Close();
    // An idle keep-alive connection the server had already closed: retry once.
    bool stale = reused && !got_bytes && status.code() == Status::Code::kUnavailable;
    if (!stale) return status;
  }
  return Status::Unavailable("server closed the connection");
}

}  // namespace wisp::runtime
