/* hello: replies "hello, <body>". */
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  static const char kGreeting[] = "hello, ";
  (void)state;
  req->host->write(ctx, kGreeting, sizeof(kGreeting) - 1);
  return req->host->write(ctx, req->body, req->body_len);
}
