/* kill_parent: sends SIGKILL to its parent process (the zygote that forked
 * it), then replies "killed", or "refused: <errno name>" when it may not. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  char reply[64];
  (void)state;
  int len = kill(getppid(), SIGKILL) == 0
                ? snprintf(reply, sizeof(reply), "killed")
                : snprintf(reply, sizeof(reply), "refused: %s", strerrorname_np(errno));
  return req->host->write(ctx, reply, (size_t)len);
}
