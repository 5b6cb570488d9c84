/* alloc_until_refused: allocates and touches 1 MiB blocks until malloc
 * refuses one, frees them all and replies "<n> MiB" (how many it got). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

enum { kBlock = 1 << 20, kMaxBlocks = 1 << 16 };

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  static void* blocks[kMaxBlocks];
  (void)state;
  int n = 0;
  while (n < kMaxBlocks) {
    void* block = malloc(kBlock);
    if (block == NULL) break;
    memset(block, 1, kBlock);
    blocks[n++] = block;
  }
  for (int i = 0; i < n; ++i) free(blocks[i]);
  char reply[32];
  int len = snprintf(reply, sizeof(reply), "%d MiB", n);
  return req->host->write(ctx, reply, (size_t)len);
}
