// wisp-worker: loads one function and serves its invocations.
//
// Started by the controller with the protocol channel on fd 3 and its
// stdout/stderr captured as the function's log. It starts generic (no
// function), waits for a Load frame, dlopens the function, then runs Invoke
// frames one at a time, in order, batching results into few writes. It exits
// on Shutdown, when the controller goes away, or after a failed load.
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "loader/function_module.h"
#include "runtime/framing.h"
#include "runtime/worker_host.h"

namespace wisp::runtime {
namespace {

constexpr int kChannelFd = 3;
// Results are flushed early once a batch has run this long, so a slow
// invocation does not hold back the replies of fast ones before it.
constexpr auto kMaxBatchDelay = std::chrono::microseconds(200);

class Worker {
 public:
  int Run();

 private:
  bool ReadMore();
  bool WriteAll();
  void HandleFrame(proto::Frame& frame);
  void HandleLoad(const proto::Load& load);
  void HandleInvoke(const proto::Invoke& invoke);
  void Send(const proto::Frame& frame);
  [[noreturn]] void Exit(int code);

  FrameDecoder decoder_;
  std::string out_;
  std::unique_ptr<loader::FunctionModule> module_;
  std::string function_;
  bool load_failed_ = false;
  bool shutdown_ = false;
  std::chrono::steady_clock::time_point batch_start_;
};

bool Worker::ReadMore() {
  char buf[64 * 1024];
  while (true) {
    const ssize_t n = ::read(kChannelFd, buf, sizeof(buf));
    if (n > 0) {
      decoder_.Feed(buf, static_cast<size_t>(n));
      return true;
    }
    if (n == 0) return false;  // the controller closed the channel
    if (errno != EINTR) return false;
  }
}

bool Worker::WriteAll() {
  size_t done = 0;
  while (done < out_.size()) {
    const ssize_t n = ::write(kChannelFd, out_.data() + done, out_.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += static_cast<size_t>(n);
  }
  out_.clear();
  return true;
}

void Worker::Send(const proto::Frame& frame) {
  Status s = AppendFrame(frame, &out_);
  if (!s.ok()) {
    // A reply over the frame limit: report the failure instead.
    std::fprintf(stderr, "wisp-worker: dropping frame: %s\n", s.ToString().c_str());
  }
}

void Worker::Exit(int code) {
  (void)WriteAll();
  module_.reset();  // wisp_fini
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(code);
}

void Worker::HandleLoad(const proto::Load& load) {
  proto::Frame reply;
  if (module_ != nullptr) {
    reply.mutable_load_failed()->set_message("worker already holds function " + function_);
    Send(reply);
    return;
  }
  function_ = load.function();
  StatusOr<std::unique_ptr<loader::FunctionModule>> module =
      loader::FunctionModule::Open(load.path(), WorkerHostTable());
  if (!module.ok()) {
    load_failed_ = true;
    reply.mutable_load_failed()->set_message(module.status().message());
    Send(reply);
    return;
  }
  module_ = std::move(module).value();
  reply.mutable_loaded()->set_abi_version(module_->abi_version());
  Send(reply);
}

void Worker::HandleInvoke(const proto::Invoke& invoke) {
  proto::Frame reply;
  proto::Result* result = reply.mutable_result();
  result->set_id(invoke.id());
  result->set_status(200);
  if (module_ == nullptr) {
    result->set_function_error(-1);
    result->set_error_message("no function loaded");
    Send(reply);
    return;
  }
  std::vector<wisp_header> headers;
  headers.reserve(static_cast<size_t>(invoke.headers_size()));
  for (const proto::Header& h : invoke.headers()) {
    headers.push_back({{h.name().c_str(), h.name().size()}, {h.value().c_str(), h.value().size()}});
  }
  wisp_request request{};
  request.size = sizeof(wisp_request);
  request.trigger = invoke.trigger();
  request.host = WorkerHostTable();
  request.method = {invoke.method().c_str(), invoke.method().size()};
  request.path = {invoke.path().c_str(), invoke.path().size()};
  request.query = {invoke.query().c_str(), invoke.query().size()};
  request.headers = headers.data();
  request.header_count = headers.size();
  request.subject = {invoke.subject().c_str(), invoke.subject().size()};
  request.body = invoke.body().c_str();
  request.body_len = invoke.body().size();
  request.attempt = invoke.attempt() == 0 ? 1 : invoke.attempt();

  wisp_ctx ctx{result, function_, kDefaultMaxReplyBytes, kDefaultMaxEventsPerInvocation};
  const int rc = module_->Handle(&ctx, &request);
  if (rc != 0) {
    result->set_function_error(rc);
    result->clear_events();  // events of a failed invocation are never published
  }
  Send(reply);
}

void Worker::HandleFrame(proto::Frame& frame) {
  switch (frame.kind_case()) {
    case proto::Frame::kLoad:
      HandleLoad(frame.load());
      break;
    case proto::Frame::kInvoke:
      if (!load_failed_) HandleInvoke(frame.invoke());
      break;
    case proto::Frame::kShutdown:
      shutdown_ = true;
      break;
    default:
      std::fprintf(stderr, "wisp-worker: unexpected frame kind %d\n",
                   static_cast<int>(frame.kind_case()));
      break;
  }
}

int Worker::Run() {
  proto::Frame frame;
  while (ReadMore()) {
    batch_start_ = std::chrono::steady_clock::now();
    while (true) {
      StatusOr<bool> got = decoder_.Next(&frame);
      if (!got.ok()) {
        std::fprintf(stderr, "wisp-worker: bad frame from controller: %s\n",
                     got.status().ToString().c_str());
        Exit(2);
      }
      if (!*got) break;
      HandleFrame(frame);
      if (load_failed_ || shutdown_) Exit(load_failed_ ? 1 : 0);
      const auto now = std::chrono::steady_clock::now();
      if (now - batch_start_ > kMaxBatchDelay && !out_.empty()) {
        if (!WriteAll()) Exit(0);
        batch_start_ = now;
      }
    }
    if (!WriteAll()) Exit(0);
  }
  Exit(0);
}

}  // namespace
}  // namespace wisp::runtime

int main() {
  // Die with the controller; never outlive it as an orphan.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  ::signal(SIGPIPE, SIG_IGN);
  // A function's printf reaches the log line by line, not at exit.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  wisp::runtime::Worker worker;
  return worker.Run();
}
