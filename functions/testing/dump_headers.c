/* dump_headers: replies with every request header it was given, one
 * "name: value" line each. */
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  (void)state;
  for (size_t i = 0; i < req->header_count; ++i) {
    req->host->write(ctx, req->headers[i].name.data, req->headers[i].name.len);
    req->host->write(ctx, ": ", 2);
    req->host->write(ctx, req->headers[i].value.data, req->headers[i].value.len);
    req->host->write(ctx, "\n", 1);
  }
  return 0;
}
