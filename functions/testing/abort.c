/* abort: wisp_handle calls abort() (SIGABRT). */
#include <stdlib.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  (void)state;
  (void)ctx;
  (void)req;
  abort();
}
