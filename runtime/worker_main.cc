// wisp-worker: a function's process. Without arguments it serves one
// function on fd 3 (worker_loop.h); with --zygote it forks such workers on
// request (zygote_server.h). Either way it dies with its parent.
#include <signal.h>
#include <sys/prctl.h>

#include <cstdio>
#include <cstring>

#include "runtime/worker_loop.h"
#include "runtime/zygote_server.h"

int main(int argc, char** argv) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  ::signal(SIGPIPE, SIG_IGN);
  if (argc == 2 && std::strcmp(argv[1], "--zygote") == 0) return wisp::runtime::RunZygote();
  if (argc != 1) {
    std::fprintf(stderr, "usage: wisp-worker [--zygote]  (started by the wisp controller)\n");
    return 2;
  }
  wisp::runtime::RunWorker();
}
