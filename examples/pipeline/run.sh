#!/usr/bin/env bash
# Runs the orders pipeline on the embedded broker: starts a controller with a
# fresh data dir, applies wisp.yaml, publishes four orders (two good, two
# refused) and prints what the last stages said.
#   WISP_PORT        HTTP port (default 8090)
#   WISP_SKIP_SETUP  1: do not run scripts/setup.sh (the build must exist)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
[[ "${WISP_SKIP_SETUP:-0}" == "1" ]] || bash scripts/setup.sh
WISP="$ROOT/build/bin/wisp"
PORT="${WISP_PORT:-8090}"
DATA="$(mktemp -d /tmp/wisp-pipeline.XXXXXX)"
export WISP_URL="http://127.0.0.1:$PORT" WISP_HOME="$DATA"
unset WISP_TOKEN

"$WISP" up --listen "127.0.0.1:$PORT" --data "$DATA" >/dev/null 2>"$DATA/controller.log" &
PID=$!
cleanup() {
  kill -TERM "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  rm -rf "$DATA"
}
trap cleanup EXIT
for _ in $(seq 100); do
  curl -fsS -o /dev/null --max-time 1 "$WISP_URL/healthz" 2>/dev/null && break
  kill -0 "$PID" 2>/dev/null || { cat "$DATA/controller.log" >&2; exit 1; }
  sleep 0.1
done

"$WISP" apply -f examples/pipeline/wisp.yaml
for order in "o-1,widget,3" "o-2,gadget,1" "o-3,widget,0" "o-4,sprocket,2"; do
  echo "\$ wisp publish orders.new $order"
  "$WISP" publish orders.new "$order"
done

results() { grep -cE "order o-|dead letter" "$DATA/controller.log" || true; }
for _ in $(seq 100); do
  (( $(results) >= 4 )) && break
  sleep 0.1
done
echo
echo "what the pipeline said (notify and dead-letters logs):"
grep -E "order o-|dead letter" "$DATA/controller.log" | sed -E 's/^\[([a-z_-]+) [0-9]+\] /  \1: /'
