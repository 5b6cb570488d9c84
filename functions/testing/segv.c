/* segv: wisp_handle dereferences a null pointer (SIGSEGV). */
#include <stddef.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  /* The pointer itself is volatile, so the compiler cannot prove it is null
   * and replace the store with a trap instruction. */
  volatile int* volatile p = NULL;
  (void)state;
  (void)ctx;
  (void)req;
  *p = 1;
  return 0;
}
