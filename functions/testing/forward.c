/* forward: emits its body, unchanged, on the subject named by FORWARD_TO
 * (config map), and replies with the body. A pipeline stage for the
 * durable-delivery tests. */
#include <stdlib.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  (void)state;
  const char* to = getenv("FORWARD_TO");
  if (to == NULL) return 2;
  if (req->host->emit(ctx, to, req->body, req->body_len) != WISP_OK) return 3;
  return req->host->write(ctx, req->body, req->body_len);
}
