/* notify: the last stage. Tells the customer (here: the function's log) what
 * the priced order costs. */
#include <stdio.h>
#include <string.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  (void)state;
  char id[32], item[32], total[32];
  long quantity = 0;
  char line[160];
  const size_t len = req->body_len < sizeof(line) - 1 ? req->body_len : sizeof(line) - 1;
  memcpy(line, req->body, len);
  line[len] = '\0';
  if (sscanf(line, "%31[^,],%31[^,],%ld,%31s", id, item, &quantity, total) != 4) return 1;
  char message[160];
  const int n = snprintf(message, sizeof(message), "order %s: %ld x %s = %s, confirmed", id,
                         quantity, item, total);
  return req->host->log(ctx, WISP_LOG_INFO, message, (size_t)n);
}
