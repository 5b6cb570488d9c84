#!/usr/bin/env bash
# Builds wisp with AddressSanitizer and UndefinedBehaviorSanitizer
# (-DWISP_SANITIZE=ON, in build-asan) and runs the whole test suite against
# those binaries. Any sanitizer report fails the test it happens in. Memory
# limits are not applied in this build (RLIMIT_AS would refuse ASan's
# shadow); their tests are skipped.
#   WISP_ASAN_DIR  build directory (default: build-asan)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${WISP_ASAN_DIR:-$ROOT/build-asan}"

cmake -S "$ROOT" -B "$BUILD_DIR" -DWISP_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" >/dev/null

# halt_on_error: a report ends the process, so the test sees it.
# handle_segv=0: the test functions that crash on purpose die of SIGSEGV, as
# the tests expect, not of ASan's report.
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:handle_segv=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"
ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 600 -j2 "$@"
