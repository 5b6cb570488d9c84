/* exit3: wisp_handle calls exit(3), ending the worker process. */
#include <stdlib.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  (void)state;
  (void)ctx;
  (void)req;
  exit(3);
}
