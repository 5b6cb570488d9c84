#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/, clang with ASan and UBSan) and
# runs each for SECONDS (default 60), starting from the committed seeds in
# tests/fuzz/corpus/<target>/; what a run learns is kept in
# $WISP_FUZZ_DIR/corpus/<target>/ for the next run. A crash stops the script
# with a nonzero status; its reproducer is in $WISP_FUZZ_DIR/artifacts/.
#   scripts/fuzz.sh [SECONDS] [TARGET...]   (targets: http_request frame_decoder
#                                            manifest cloudevents elf_validator deploy_query)
#   WISP_FUZZ_DIR  build and work directory (default: build-fuzz)
# CI runs every target briefly (scripts/test.sh); run longer by hand, e.g.
#   bash scripts/fuzz.sh 3600 http_request
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_EACH="${1:-60}"
shift || true
TARGETS=("$@")
if ((${#TARGETS[@]} == 0)); then
  TARGETS=(http_request frame_decoder manifest cloudevents elf_validator deploy_query)
fi
WORK="${WISP_FUZZ_DIR:-$ROOT/build-fuzz}"
log() { printf 'fuzz: %s\n' "$*" >&2; }

for tool in clang clang++; do
  command -v "$tool" >/dev/null || { log "$tool is missing (scripts/setup.sh installs it)"; exit 1; }
done

CC=clang CXX=clang++ cmake -S "$ROOT" -B "$WORK" -DWISP_FUZZ=ON -DWISP_BUILD_TESTS=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$WORK" --target wisp_fuzzers -j"$(nproc)" >/dev/null

mkdir -p "$WORK/artifacts"
for target in "${TARGETS[@]}"; do
  corpus="$WORK/corpus/$target"
  mkdir -p "$corpus"
  seeds=("$ROOT/tests/fuzz/corpus/$target")
  [[ -d "${seeds[0]}" ]] || seeds=()
  log "$target: ${SECONDS_EACH}s"
  # -rss_limit_mb: libFuzzer's own bound; the runs are single-process.
  if ! "$WORK/fuzz/${target}_fuzz" -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 \
      -max_len=65536 -print_final_stats=1 -artifact_prefix="$WORK/artifacts/${target}-" \
      "$corpus" "${seeds[@]}" 2>"$WORK/$target.log"; then
    tail -n 40 "$WORK/$target.log" >&2
    log "$target FAILED; reproducer: $(ls -t "$WORK/artifacts/${target}-"* 2>/dev/null | head -n 1)"
    exit 1
  fi
  grep -E "stat::number_of_executed_units|cov:" "$WORK/$target.log" | tail -n 2 | sed "s/^/fuzz: $target: /" >&2
done
log "every target ran clean"
