#include "runtime/worker_loop.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "loader/function_module.h"
#include "runtime/framing.h"
#include "runtime/sandbox.h"
#include "runtime/worker_host.h"

namespace wisp::runtime {
namespace {


class Worker {
 public:
  explicit Worker(std::chrono::microseconds spin) : spin_(spin) {}
  [[noreturn]] void Run();

 private:
  bool ReadMore();
  bool WriteAll();
  void HandleFrame(proto::Frame& frame);
  void HandleLoad(const proto::Load& load);
  void HandleInvoke(const proto::Invoke& invoke);
  void HandleWarmup(const proto::Warmup& warmup);
  void WarmUp(const std::string& path);
  void Send(const proto::Frame& frame);
  bool CallOut(proto::Call& call, proto::CallReply* reply);
  bool NextFrame(proto::Frame* frame);
  [[noreturn]] void Exit(int code);

  bool MaySpin(std::chrono::steady_clock::time_point now);

  const std::chrono::microseconds spin_;
  bool spin_next_ = false;   // poll before the next sleep
  bool short_wait_ = false;  // the last wait was shorter than spin_
  int invocations_in_batch_ = 0;
  bool may_spin_ = false;
  std::chrono::steady_clock::time_point affinity_checked_;
  FrameDecoder decoder_;
  std::string out_;
  std::vector<wisp_header> headers_;  // per invocation, capacity reused
  std::unique_ptr<loader::FunctionModule> module_;
  std::string function_;
  proto::Sandbox sandbox_;  // the loaded function's limits
  bool load_failed_ = false;
  bool shutdown_ = false;
  uint64_t next_call_id_ = 0;
  std::deque<proto::Frame> waiting_;  // frames that arrived during a call
};

// Polling only pays when the worker has a core of its own to poll on; on
// the controller's single core it would only delay the controller. The
// affinity is looked at again every 100 ms: it can be changed from outside.
bool Worker::MaySpin(std::chrono::steady_clock::time_point now) {
  if (now - affinity_checked_ > std::chrono::milliseconds(100)) {
    affinity_checked_ = now;
    cpu_set_t cpus;
    may_spin_ = ::sched_getaffinity(0, sizeof(cpus), &cpus) == 0 && CPU_COUNT(&cpus) >= 2;
  }
  return may_spin_;
}

// Waits for more frames. While invocations come densely, it first polls for
// up to spin_ (without sleeping): waking a sleeping process on an idle core
// costs tens of microseconds on a VM, more than the gap it bridges. It spins
// only in a ping-pong (the last batch held a single invocation, and the wait
// before it was shorter than spin_): an idle worker sleeps at once, a sparse
// stream wastes at most one spin, and under load, when invocations arrive in
// batches, the worker leaves the CPU to others instead of polling.
bool Worker::ReadMore() {
  char buf[64 * 1024];
  using Clock = std::chrono::steady_clock;
  const Clock::time_point wait_start = Clock::now();
  const bool spin = spin_next_ && MaySpin(wait_start);
  const Clock::time_point spin_until = wait_start + spin_;
  // fd 3 is non-blocking (RunWorker): the worker reads it again while it
  // spins, then sleeps in poll.
  while (true) {
    const ssize_t n = ::read(kWorkerChannelFd, buf, sizeof(buf));
    if (n > 0) {
      decoder_.Feed(buf, static_cast<size_t>(n));
      short_wait_ = Clock::now() - wait_start <= spin_;
      return true;
    }
    if (n == 0) return false;  // the controller closed the channel
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return false;
    if (spin && Clock::now() < spin_until) continue;
    pollfd channel = {kWorkerChannelFd, POLLIN, 0};
    if (::poll(&channel, 1, -1) < 0 && errno != EINTR) return false;
  }
}

bool Worker::WriteAll() {
  size_t done = 0;
  while (done < out_.size()) {
    const ssize_t n = ::write(kWorkerOutputFd, out_.data() + done, out_.size() - done);
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
  if (s.ok()) return;
  // Only a result can be this large: answer its invocation with the reason.
  std::fprintf(stderr, "wisp-worker: reply refused: %s\n", s.ToString().c_str());
  proto::Frame refusal;
  proto::Result* result = refusal.mutable_result();
  result->set_id(frame.result().id());
  result->set_function_error(-1);
  result->set_error_message("the reply exceeds the frame limit of " +
                            std::to_string(kDefaultMaxFrameBytes) + " bytes");
  (void)AppendFrame(refusal, &out_);
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
  sandbox_ = load.sandbox();
  std::string path = load.path();
  int artifact_fd = -1;
  if (Status s = EnterSandbox(sandbox_, &path, &artifact_fd); !s.ok()) {
    load_failed_ = true;
    reply.mutable_load_failed()->set_message("cannot isolate the worker: " + s.ToString());
    Send(reply);
    return;
  }
  // The config map, readable with getenv from wisp_init on.
  for (const auto& [key, value] : load.env()) ::setenv(key.c_str(), value.c_str(), 1);
  ::setenv("WISP_FUNCTION_NAME", load.function().c_str(), 1);
  ::setenv("WISP_FUNCTION_VERSION", load.version().c_str(), 1);
  // The controller validated the artifact at deploy (loader/elf_validator.h).
  LimitCpuFromNow(sandbox_.cpu_ms());  // wisp_init counts as one invocation
  StatusOr<std::unique_ptr<loader::FunctionModule>> module =
      loader::FunctionModule::OpenValidated(path, WorkerHostTable());
  if (artifact_fd >= 0) ::close(artifact_fd);  // the mapping stays
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

// Calls the function for one invocation, filling *result. headers is
// scratch space, kept by the caller so its capacity is reused.
// call_out serves host->call (empty: not offered).
void CallFunction(const loader::FunctionModule& module, const std::string& function,
                  const proto::Invoke& invoke, const proto::Sandbox& limits,
                  std::vector<wisp_header>& headers, proto::Result* result,
                  std::function<bool(proto::Call&, proto::CallReply*)> call_out = nullptr) {
  headers.clear();
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

  const size_t max_reply = limits.max_reply_bytes() > 0 ? limits.max_reply_bytes()
                                                         : kDefaultMaxReplyBytes;
  const size_t max_events = limits.has_max_events() ? limits.max_events()
                                                        : kDefaultMaxEventsPerInvocation;
  wisp_ctx ctx{result, function, max_reply, max_events, 0, nullptr, std::move(call_out), {}};
  LimitCpuFromNow(limits.cpu_ms());
  int rc = module.Handle(&ctx, &request);
  if (ctx.limit_crossed != nullptr) {
    result->set_limit(ctx.limit_crossed);
    if (rc == 0) rc = -1;
  }
  if (rc != 0) {
    result->set_function_error(rc);
    result->clear_events();  // events of a failed invocation are never published
  }
}

void Worker::HandleInvoke(const proto::Invoke& invoke) {
  const auto start = std::chrono::steady_clock::now();
  proto::Frame reply;
  proto::Result* result = reply.mutable_result();
  result->set_id(invoke.id());
  result->set_status(200);
  if (module_ == nullptr) {
    result->set_function_error(-1);
    result->set_error_message("no function loaded");
  } else {
    CallFunction(*module_, function_, invoke, sandbox_, headers_, result,
                 [this](proto::Call& call, proto::CallReply* answer) {
                   return CallOut(call, answer);
                 });
  }
  result->set_run_ns(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count()));
  Send(reply);
}

// The function waits for the reply: what arrives before it (pipelined
// invocations, a Shutdown) waits in waiting_ for its turn.
bool Worker::CallOut(proto::Call& call, proto::CallReply* reply) {
  call.set_id(++next_call_id_);
  const uint64_t id = call.id();
  proto::Frame frame;
  *frame.mutable_call() = std::move(call);
  Send(frame);
  if (!WriteAll()) return false;
  proto::Frame in;
  while (true) {
    while (true) {
      StatusOr<bool> got = decoder_.Next(&in);
      if (!got.ok()) {
        std::fprintf(stderr, "wisp-worker: bad frame from controller: %s\n",
                     got.status().ToString().c_str());
        Exit(2);
      }
      if (!*got) break;
      if (in.has_call_reply() && in.call_reply().id() == id) {
        *reply = std::move(*in.mutable_call_reply());
        return true;
      }
      waiting_.push_back(std::move(in));
    }
    if (!ReadMore()) return false;
  }
}

bool Worker::NextFrame(proto::Frame* frame) {
  if (!waiting_.empty()) {
    *frame = std::move(waiting_.front());
    waiting_.pop_front();
    return true;
  }
  StatusOr<bool> got = decoder_.Next(frame);
  if (!got.ok()) {
    std::fprintf(stderr, "wisp-worker: bad frame from controller: %s\n",
                 got.status().ToString().c_str());
    Exit(2);
  }
  return *got;
}

void Worker::HandleWarmup(const proto::Warmup& warmup) {
  if (module_ != nullptr) return;
  if (!warmup.path().empty()) WarmUp(warmup.path());
  if (warmup.seccomp()) {
    // On failure the Load's EnterSandbox tries again and reports why.
    if (Status s = InstallSeccompAhead(); !s.ok()) {
      std::fprintf(stderr, "wisp-worker: seccomp ahead of the load: %s\n", s.ToString().c_str());
    }
  }
}

void Worker::WarmUp(const std::string& path) {
  StatusOr<std::unique_ptr<loader::FunctionModule>> module =
      loader::FunctionModule::OpenValidated(path, WorkerHostTable());
  if (!module.ok()) {
    std::fprintf(stderr, "wisp-worker: warm-up skipped: %s\n", module.status().message().c_str());
    return;
  }
  proto::Frame frame;
  proto::Invoke* invoke = frame.mutable_invoke();
  invoke->set_trigger(WISP_TRIGGER_HTTP);
  invoke->set_method("POST");
  invoke->set_path("/");
  invoke->set_body("warm-up");
  proto::Header* header = invoke->add_headers();
  header->set_name("content-type");
  header->set_value("text/plain");
  std::string wire;
  (void)AppendFrame(frame, &wire);
  FrameDecoder decoder;
  decoder.Feed(wire.data(), wire.size());
  proto::Frame decoded;
  (void)decoder.Next(&decoded);
  proto::Frame reply;
  CallFunction(**module, "warm-up", decoded.invoke(), proto::Sandbox(), headers_,
               reply.mutable_result());
  wire.clear();
  (void)AppendFrame(reply, &wire);
}  // the warm-up module is unloaded here

void Worker::HandleFrame(proto::Frame& frame) {
  switch (frame.kind_case()) {
    case proto::Frame::kLoad:
      HandleLoad(frame.load());
      break;
    case proto::Frame::kInvoke:
      if (!load_failed_) HandleInvoke(frame.invoke());
      break;
    case proto::Frame::kWarmup:
      HandleWarmup(frame.warmup());
      break;
    case proto::Frame::kShutdown:
      shutdown_ = true;
      break;
    case proto::Frame::kCallReply:
      break;  // for a call that gave up (the controller closed it late)
    default:
      std::fprintf(stderr, "wisp-worker: unexpected frame kind %d\n",
                   static_cast<int>(frame.kind_case()));
      break;
  }
}

void Worker::Run() {
  proto::Frame frame;
  while (ReadMore()) {
    while (NextFrame(&frame)) {
      // Every earlier outcome (Loaded, results) reaches the controller before
      // the function runs again: if this invocation crashes the worker, the
      // controller knows exactly which one did. Results of a batch still
      // arrive together when the controller is busy: they queue in the pipe.
      if (frame.has_invoke() && !out_.empty() && !WriteAll()) Exit(0);
      if (frame.has_invoke()) ++invocations_in_batch_;
      HandleFrame(frame);
      if (load_failed_ || shutdown_) Exit(load_failed_ ? 1 : 0);
    }
    if (!WriteAll()) Exit(0);
    spin_next_ = spin_.count() > 0 && short_wait_ && invocations_in_batch_ == 1;
    invocations_in_batch_ = 0;
  }
  Exit(0);
}

// A frame's arrival wakes the worker. Under SCHED_OTHER that wake-up may
// preempt the controller in the middle of its loop iteration (it just wrote
// the frame), so every other connection waits for the function to run; under
// SCHED_BATCH the scheduler never preempts the running task for the waking
// one, and the worker's share of CPU is otherwise the same. With -c32 hello
// this took the controller from 78.2-79.6k to 81.2-84.1k requests/s. Needs no
// privilege; a refusal only leaves the worker as it was.
void RunAsBatch() {
  const sched_param param{};
  if (::sched_setscheduler(0, SCHED_BATCH, &param) != 0) {
    std::fprintf(stderr, "wisp-worker: SCHED_BATCH refused (%s); the worker stays SCHED_OTHER\n",
                 std::strerror(errno));
  }
}

}  // namespace

void RunWorker(std::chrono::microseconds spin) {
  // A function's printf reaches the log line by line, not at exit.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  InstallTerminateHandler();
  RunAsBatch();
  // Reads of fd 3 never block (the worker sleeps in poll, ReadMore): the
  // flag is the worker's own, as the controller holds only the write end.
  const int flags = ::fcntl(kWorkerChannelFd, F_GETFL);
  if (flags < 0 || ::fcntl(kWorkerChannelFd, F_SETFL, flags | O_NONBLOCK) != 0) ::_exit(1);
  Worker worker(spin);
  worker.Run();
}

}  // namespace wisp::runtime
