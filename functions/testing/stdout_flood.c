/* stdout_flood: writes 4 MiB to stdout and 4 MiB to stderr (both captured by
 * the controller as log lines), then replies "flooded". */
#include <stdio.h>
#include <string.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  (void)state;
  char line[1024];
  memset(line, 'x', sizeof(line) - 1);
  line[sizeof(line) - 1] = '\n';
  for (int i = 0; i < 4096; ++i) {
    fwrite(line, 1, sizeof(line), stdout);
    fwrite(line, 1, sizeof(line), stderr);
  }
  fflush(stdout);
  return req->host->write(ctx, "flooded", 7);
}
