/* journal: appends the body and a newline to the file named by the query
 * string, then replies with the body; a body of "crash" segfaults after
 * appending. Lets a test count how often each invocation really ran. */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  (void)state;
  int fd = open(req->query.data, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) return 2;
  ssize_t ignored = write(fd, req->body, req->body_len);
  ignored = write(fd, "\n", 1);
  (void)ignored;
  close(fd);
  if (req->body_len == 5 && memcmp(req->body, "crash", 5) == 0) {
    volatile int* nowhere = 0;
    *nowhere = 1;
  }
  return req->host->write(ctx, req->body, req->body_len);
}
