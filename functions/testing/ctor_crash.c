/* ctor_crash: a valid function whose library constructor segfaults, so
 * merely loading it kills the process. */
#include <stddef.h>
#include <wisp/function.h>

__attribute__((constructor)) static void CrashOnLoad(void) {
  volatile int* volatile p = NULL;
  *p = 1;
}

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  (void)state;
  return req->host->write(ctx, "unreachable", 11);
}
