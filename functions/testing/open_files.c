/* open_files: opens /dev/null until open is refused, closes what it opened
 * and replies "refused after <n> opens: <error>". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

enum { kMaxOpens = 1 << 20 };

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  static int fds[kMaxOpens];
  (void)state;
  int n = 0;
  int error = 0;
  while (n < kMaxOpens) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      error = errno;
      break;
    }
    fds[n++] = fd;
  }
  for (int i = 0; i < n; ++i) close(fds[i]);
  char reply[96];
  int len = snprintf(reply, sizeof(reply), "refused after %d opens: %s", n,
                     error == 0 ? "never" : strerrorname_np(error));
  return req->host->write(ctx, reply, (size_t)len);
}
