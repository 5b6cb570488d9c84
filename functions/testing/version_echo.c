/* version_echo: replies "<WISP_FUNCTION_VERSION> <GREETING>", both read from
 * the environment at wisp_init ("-" for one that is unset), e.g. "0.0.2 hi". */
#include <stdio.h>
#include <stdlib.h>
#include <wisp/function.h>

typedef struct VersionEchoState {
  char reply[256];
  int len;
} VersionEchoState;

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_init(const wisp_host* host, void** state) {
  VersionEchoState* s = calloc(1, sizeof(*s));
  const char* version = getenv("WISP_FUNCTION_VERSION");
  const char* greeting = getenv("GREETING");
  (void)host;
  if (s == NULL) return 1;
  s->len = snprintf(s->reply, sizeof(s->reply), "%s %s", version != NULL ? version : "-",
                    greeting != NULL ? greeting : "-");
  if (s->len < 0) s->len = 0;
  if ((size_t)s->len >= sizeof(s->reply)) s->len = (int)sizeof(s->reply) - 1;
  *state = s;
  return 0;
}

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  const VersionEchoState* s = state;
  return req->host->write(ctx, s->reply, (size_t)s->len);
}

WISP_EXPORT void wisp_fini(void* state) { free(state); }
