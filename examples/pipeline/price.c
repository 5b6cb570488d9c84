/* price: the second stage. Prices a valid order from a small catalogue and
 * emits it on orders.priced as "ID,ITEM,QUANTITY,TOTAL"; an item that is not
 * in the catalogue goes to orders.invalid. */
#include <wisp/function.h>

#include "order.h"

WISP_DEFINE_ABI_VERSION()

static const struct {
  const char* item;
  long cents;
} kCatalogue[] = {{"widget", 250}, {"gadget", 1000}, {"gizmo", 1999}};

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  (void)state;
  order o;
  char why[96];
  const wisp_host* host = req->host;
  if (parse_order((const char*)req->body, req->body_len, &o, why, sizeof(why)) != 0) return 1;
  for (size_t i = 0; i < sizeof(kCatalogue) / sizeof(kCatalogue[0]); ++i) {
    if (strcmp(kCatalogue[i].item, o.item) != 0) continue;
    const long total = kCatalogue[i].cents * o.quantity;
    char priced[160];
    const int n = snprintf(priced, sizeof(priced), "%s,%s,%ld,%ld.%02ld", o.id, o.item,
                           o.quantity, total / 100, total % 100);
    return host->emit(ctx, "orders.priced", priced, (size_t)n);
  }
  snprintf(why, sizeof(why), "no such item: %s", o.item);
  const wisp_header reason = {{"x-reason", 8}, {why, strlen(why)}};
  return host->emit_event(ctx, "orders.invalid", req->body, req->body_len, &reason, 1);
}
