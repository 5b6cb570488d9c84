/* init_fail: wisp_init returns 3, so loading fails. */
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_init(const wisp_host* host, void** state) {
  (void)host;
  (void)state;
  return 3;
}

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  (void)state;
  return req->host->write(ctx, "unreachable", 11);
}
