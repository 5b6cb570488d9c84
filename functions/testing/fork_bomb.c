/* fork_bomb: forks until fork is refused; every child forks too until it is
 * refused, then waits forever. Replies "refused after <n> forks: <error>". */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  (void)state;
  int forks = 0;
  int error = 0;
  for (int i = 0; i < 100000; ++i) {
    pid_t pid = fork();
    if (pid == 0) {
      while (fork() >= 0) {
      }
      for (;;) pause();
    }
    if (pid < 0) {
      error = errno;
      break;
    }
    ++forks;
  }
  char reply[96];
  int len = snprintf(reply, sizeof(reply), "refused after %d forks: %s", forks,
                     error == 0 ? "never" : strerrorname_np(error));
  return req->host->write(ctx, reply, (size_t)len);
}
