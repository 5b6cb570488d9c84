/* bad_abi: claims ABI version 7, which no runtime speaks. */
#include <wisp/function.h>

WISP_EXPORT uint32_t wisp_abi_version(void) { return 7; }

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  (void)state;
  return req->host->write(ctx, "bad abi", 7);
}
