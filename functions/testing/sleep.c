/* sleep: the body is a decimal number of milliseconds, or of microseconds
 * with a "us" suffix; sleeps that long and replies "slept <body>". */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

/* The sleep the body asks for, in microseconds; *read gets the length of
 * what was read. */
static unsigned long ParseMicros(const char* data, size_t len, size_t* read) {
  unsigned long n = 0;
  size_t i = 0;
  for (; i < len && data[i] >= '0' && data[i] <= '9'; ++i) n = n * 10 + (unsigned long)(data[i] - '0');
  if (i + 2 <= len && data[i] == 'u' && data[i + 1] == 's') {
    *read = i + 2;
    return n;
  }
  *read = i;
  return n * 1000;
}

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  size_t read = 0;
  unsigned long us = ParseMicros((const char*)req->body, req->body_len, &read);
  struct timespec left = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000L};
  char reply[48];
  int n;
  (void)state;
  while (nanosleep(&left, &left) != 0 && errno == EINTR) {
  }
  n = snprintf(reply, sizeof(reply), "slept %.*s", (int)read, (const char*)req->body);
  if (n < 0) return 1;
  if ((size_t)n >= sizeof(reply)) n = (int)sizeof(reply) - 1; /* cut, as snprintf did */
  return req->host->write(ctx, reply, (size_t)n);
}
