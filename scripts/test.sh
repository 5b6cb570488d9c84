#!/usr/bin/env bash
# Builds wisp (scripts/setup.sh) and runs the whole test suite with ctest:
# unit tests, the C ABI check and the integration tests (label "integration")
# against the real binaries; then the same suite again in an ASan + UBSan
# build (scripts/sanitize.sh); then every libFuzzer target for 15 s
# (scripts/fuzz.sh). Exits nonzero if any of it failed.
#   WISP_SANITIZE_SUITE  1 runs the sanitizer suite (default 1; 0 skips it)
#   WISP_FUZZ_SECONDS  seconds per fuzzer (default 15; 0 skips them)
#   WISP_BUILD_DIR  build directory (default: build)
#   WISP_CTEST_ARGS extra ctest arguments (e.g. "-L integration" or "-LE integration")
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${WISP_BUILD_DIR:-build}"
cd "$ROOT"

WISP_TEST_PACKAGES=1 bash scripts/setup.sh

# Integration tests pick free ports and temp dirs, so two run side by side.
set +e
# shellcheck disable=SC2086
ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 300 -j2 ${WISP_CTEST_ARGS:-}
rc=$?
if [[ "${WISP_SANITIZE_SUITE:-1}" != "0" ]]; then
  echo "wisp: the test suite again, built with AddressSanitizer and UndefinedBehaviorSanitizer"
  # shellcheck disable=SC2086
  WISP_ASAN_DIR="${WISP_ASAN_DIR:-$ROOT/build-asan}" bash scripts/sanitize.sh ${WISP_CTEST_ARGS:-} \
    || rc=1
fi
if [[ "${WISP_FUZZ_SECONDS:-15}" != "0" ]]; then
  WISP_FUZZ_DIR="${WISP_FUZZ_DIR:-$ROOT/build-fuzz}" bash scripts/fuzz.sh "${WISP_FUZZ_SECONDS:-15}" \
    || rc=1
fi
set -e
exit "$rc"
