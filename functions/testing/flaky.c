/* flaky: appends "<attempt> <unix ms> <body>" to the file named by JOURNAL
 * (config map), then fails (returns 1) while the attempt number is at most
 * FAIL_FIRST (config map, default 2) and succeeds after, replying with the
 * body. Lets a test watch retries, their backoff and dead letters. */
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <unistd.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  (void)state;
  const char* journal = getenv("JOURNAL");
  const char* fail_first = getenv("FAIL_FIRST");
  const long failures = fail_first != NULL ? strtol(fail_first, NULL, 10) : 2;
  if (journal != NULL) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char line[256];
    const int body_len = req->body_len > 128 ? 128 : (int)req->body_len;
    const int n = snprintf(line, sizeof(line), "%u %lld %.*s\n", req->attempt,
                           (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000, body_len,
                           (const char*)req->body);
    /* Each worker runs as its own user: the file is created writable by
     * all at once (a chmod after would leave a moment when another
     * worker's open is refused). */
    const mode_t mask = umask(0);
    int fd = open(journal, O_WRONLY | O_CREAT | O_APPEND, 0666);
    umask(mask);
    if (fd >= 0) {
      ssize_t ignored = write(fd, line, (size_t)n);
      (void)ignored;
      close(fd);
    }
  }
  if ((long)req->attempt <= failures) return 1;
  return req->host->write(ctx, req->body, req->body_len);
}
