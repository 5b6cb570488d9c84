/* hugeframe: announces a 4 GiB frame on the worker's output channel (fd 4): the
 * controller must refuse it by its length, before buffering anything. */
#include <unistd.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  static const char kLength[] = "\xff\xff\xff\xff";
  (void)state;
  if (write(4, kLength, sizeof(kLength) - 1) < 0) return 1;
  return req->host->write(ctx, "unreachable", 11);
}
