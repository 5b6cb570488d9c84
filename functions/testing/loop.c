/* loop: wisp_handle never returns (spins on a volatile counter). */
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  volatile unsigned long counter = 0;
  (void)state;
  (void)ctx;
  (void)req;
  for (;;) counter++;
}
