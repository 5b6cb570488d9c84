/* sleep: the body is a decimal number of milliseconds; sleeps that long and
 * replies "slept N". */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

static unsigned long ParseMillis(const char* data, size_t len) {
  unsigned long ms = 0;
  for (size_t i = 0; i < len && data[i] >= '0' && data[i] <= '9'; ++i) {
    ms = ms * 10 + (unsigned long)(data[i] - '0');
  }
  return ms;
}

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  unsigned long ms = ParseMillis((const char*)req->body, req->body_len);
  struct timespec left = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  char reply[32];
  int n;
  (void)state;
  while (nanosleep(&left, &left) != 0 && errno == EINTR) {
  }
  n = snprintf(reply, sizeof(reply), "slept %lu", ms);
  return req->host->write(ctx, reply, (size_t)n);
}
