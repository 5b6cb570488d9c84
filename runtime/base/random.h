// Random bytes and identifiers from the kernel's CSPRNG (getrandom).
// Callable from any thread; never fails (getrandom is retried on EINTR).
#ifndef WISP_RUNTIME_BASE_RANDOM_H_
#define WISP_RUNTIME_BASE_RANDOM_H_

#include <cstddef>
#include <string>

namespace wisp {

// Fills n bytes at out.
void FillRandom(void* out, size_t n);

// n characters of [0-9A-Za-z] (a NUID-like token: 22 characters carry
// about 131 bits).
std::string RandomAlphanumeric(size_t n);

}  // namespace wisp

#endif  // WISP_RUNTIME_BASE_RANDOM_H_
