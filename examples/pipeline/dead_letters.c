/* dead_letters: keeps the orders the pipeline refused, with the reason
 * (here: in the function's log). */
#include <stdio.h>
#include <string.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  (void)state;
  const char* reason = "unknown";
  for (size_t i = 0; i < req->header_count; ++i) {
    if (strcmp(req->headers[i].name.data, "x-reason") == 0) reason = req->headers[i].value.data;
  }
  char message[256];
  const int n = snprintf(message, sizeof(message), "dead letter '%.*s': %s",
                         (int)(req->body_len < 128 ? req->body_len : 128), (const char*)req->body,
                         reason);
  return req->host->log(ctx, WISP_LOG_WARN, message, (size_t)n);
}
