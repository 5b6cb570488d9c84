// GET /v1/functions/<name>/logs?follow=true: streamed replies that go on
// carrying a function's new log lines as they are recorded, one JSON object
// (api.LogLine) per line (application/x-ndjson), until the client goes.
//
// The followers poll the invocation log (committed lines only, so every line
// has its seq and none is sent twice) every kPollMs; a stream with nothing
// new for kHeartbeatMs gets an empty line, so a client that left is noticed.
//
// Ownership: owned by the controller; server and log are borrowed and must
// outlive it. Threading: the loop thread only.
#ifndef WISP_RUNTIME_LOG_FOLLOWERS_H_
#define WISP_RUNTIME_LOG_FOLLOWERS_H_

#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/base/status.h"
#include "runtime/invocation_log.h"
#include "triggers/http_server.h"

namespace wisp::api {
class LogLine;
}  // namespace wisp::api

namespace wisp::runtime {

// line as the API shows it.
void ToApi(const LogLine& line, api::LogLine* out);

class LogFollowers {
 public:
  static constexpr uint64_t kPollMs = 250;
  static constexpr uint64_t kHeartbeatMs = 15000;
  static constexpr size_t kMaxFollowers = 64;

  LogFollowers(uv_loop_t* loop, triggers::HttpServer* server, InvocationLog* log);
  ~LogFollowers();  // Close must have completed
  LogFollowers(const LogFollowers&) = delete;
  LogFollowers& operator=(const LogFollowers&) = delete;

  // Answers token with a stream: the lines of tail first (oldest first, as
  // Logs returns them), then every line of function recorded after them (or
  // after seq `after` when tail is empty).
  // ResourceExhausted (nothing sent) when kMaxFollowers streams are open;
  // Unavailable once closing.
  [[nodiscard]] Status Follow(triggers::ReplyToken token, std::string function,
                              const std::vector<LogLine>& tail, int64_t after);

  size_t size() const { return followers_.size(); }

  // Ends every stream (its body completes) and closes the timer; on_closed
  // runs once it is closed.
  void Close(std::function<void()> on_closed);

 private:
  struct Follower {
    triggers::ReplyToken token;
    std::string function;
    int64_t after = 0;         // the last seq sent
    uint64_t last_write_ms = 0;
  };
  // Writes lines to f's stream; false when the stream is over.
  bool Send(Follower& f, const std::vector<LogLine>& lines);
  void Poll();

  uv_loop_t* loop_;
  triggers::HttpServer* server_;
  InvocationLog* log_;
  uv_timer_t* timer_;  // owned; freed in its close callback
  std::vector<Follower> followers_;
  bool closing_ = false;
};

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_LOG_FOLLOWERS_H_
