// Limits per function and workers that run as users of their own: crossing
// a limit ends only that invocation or worker with an error naming the
// limit, a refused resource stays refused inside the worker, and a function
// can neither read the data dir nor signal the controller's processes.
// The controller under test runs as root (as CI does), so each worker gets
// its own user.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <thread>

#include "tests/integration/controller_fixture.h"

namespace wisp::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

constexpr uint32_t kFirstWorkerUid = 1879048192;
// Sanitizer builds do not limit memory (runtime/sandbox.cc).
#ifdef WISP_SANITIZED
constexpr bool kMemoryLimited = false;
#else
constexpr bool kMemoryLimited = true;
#endif

class IsolationTest : public ControllerTest {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "workers get users of their own only under a root controller";
    ControllerTest::SetUp();
  }

  // Calls hello from another thread until the returned guard is destroyed;
  // every answer must be right.
  class HealthyCaller {
   public:
    explicit HealthyCaller(int port) : port_(port), thread_([this] { Run(); }) {}
    ~HealthyCaller() {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (ok_.load() <= 5 && bad_.load() == 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      stop_ = true;
      thread_.join();
      EXPECT_EQ(bad_.load(), 0) << "hello failed beside the limited functions: " << first_bad_;
      EXPECT_GT(ok_.load(), 5);
    }

   private:
    void Run() {
      runtime::HttpClient client("127.0.0.1", port_, 30000);
      for (int i = 0; !stop_; ++i) {
        const std::string body = "beside-" + std::to_string(i);
        auto r = client.Request("POST", "/fn/hello", {}, body);
        if (r.ok() && r->status == 200 && r->body == "hello, " + body) {
          ++ok_;
        } else if (bad_++ == 0) {
          first_bad_ = r.ok() ? std::to_string(r->status) + " " + r->body : r.status().ToString();
        }
      }
    }
    int port_;
    std::atomic<bool> stop_{false};
    std::atomic<int> ok_{0};
    std::atomic<int> bad_{0};
    std::string first_bad_;
    std::thread thread_;
  };

  // The pids of a loaded function's workers.
  std::vector<pid_t> WorkerPids(const std::string& name) {
    api::Function fn;
    EXPECT_TRUE(controller_->Describe(name, &fn));
    return {fn.status().worker_pids().begin(), fn.status().worker_pids().end()};
  }

  // Waits until name has no loaded worker; false after 15 s.
  bool WaitUnloaded(const std::string& name) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    api::Function fn;
    while (std::chrono::steady_clock::now() < deadline) {
      if (controller_->Describe(name, &fn) && !fn.status().loaded()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
};

struct LimitCase {
  const char* function;
  std::vector<std::string> deploy_args;
  std::string body;
  int status;
  const char* code;
  const char* message;
};

TEST_F(IsolationTest, CrossingALimitEndsOnlyThatInvocationAndNamesTheLimit) {
  const std::string two_kib(2048, 'x');
  const LimitCase cases[] = {
      {"alloc_throw", {"--memory", "128MiB"}, "", 502, "memory_limit",
       "crossed its memory limit (128MiB of address space, RLIMIT_AS)"},
      {"loop", {"--cpu", "1s", "--timeout", "20s"}, "", 502, "cpu_limit",
       "used its CPU time limit (1s per invocation, RLIMIT_CPU)"},
      {"echo", {"--max-reply", "1KiB"}, two_kib, 502, "reply_too_large",
       "crossed its max_reply limit (1KiB)"},
      {"echo", {"--max-request", "1KiB"}, two_kib, 413, "payload_too_large",
       "over the limit of 1024 bytes"},
      {"relay", {"--max-events", "2"}, "emit a.b 1\nemit a.b 2\nemit a.b 3\n", 502,
       "too_many_events", "crossed its max_events limit (2 events)"},
  };
  DeployOk(ExamplePath("hello"), "hello");
  int n = 0;
  std::vector<std::string> names;
  for (const LimitCase& c : cases) {
    const std::string name = std::string(c.function) + "-" + std::to_string(n++);
    names.push_back(name);
    if (!kMemoryLimited && std::string(c.function) == "alloc_throw") continue;
    const std::string path =
        std::string(c.function) == "echo" ? ExamplePath("echo") : TestFunctionPath(c.function);
    DeployOk(path, name, c.deploy_args);
  }
  HealthyCaller healthy(controller_->port());
  n = 0;
  for (const LimitCase& c : cases) {
    const std::string& name = names[n++];
    if (!kMemoryLimited && std::string(c.function) == "alloc_throw") continue;
    for (int round = 0; round < 2; ++round) {  // the second on a new worker, when the first died
      runtime::HttpClientResponse r = controller_->Call("POST", "/fn/" + name, c.body);
      EXPECT_EQ(r.status, c.status) << name << " round " << round << ": " << r.body;
      EXPECT_THAT(r.body, HasSubstr("\"code\":\"" + std::string(c.code) + "\""))
          << name << ": " << r.body;
      EXPECT_THAT(r.body, HasSubstr(c.message)) << name << ": " << r.body;
    }
  }
  // Under its limits the same function answers.
  runtime::HttpClientResponse small = controller_->Call("POST", "/fn/" + names[2], "small");
  EXPECT_EQ(small.status, 200) << small.body;
  EXPECT_EQ(small.body, "small");
}

TEST_F(IsolationTest, ARefusedResourceStaysRefusedInsideTheWorker) {
  DeployOk(ExamplePath("hello"), "hello");
  DeployOk(TestFunctionPath("alloc_until_refused"), "hoarder", {"--memory", "128MiB"});
  DeployOk(TestFunctionPath("open_files"), "opener", {"--open-files", "64"});
  DeployOk(TestFunctionPath("thread_bomb"), "threads", {"--processes", "32"});
  HealthyCaller healthy(controller_->port());

  for (int round = 0; round < 2 && kMemoryLimited; ++round) {  // the same worker, still alive
    runtime::HttpClientResponse r = controller_->Call("POST", "/fn/hoarder", "");
    ASSERT_EQ(r.status, 200) << r.body;
    std::smatch m;
    ASSERT_TRUE(std::regex_match(r.body, m, std::regex("(\\d+) MiB"))) << r.body;
    const int mib = std::stoi(m[1]);
    EXPECT_GT(mib, 32) << "the worker got far too little under a 128 MiB limit";
    EXPECT_LT(mib, 128) << "the worker got past its 128 MiB limit";
  }
  runtime::HttpClientResponse opened = controller_->Call("POST", "/fn/opener", "");
  EXPECT_EQ(opened.status, 200) << opened.body;
  EXPECT_THAT(opened.body, MatchesRegex("refused after [0-9]+ opens: EMFILE"));
  EXPECT_LT(std::stoi(opened.body.substr(std::string("refused after ").size())), 64);

  runtime::HttpClientResponse threads = controller_->Call("POST", "/fn/threads", "");
  EXPECT_EQ(threads.status, 200) << threads.body;
  EXPECT_THAT(threads.body, MatchesRegex("refused after [0-9]+ threads: EAGAIN"));
  EXPECT_LT(std::stoi(threads.body.substr(std::string("refused after ").size())), 32);
}

TEST_F(IsolationTest, AForkBombStaysInItsWorkerAndDiesWithIt) {
  DeployOk(ExamplePath("hello"), "hello");
  DeployOk(TestFunctionPath("fork_bomb"), "bomb", {"--processes", "32", "--idle", "1s"});
  HealthyCaller healthy(controller_->port());
  runtime::HttpClientResponse r = controller_->Call("POST", "/fn/bomb", "");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(r.body, MatchesRegex("refused after [0-9]+ forks: EAGAIN"));

  const std::vector<pid_t> workers = WorkerPids("bomb");
  ASSERT_EQ(workers.size(), 1u);
  const int64_t uid = UidOf(workers[0]);
  ASSERT_GE(uid, kFirstWorkerUid) << "the worker runs as root or the controller's user";
  const std::vector<pid_t> bomb = ProcessesOfUser(static_cast<uint32_t>(uid));
  EXPECT_GT(bomb.size(), 1u) << "the bomb forked nothing";
  EXPECT_LE(bomb.size(), 32u) << "more processes than the limit of 32";

  // Unloaded when idle: the worker and everything it forked are gone.
  ASSERT_TRUE(WaitUnloaded("bomb"));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::vector<pid_t> left;
  do {
    left.clear();
    for (pid_t pid : bomb) {
      if (ProcessAlive(pid) && UidOf(pid) == uid) left.push_back(pid);
    }
    if (left.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (std::chrono::steady_clock::now() < deadline);
  EXPECT_TRUE(left.empty()) << left.size() << " of the bomb's " << bomb.size()
                            << " processes outlived its worker";
}

TEST_F(IsolationTest, AFunctionCannotReadTheDataDirOrSignalItsParent) {
  DeployOk(ExamplePath("hello"), "hello");
  const std::string data_dir = dir_.path() + "/data";
  DeployOk(TestFunctionPath("read_data_dir"), "snoop", {"--env", "DATA_DIR=" + data_dir});
  DeployOk(TestFunctionPath("kill_parent"), "parricide");

  runtime::HttpClientResponse snoop = controller_->Call("POST", "/fn/snoop", "");
  ASSERT_EQ(snoop.status, 200) << snoop.body;
  EXPECT_THAT(snoop.body, HasSubstr("token: EACCES\n"));
  EXPECT_THAT(snoop.body, HasSubstr("wisp.db: EACCES\n"));
  EXPECT_THAT(snoop.body, HasSubstr("listing: EACCES\n"));
  EXPECT_THAT(snoop.body, HasSubstr("descriptors: 0\n"));
  EXPECT_THAT(snoop.body, MatchesRegex("(.|\n)*cwd: /[^\n]*/wisp-workers-[^/\n]+/[0-9]+\n(.|\n)*"));

  runtime::HttpClientResponse kill = controller_->Call("POST", "/fn/parricide", "");
  EXPECT_EQ(kill.status, 200) << kill.body;
  EXPECT_EQ(kill.body, "refused: EPERM");

  // Two functions' workers run as two different users, neither root.
  ASSERT_EQ(controller_->Call("POST", "/fn/hello", "x").status, 200);
  const std::vector<pid_t> hello = WorkerPids("hello");
  const std::vector<pid_t> snooper = WorkerPids("snoop");
  ASSERT_FALSE(hello.empty());
  ASSERT_FALSE(snooper.empty());
  EXPECT_GE(UidOf(hello[0]), kFirstWorkerUid);
  EXPECT_GE(UidOf(snooper[0]), kFirstWorkerUid);
  EXPECT_NE(UidOf(hello[0]), UidOf(snooper[0]));
}

// Each worker starts in an empty private directory: what one worker left
// there is gone when a later worker of the same identity starts (an empty
// one is kept as it is, a used one is made anew). The identity is the lowest
// free one, so the next worker usually gets the same directory; controllers
// of other tests may take it meanwhile, so the rounds go on until one has.
TEST_F(IsolationTest, AWorkerNeverFindsWhatTheLastOneLeftInItsDirectory) {
  DeployOk(TestFunctionPath("work_dir"), "dirs", {"--idle", "1s", "--max-workers", "1"});
  std::set<std::string> used;
  int reused = 0;
  for (int round = 0; round < 8 && reused < 2; ++round) {
    runtime::HttpClientResponse r = controller_->Call("POST", "/fn/dirs", "");
    ASSERT_EQ(r.status, 200) << "round " << round << ": " << r.body;
    EXPECT_THAT(r.body, HasSubstr("mode: 700\n")) << "round " << round;
    EXPECT_THAT(r.body, HasSubstr("entries: 0\n"))
        << "round " << round << ": the worker found an earlier worker's files";
    const std::string cwd = r.body.substr(0, r.body.find('\n'));
    if (!used.insert(cwd).second) ++reused;
    ASSERT_TRUE(WaitUnloaded("dirs")) << "round " << round;
  }
  if (reused == 0) {
    GTEST_SKIP() << "other controllers took the identity in every round: no worker started "
                 << "in a directory an earlier one had used";
  }
}

TEST_F(IsolationTest, TheSeccompFilterDeniesWhatAFunctionHasNoReasonToDo) {
  DeployOk(ExamplePath("hello"), "hello");
  DeployOk(TestFunctionPath("forbidden_syscalls"), "forbidden");
  HealthyCaller beside(controller_->port());
  runtime::HttpClientResponse r = controller_->Call("POST", "/fn/forbidden", "");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(r.body, HasSubstr("ptrace: EPERM\n"));
  EXPECT_THAT(r.body, HasSubstr("unshare: EPERM\n"));
  EXPECT_THAT(r.body, HasSubstr("clone_newuser: EPERM\n"));
  EXPECT_THAT(r.body, HasSubstr("clone3: ENOSYS\n"));
  EXPECT_THAT(r.body, HasSubstr("mount: EPERM\n"));
  EXPECT_THAT(r.body, HasSubstr("keyctl: EPERM\n"));
  EXPECT_THAT(r.body, HasSubstr("init_module: EPERM\n"));
  EXPECT_THAT(r.body, HasSubstr("kexec_load: EPERM\n"));
  EXPECT_THAT(r.body, HasSubstr("io_uring_setup: EPERM\n"));
  // Threads still start: the C library falls back from clone3 to clone.
  EXPECT_THAT(r.body, HasSubstr("thread: OK\n"));
  EXPECT_THAT(controller_->startup_output(), HasSubstr("a seccomp filter denies"));
}

// A line of /proc/<pid>/status ("Seccomp:\t2"), or "" when there is none.
std::string StatusLine(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) return line;
  }
  return "";
}

// How many seccomp filters this process has ("Seccomp_filters"), which a
// worker inherits through the controller and the zygote; -1 when the kernel
// does not say.
int OwnSeccompFilters() {
  const std::string line = StatusLine(::getpid(), "Seccomp_filters");
  return line.empty() ? -1 : std::atoi(line.c_str() + line.find(':') + 1);
}

TEST_F(IsolationTest, ALoadedWorkerHasTheFilterOnceThoughPooledWorkersInstallItAhead) {
  const int inherited = OwnSeccompFilters();
  if (inherited < 0) GTEST_SKIP() << "this kernel does not report Seccomp_filters";
  DeployOk(ExamplePath("hello"), "hello");
  ASSERT_EQ(controller_->Call("POST", "/fn/hello", "world").status, 200);
  const std::vector<pid_t> workers = WorkerPids("hello");
  ASSERT_FALSE(workers.empty());
  for (pid_t pid : workers) {
    EXPECT_EQ(StatusLine(pid, "Seccomp"), "Seccomp:\t2") << "worker " << pid << " has no filter";
    EXPECT_EQ(StatusLine(pid, "Seccomp_filters"),
              "Seccomp_filters:\t" + std::to_string(inherited + 1))
        << "worker " << pid << ": the filter installed ahead must not be installed again";
  }
}

TEST_F(IsolationTest, LimitsAreShownAndKeptPerVersion) {
  DeployOk(ExamplePath("hello"), "hello",
           {"--memory", "256MiB", "--cpu", "3s", "--open-files", "100", "--processes", "20",
            "--max-request", "64KiB", "--max-reply", "1MiB", "--max-events", "5"});
  api::Function fn;
  ASSERT_TRUE(controller_->Describe("hello", &fn));
  EXPECT_EQ(fn.config().memory_bytes(), 256u << 20);
  EXPECT_EQ(fn.config().cpu_ms(), 3000u);
  EXPECT_EQ(fn.config().open_files(), 100u);
  EXPECT_EQ(fn.config().processes(), 20u);
  EXPECT_EQ(fn.config().max_request_bytes(), 64u << 10);
  EXPECT_EQ(fn.config().max_reply_bytes(), 1u << 20);
  EXPECT_EQ(fn.config().max_events(), 5u);

  // A new version without flags gets the defaults again.
  DeployOk(ExamplePath("hello"), "hello");
  ASSERT_TRUE(controller_->Describe("hello", &fn));
  EXPECT_EQ(fn.config().memory_bytes(), 1u << 30);
  EXPECT_EQ(fn.config().cpu_ms(), 0u);
  EXPECT_EQ(fn.config().max_events(), 1000u);

  CliResult bad = controller_->Deploy(ExamplePath("hello"), "hello", {"--memory", "lots"});
  EXPECT_EQ(bad.exit_code, 2) << bad.out;
  EXPECT_THAT(bad.err, HasSubstr("memory must be a size from 32MiB to 1TiB")) << bad.err;
  runtime::HttpClientResponse api =
      controller_->Call("PUT", "/v1/functions/hello?processes=1", "ignored");
  EXPECT_EQ(api.status, 400) << api.body;
  EXPECT_THAT(api.body, HasSubstr("processes must be a number from 4 to 65536"));
}

// Without users of their own (--worker-uids off) a function can kill the
// zygote: its workers die with it, and a new one serves.
class SharedUserTest : public ControllerTest {
 protected:
  std::vector<std::string> ControllerArgs() const override { return {"--worker-uids", "off"}; }
};

TEST_F(SharedUserTest, KillingTheZygoteEndsItsWorkersAndANewOneServes) {
  DeployOk(ExamplePath("hello"), "hello");
  DeployOk(TestFunctionPath("kill_parent"), "parricide");
  // Its worker dies with the zygote it killed, but its reply may get out
  // first: either answer is right, nothing else is.
  runtime::HttpClientResponse r = controller_->Call("POST", "/fn/parricide", "");
  if (r.status == 200) {
    EXPECT_EQ(r.body, "killed");
  } else {
    EXPECT_EQ(r.status, 502) << r.body;
    EXPECT_THAT(r.body, HasSubstr("\"code\":\"worker_crashed\"")) << r.body;
  }
  runtime::HttpClientResponse hello;
  for (int attempt = 0; attempt < 100; ++attempt) {
    hello = controller_->Call("POST", "/fn/hello", "again");
    if (hello.status == 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(hello.status, 200) << hello.body;
  EXPECT_EQ(hello.body, "hello, again");
  EXPECT_EQ(controller_->Call("GET", "/healthz").status, 200);
}

// Without the filter (--no-seccomp) the same calls reach the kernel: the
// filter, not the user alone, is what denied them above.
class NoSeccompTest : public ControllerTest {
 protected:
  std::vector<std::string> ControllerArgs() const override { return {"--no-seccomp"}; }
};

TEST_F(NoSeccompTest, TheSameCallsReachTheKernel) {
  DeployOk(TestFunctionPath("forbidden_syscalls"), "forbidden");
  runtime::HttpClientResponse r = controller_->Call("POST", "/fn/forbidden", "");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(r.body, HasSubstr("ptrace: OK\n"));
  EXPECT_THAT(r.body, HasSubstr("clone3: EINVAL\n"));
  EXPECT_THAT(r.body, HasSubstr("thread: OK\n"));
  api::Function fn;
  ASSERT_TRUE(controller_->Describe("forbidden", &fn));
  ASSERT_GT(fn.status().worker_pids_size(), 0);
  for (pid_t pid : fn.status().worker_pids()) {
    EXPECT_EQ(StatusLine(pid, "Seccomp"), StatusLine(::getpid(), "Seccomp"))
        << "worker " << pid << " has a filter of wisp's";
  }
  EXPECT_THAT(controller_->startup_output(), HasSubstr("no seccomp filter (--no-seccomp)"));
}

}  // namespace
}  // namespace wisp::testing
