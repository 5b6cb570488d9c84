/* status: replies with the status given in the body ("404" -> 404) and the
 * body itself, plus header "x-test: yes". Body "fail" fails the invocation. */
#include <string.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  const char* body = (const char*)req->body;
  int code = 0;
  (void)state;
  if (req->body_len == 4 && memcmp(body, "fail", 4) == 0) return 1;
  for (size_t i = 0; i < req->body_len && i < 4 && body[i] >= '0' && body[i] <= '9'; ++i) {
    code = code * 10 + (body[i] - '0');
  }
  if (code != 0) req->host->set_status(ctx, code);
  req->host->set_header(ctx, "x-test", "yes");
  return req->host->write(ctx, req->body, req->body_len);
}
