#include "runtime/log_followers.h"

#include <cstdio>

#include "api.pb.h"
#include "runtime/base/check.h"
#include "runtime/base/time_format.h"
#include "runtime/base/uv_timer.h"
#include "runtime/json_print.h"

namespace wisp::runtime {
namespace {

constexpr size_t kPollLimit = 1000;  // lines per follower per poll

}  // namespace

void ToApi(const LogLine& line, api::LogLine* out) {
  out->set_seq(line.seq);
  out->set_at(FormatUnixMicros(line.at_us));
  out->set_invocation(line.invocation);
  out->set_line(line.line);
}

LogFollowers::LogFollowers(uv_loop_t* loop, triggers::HttpServer* server, InvocationLog* log)
    : loop_(loop), server_(server), log_(log), timer_(new uv_timer_t) {
  uv_timer_init(loop_, timer_);
  timer_->data = this;
}

LogFollowers::~LogFollowers() { WISP_CHECK(timer_ == nullptr); }

Status LogFollowers::Follow(triggers::ReplyToken token, std::string function,
                            const std::vector<LogLine>& tail, int64_t after) {
  if (closing_) return Status::Unavailable("the controller is shutting down");
  if (followers_.size() >= kMaxFollowers) {
    return Status::ResourceExhausted("already " + std::to_string(kMaxFollowers) +
                                     " log streams open; try again later");
  }
  triggers::HttpResponse head;
  head.headers.emplace_back("Content-Type", "application/x-ndjson");
  head.headers.emplace_back("Cache-Control", "no-store");
  if (!server_->StreamStart(token, std::move(head))) return Status::OK();  // client gone
  Follower f;
  f.token = token;
  f.function = std::move(function);
  f.after = after;
  f.last_write_ms = uv_now(loop_);
  if (!Send(f, tail)) return Status::OK();
  followers_.push_back(std::move(f));
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(timer_))) {
    uv_timer_start(
        timer_, [](uv_timer_t* t) { static_cast<LogFollowers*>(t->data)->Poll(); }, kPollMs,
        kPollMs);
  }
  return Status::OK();
}

bool LogFollowers::Send(Follower& f, const std::vector<LogLine>& lines) {
  if (lines.empty()) return true;
  std::string chunk;
  api::LogLine out;
  for (const LogLine& line : lines) {
    ToApi(line, &out);
    chunk += ToJson(out);  // one line, newline-terminated
    f.after = line.seq;
  }
  f.last_write_ms = uv_now(loop_);
  return server_->StreamWrite(f.token, chunk);
}

void LogFollowers::Poll() {
  const uint64_t now = uv_now(loop_);
  for (size_t i = 0; i < followers_.size();) {
    Follower& f = followers_[i];
    bool open = true;
    StatusOr<std::vector<LogLine>> lines = log_->Logs(f.function, f.after, kPollLimit);
    if (!lines.ok()) {
      std::fprintf(stderr, "wisp: log stream of %s: %s\n", f.function.c_str(),
                   lines.status().ToString().c_str());
    } else if (!lines->empty()) {
      open = Send(f, *lines);
    } else if (now - f.last_write_ms >= kHeartbeatMs) {
      f.last_write_ms = now;
      open = server_->StreamWrite(f.token, "\n");
    }
    if (open) {
      ++i;
    } else {
      followers_.erase(followers_.begin() + static_cast<std::ptrdiff_t>(i));
    }
  }
  if (followers_.empty()) uv_timer_stop(timer_);
}

void LogFollowers::Close(std::function<void()> on_closed) {
  closing_ = true;
  for (const Follower& f : followers_) server_->StreamEnd(f.token);
  followers_.clear();
  uv_timer_t* timer = timer_;
  timer_ = nullptr;
  CloseOwnedTimer(timer, std::move(on_closed));
}

}  // namespace wisp::runtime
