/* validate: the first stage. An order that parses goes on to orders.valid;
 * anything else goes to the dead-letter subject orders.invalid with the
 * reason in a header. */
#include <wisp/function.h>

#include "order.h"

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  (void)state;
  order o;
  char why[96];
  const wisp_host* host = req->host;
  if (parse_order((const char*)req->body, req->body_len, &o, why, sizeof(why)) != 0) {
    const wisp_header reason = {{"x-reason", 8}, {why, strlen(why)}};
    host->set_status(ctx, 422);
    host->write(ctx, why, strlen(why));
    return host->emit_event(ctx, "orders.invalid", req->body, req->body_len, &reason, 1);
  }
  const wisp_header type = {{"ce-type", 7}, {"com.example.order.valid", 23}};
  return host->emit_event(ctx, "orders.valid", req->body, req->body_len, &type, 1);
}
