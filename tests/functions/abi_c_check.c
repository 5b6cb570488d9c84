/* Compiled as plain C11 with -Wall -Wextra -Werror -pedantic: the ABI header
 * must stay C, with no C++ types crossing it. */
#include <wisp/function.h>

#include <stddef.h>

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  (void)state;
  if (req->size < offsetof(wisp_request, body_len) + sizeof(req->body_len)) return 1;
  if (WISP_HOST_HAS(req->host, emit_event)) {
    const wisp_header type = {{"ce-type", 7}, {"check", 5}};
    if (req->host->emit_event(ctx, "abi.check", "", 0, &type, 1) != WISP_OK) return 1;
  }
  return req->host->write(ctx, req->body, req->body_len);
}
