/* close_fds: closes every file descriptor it has, the runtime's channel
 * included, then tries to reply. */
#include <unistd.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  (void)state;
  for (int fd = 0; fd < 1024; ++fd) close(fd);
  return req->host->write(ctx, "closed", 6);
}
