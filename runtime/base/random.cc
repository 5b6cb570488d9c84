#include "runtime/base/random.h"

#include <sys/random.h>

#include <cerrno>

#include "runtime/base/check.h"

namespace wisp {

void FillRandom(void* out, size_t n) {
  auto* p = static_cast<unsigned char*>(out);
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::getrandom(p + got, n - got, 0);
    if (r > 0) {
      got += static_cast<size_t>(r);
    } else {
      WISP_CHECK(r < 0 && errno == EINTR);
    }
  }
}

std::string RandomAlphanumeric(size_t n) {
  static constexpr char kAlphabet[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string out(n, '0');
  size_t filled = 0;
  unsigned char bytes[64];
  while (filled < n) {
    FillRandom(bytes, sizeof(bytes));
    for (unsigned char b : bytes) {
      if (b >= 248) continue;  // 248 = 4 * 62: keeps the choice uniform
      out[filled++] = kAlphabet[b % 62];
      if (filled == n) break;
    }
  }
  return out;
}

}  // namespace wisp
