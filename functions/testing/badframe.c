/* badframe: writes bytes that are not a frame to the worker's output channel (fd 4)
 * before replying: the controller must end the worker with a clear error. */
#include <unistd.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  static const char kGarbage[] = "\x05\x00\x00\x00\xff\xff\xff\xff\xff";
  (void)state;
  if (write(4, kGarbage, sizeof(kGarbage) - 1) < 0) return 1;
  return req->host->write(ctx, "unreachable", 11);
}
