/* journal: appends the body and a newline to the file named by the query
 * string (for events, which have none: by JOURNAL from its config map), then replies
 * with the body; a body of "crash" segfaults after appending; DELAY_US in
 * its config map makes it wait that long after appending, before replying.
 * Lets a test count how often each invocation really ran. */
#include <fcntl.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  (void)state;
  const char* path = req->query.len > 0 ? req->query.data : getenv("JOURNAL");
  if (path == NULL) return 2;
  /* Each worker runs as its own user: the file is created writable by all
   * at once (a chmod after would leave a moment when another worker's open
   * is refused). */
  const mode_t mask = umask(0);
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0666);
  umask(mask);
  if (fd < 0) return 2;
  /* One write per line: concurrent workers never interleave within it. */
  char* line = malloc(req->body_len + 1);
  if (line == NULL) {
    close(fd);
    return 2;
  }
  memcpy(line, req->body, req->body_len);
  line[req->body_len] = '\n';
  ssize_t ignored = write(fd, line, req->body_len + 1);
  (void)ignored;
  free(line);
  close(fd);
  const char* delay = getenv("DELAY_US");
  if (delay != NULL) usleep((useconds_t)strtoul(delay, NULL, 10));
  if (req->body_len == 5 && memcmp(req->body, "crash", 5) == 0) {
    volatile int* nowhere = 0;
    *nowhere = 1;
  }
  return req->host->write(ctx, req->body, req->body_len);
}
