/* fini_crash: answers "ok", and segfaults in wisp_fini, when it is unloaded. */
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  (void)state;
  return req->host->write(ctx, "ok", 2);
}

WISP_EXPORT void wisp_fini(void* state) {
  (void)state;
  volatile int* nowhere = 0;
  *nowhere = 1;
}
