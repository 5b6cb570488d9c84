// A real nats-server for tests: started on a free loopback port (or a given
// one), optionally with JetStream, stopped on destruction.
//
// The binary is $WISP_NATS_SERVER, else nats-server from PATH, else
// /usr/sbin/nats-server. Its output goes to a log file in the server's own
// temporary directory (also JetStream's store), which is removed on
// destruction; failure messages quote the log's tail.
//
// Threading: one thread uses an instance. The server gets SIGKILL if the
// thread that started it exits (PR_SET_PDEATHSIG), so a crashing test never
// leaves a server behind: start it from the test's own thread.
#ifndef WISP_TESTS_SUPPORT_NATS_SERVER_H_
#define WISP_TESTS_SUPPORT_NATS_SERVER_H_

#include <gtest/gtest.h>
#include <sys/types.h>

#include <string>
#include <vector>

namespace wisp::testing {

struct NatsServerOptions {
  bool jetstream = false;  // -js, with the store in the temporary directory
  int port = 0;            // 0: a free port, picked at Start
  // A member of a cluster: its name, this server's route port on
  // 127.0.0.1, and the route ports of the others (give fixed ports: the
  // members must know each other's before they start).
  std::string cluster_name{};
  int cluster_port = 0;
  std::vector<int> route_ports{};
};

class NatsServerProcess {
 public:
  explicit NatsServerProcess(NatsServerOptions options = {});
  // Stops the server (SIGTERM, then SIGKILL after 5 s) and removes its
  // temporary directory.
  ~NatsServerProcess();
  NatsServerProcess(const NatsServerProcess&) = delete;
  NatsServerProcess& operator=(const NatsServerProcess&) = delete;

  // Starts the server and waits (up to 10 s) until it accepts connections
  // and identifies itself as this server. With port 0, retries on another
  // free port when the chosen one turns out to be taken. Failure (no
  // nats-server installed, it exited, it never answered) is a false result
  // whose message says why: use ASSERT_TRUE(server.Start()). No-op when
  // running.
  ::testing::AssertionResult Start();
  // SIGTERM and wait (SIGKILL after 5 s). No-op when not running.
  void Stop();
  // SIGKILL and wait: the server vanishes without closing connections
  // cleanly.
  void Kill();
  // Stop, then Start on the same port (and the same JetStream store).
  ::testing::AssertionResult Restart();

  bool running() const { return pid_ > 0; }
  // Valid after the first successful Start; stays the same across Restart.
  int port() const { return port_; }
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
  // The server's combined stdout and stderr so far.
  std::string Log() const;

  // A TCP port on 127.0.0.1 that was free a moment ago (bound to 0, then
  // closed), e.g. to point a client at a server that is started later.
  static int PickFreePort();
  // The nats-server binary to run, or "" when none is installed.
  static std::string FindBinary();

 private:
  ::testing::AssertionResult StartOnce(const std::string& binary, bool* port_taken);
  bool WaitUntilReady(std::string* why);
  void Signal(int signal, int grace_ms);

  NatsServerOptions options_;
  std::string dir_;   // temporary: log, JetStream store
  std::string name_;  // the server_name it must report, unique per instance
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace wisp::testing

#endif  // WISP_TESTS_SUPPORT_NATS_SERVER_H_
