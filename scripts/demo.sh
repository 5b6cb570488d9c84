#!/usr/bin/env bash
# Builds wisp, starts a controller on 127.0.0.1:$WISP_PORT, deploys the example
# functions and shows how to call them. Stays in the foreground until Ctrl-C.
#   WISP_PORT       HTTP port (default: 8080)
#   WISP_HOME       data directory (default: ~/.wisp)
#   WISP_BUILD_DIR  build directory (default: build)
#   WISP_DEMO_EXIT  1: stop the controller and exit 0 after the demo calls
#   WISP_SKIP_SETUP 1: use the binaries already built (skip scripts/setup.sh)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${WISP_BUILD_DIR:-build}"
PORT="${WISP_PORT:-8080}"
DATA_DIR="${WISP_HOME:-$HOME/.wisp}"
URL="http://127.0.0.1:$PORT"
cd "$ROOT"

if [[ "${WISP_SKIP_SETUP:-0}" != "1" ]]; then
  bash scripts/setup.sh
fi

WISP="$BUILD_DIR/bin/wisp"
EXAMPLES="$BUILD_DIR/examples"

if curl -fsS -o /dev/null --max-time 1 "$URL/healthz" 2>/dev/null; then
  echo "demo: something already answers on $URL; set WISP_PORT to another port" >&2
  exit 1
fi

mkdir -p "$DATA_DIR"
"$WISP" up --listen "127.0.0.1:$PORT" --data "$DATA_DIR" &
CONTROLLER_PID=$!

stop_controller() {
  if [[ -n "${CONTROLLER_PID:-}" ]] && kill -0 "$CONTROLLER_PID" 2>/dev/null; then
    kill -TERM "$CONTROLLER_PID" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$CONTROLLER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$CONTROLLER_PID" 2>/dev/null || true
    wait "$CONTROLLER_PID" 2>/dev/null || true
  fi
  CONTROLLER_PID=
}
trap 'stop_controller' EXIT
trap 'echo; echo "demo: stopping"; stop_controller; exit 0' INT TERM

# Bounded wait for the controller to answer (about 10 s).
ready=0
for _ in $(seq 100); do
  if ! kill -0 "$CONTROLLER_PID" 2>/dev/null; then
    echo "demo: the controller exited during start-up (see its output above)" >&2
    exit 1
  fi
  if curl -fsS -o /dev/null --max-time 1 "$URL/healthz" 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.1
done
if ((ready == 0)); then
  echo "demo: the controller did not answer $URL/healthz within 10 s" >&2
  exit 1
fi

"$WISP" deploy "$EXAMPLES/hello.so" --subscribe 'greet.*' --server "$URL"
for fn in echo headers; do
  "$WISP" deploy "$EXAMPLES/$fn.so" --server "$URL"
done

cat <<MSG

wisp is running on $URL (data in $DATA_DIR). Try:

  curl -d world $URL/fn/hello                      # "hello, world"
  curl -H 'Content-Type: text/plain' -d 'any bytes' $URL/fn/echo
  curl -i -A demo-agent $URL/fn/headers/some/path  # status, x-wisp-* headers
  $WISP ls --server $URL
  $WISP invoke hello world --server $URL
  $WISP publish greet.ann ann --server $URL          # an event on the embedded broker
  $WISP request greet.bob bob --server $URL          # request-reply: "hello, bob"
  $WISP services --server $URL                       # loaded functions as NATS services
  $WISP invocations --server $URL                    # the calls just made: version, cold or warm, ms

Dashboard: $URL/ui#token=$(cat "$DATA_DIR/token")

MSG

echo "\$ curl -d world $URL/fn/hello"
curl -fsS -d world "$URL/fn/hello"
echo
echo "\$ wisp request greet.bob bob"
"$WISP" request greet.bob bob --server "$URL"
echo

if [[ "${WISP_DEMO_EXIT:-0}" == "1" ]]; then
  stop_controller
  exit 0
fi

echo "Press Ctrl-C to stop."
wait "$CONTROLLER_PID"
