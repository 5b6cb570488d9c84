/* wisp-warmup: the function a generic worker loads, calls and unloads once
 * while it waits in the warm pool, so that a real cold start finds the
 * loader, the host calls and the protocol code already paged in. It uses
 * every host call a typical function makes. */
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_init(const wisp_host* host, void** state) {
  (void)host;
  *state = 0;
  return 0;
}

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  const wisp_host* host = req->host;
  (void)state;
  host->set_status(ctx, 200);
  host->set_header(ctx, "content-type", "text/plain");
  host->write(ctx, "warm ", 5);
  return host->write(ctx, req->body, req->body_len);
}

WISP_EXPORT void wisp_fini(void* state) { (void)state; }
