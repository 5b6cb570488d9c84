/* chatty: writes "out: <body>" to stdout and "err: <body>" to stderr, then
 * replies "ok". For the tests of the function log. */
#include <stdio.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  (void)state;
  printf("out: %.*s\n", (int)req->body_len, (const char*)req->body);
  fflush(stdout);
  fprintf(stderr, "err: %.*s\n", (int)req->body_len, (const char*)req->body);
  return req->host->write(ctx, "ok", 2);
}
