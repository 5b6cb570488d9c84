// CHECK: aborts on a broken invariant of the program itself. Never use it for
// input from outside (requests, frames, files, arguments): those get a Status.
#ifndef WISP_RUNTIME_BASE_CHECK_H_
#define WISP_RUNTIME_BASE_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define WISP_CHECK(cond)                                                   \
  do {                                                                     \
    if (!(cond)) {                                                         \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
                   #cond);                                                 \
      std::abort();                                                        \
    }                                                                      \
  } while (0)

#endif  // WISP_RUNTIME_BASE_CHECK_H_
