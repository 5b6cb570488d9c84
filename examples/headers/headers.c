/* headers: reads request headers, sets a status and a reply header.
 *
 * Replies 200 with "user-agent: <ua>" when the request carries a User-Agent,
 * else 400 naming the missing header. Always sets x-wisp-method to the
 * request's method and x-wisp-path to its path below /fn/headers. */
#include <string.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

static const wisp_str* find_header(const wisp_request* req, const char* name) {
  size_t n = strlen(name);
  for (size_t i = 0; i < req->header_count; ++i) {
    const wisp_str* h = &req->headers[i].name;
    if (h->len == n && memcmp(h->data, name, n) == 0) return &req->headers[i].value;
  }
  return NULL;
}

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  const wisp_host* host = req->host;
  const wisp_str* ua = find_header(req, "user-agent");
  (void)state;
  host->set_header(ctx, "x-wisp-method", req->method.data);
  host->set_header(ctx, "x-wisp-path", req->path.data);
  host->set_header(ctx, "content-type", "text/plain");
  if (ua == NULL) {
    static const char kMissing[] = "missing header: user-agent\n";
    host->set_status(ctx, 400);
    return host->write(ctx, kMissing, sizeof(kMissing) - 1);
  }
  host->set_status(ctx, 200);
  host->write(ctx, "user-agent: ", 12);
  host->write(ctx, ua->data, ua->len);
  return host->write(ctx, "\n", 1);
}
