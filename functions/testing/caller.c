/* caller: calls the function named by CALL_NEXT (config map) with its own
 * body, waiting at most CALL_TIMEOUT_MS (default 0: the callee's timeout),
 * and replies "<its name>(<status>[!]:<reply>)", '!' marking a call that got
 * no reply (WISP_E_CALL). Without CALL_NEXT it replies "<its name>:<body>".
 * Its own traceparent is appended as " tp=<traceparent>" when TRACE is set.
 * With CALL_BODY_NAMES set, a non-empty body names the function to call
 * (with an empty body) instead. Chains of callers show calls, cycles and
 * timeouts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  (void)state;
  const wisp_host* host = req->host;
  const char* self = getenv("WISP_FUNCTION_NAME");
  const char* next = getenv("CALL_NEXT");
  char named[64];
  wisp_str body = {(const char*)req->body, req->body_len};
  if (getenv("CALL_BODY_NAMES") != NULL && req->body_len > 0) {
    if (req->body_len >= sizeof(named)) return 4;
    memcpy(named, req->body, req->body_len);
    named[req->body_len] = '\0';
    next = named;
    body.len = 0;
  }
  if (self == NULL) self = "?";
  host->write(ctx, self, strlen(self));
  if (next == NULL) {
    host->write(ctx, ":", 1);
    return host->write(ctx, req->body, req->body_len);
  }
  if (!WISP_HOST_HAS(host, call)) return 2;
  const char* timeout = getenv("CALL_TIMEOUT_MS");
  int status = 0;
  wisp_str reply = {"", 0};
  const int rc = host->call(ctx, next, body.data, body.len,
                            timeout != NULL ? (uint32_t)strtoul(timeout, NULL, 10) : 0, &status,
                            &reply);
  if (rc != WISP_OK && rc != WISP_E_CALL) return 3;
  char head[32];
  const int n = snprintf(head, sizeof(head), "(%d%s:", status, rc == WISP_E_CALL ? "!" : "");
  host->write(ctx, head, (size_t)n);
  host->write(ctx, reply.data, reply.len);
  host->write(ctx, ")", 1);
  if (getenv("TRACE") != NULL) {
    for (size_t i = 0; i < req->header_count; ++i) {
      if (strcmp(req->headers[i].name.data, "traceparent") == 0) {
        host->write(ctx, " tp=", 4);
        host->write(ctx, req->headers[i].value.data, req->headers[i].value.len);
      }
    }
  }
  return 0;
}
