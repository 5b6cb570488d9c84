// wisp-worker: a function's process. Without arguments it serves one
// function on fds 3 and 4 (worker_loop.h); with --zygote [--spin-us N] it forks such
// workers on request (zygote_server.h). Either way it dies with its parent.
#include <signal.h>
#include <sys/prctl.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "runtime/worker_loop.h"
#include "runtime/zygote_server.h"

int main(int argc, char** argv) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  ::signal(SIGPIPE, SIG_IGN);
  long spin_us = 0;
  if (argc == 4 && std::strcmp(argv[2], "--spin-us") == 0) {
    char* end = nullptr;
    spin_us = std::strtol(argv[3], &end, 10);
    if (end == argv[3] || *end != '\0' || spin_us < 0 || spin_us > 1000000) argc = -1;
  }
  if ((argc == 2 || argc == 4) && std::strcmp(argv[1], "--zygote") == 0) {
    return wisp::runtime::RunZygote(std::chrono::microseconds(spin_us));
  }
  if (argc != 1) {
    std::fprintf(stderr,
                 "usage: wisp-worker [--zygote [--spin-us N]]  (started by the wisp controller)\n");
    return 2;
  }
  wisp::runtime::RunWorker(std::chrono::microseconds(0));
}
