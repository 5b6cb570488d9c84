// alloc_throw: grows a std::vector of 1 MiB strings until std::bad_alloc,
// which it does not catch.
#include <string>
#include <vector>

#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

extern "C" WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  (void)state;
  std::vector<std::string> hoard;
  for (;;) hoard.emplace_back(1 << 20, 'x');
  return req->host->write(ctx, "unreachable", 11);
}
