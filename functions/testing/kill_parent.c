/* kill_parent: sends SIGKILL to its parent process (the zygote that forked
 * it), then replies. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <unistd.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  (void)state;
  kill(getppid(), SIGKILL);
  return req->host->write(ctx, "killed", 6);
}
