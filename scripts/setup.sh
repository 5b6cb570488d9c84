#!/usr/bin/env bash
# Installs wisp's build and test dependencies (Debian 12) when missing, then
# configures and builds the tree. Idempotent: a second run installs nothing and
# rebuilds only what changed.
#   WISP_BUILD_DIR   build directory (default: build)
#   WISP_BUILD_TYPE  CMake build type (default: RelWithDebInfo)
#   WISP_TEST_PACKAGES  1: also what only the tests need (chromium, headless,
#                    for the dashboard's browser test; clang for the fuzzers);
#                    scripts/test.sh sets it
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${WISP_BUILD_DIR:-build}"
BUILD_TYPE="${WISP_BUILD_TYPE:-RelWithDebInfo}"

PACKAGES=(
  build-essential cmake pkg-config
  libuv1-dev libprotobuf-dev protobuf-compiler
  libnats-dev nats-server
  libsqlite3-dev
  libgtest-dev libgmock-dev
  libhttp-parser-dev libcli11-dev libssl-dev libyaml-cpp-dev libbenchmark-dev
  libseccomp-dev
  wrk curl procps
)
if [[ "${WISP_TEST_PACKAGES:-0}" == "1" ]]; then
  # chromium: the dashboard's browser test; clang with its runtime: the
  # libFuzzer targets (scripts/fuzz.sh).
  PACKAGES+=(chromium fonts-dejavu-core clang libclang-rt-14-dev)
fi

log() { printf 'setup: %s\n' "$*" >&2; }

missing=()
for pkg in "${PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
  if [[ "$status" != "install ok installed" ]]; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} > 0)); then
  log "installing: ${missing[*]}"
  SUDO=()
  if [[ "$(id -u)" -ne 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
      log "not root and sudo is not available; install these packages: ${missing[*]}"
      exit 1
    fi
    SUDO=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  log "all packages present"
fi

cd "$ROOT"
log "configuring $BUILD_DIR ($BUILD_TYPE)"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="$BUILD_TYPE"
log "building $BUILD_DIR"
cmake --build "$BUILD_DIR" -j"$(nproc)"
