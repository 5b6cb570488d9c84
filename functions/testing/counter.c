/* counter: keeps a count across invocations in wisp_init's state; replies
 * "<count> <pid>". */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <wisp/function.h>

typedef struct CounterState {
  unsigned long count;
} CounterState;

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_init(const wisp_host* host, void** state) {
  CounterState* s = calloc(1, sizeof(*s));
  (void)host;
  if (s == NULL) return 1;
  *state = s;
  return 0;
}

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  CounterState* s = state;
  char reply[64];
  int n;
  s->count++;
  n = snprintf(reply, sizeof(reply), "%lu %ld", s->count, (long)getpid());
  return req->host->write(ctx, reply, (size_t)n);
}

WISP_EXPORT void wisp_fini(void* state) { free(state); }
