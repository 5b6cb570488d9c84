#!/usr/bin/env bash
# wisp's benchmark suite: `bash tests/bench/run.sh` (not run by ctest).
#
# In one run, on 127.0.0.1 only:
#   1. the floor (wisp_bench_floor, bare libuv + http_parser) under wrk:
#      -c32 throughput and -c1 --latency, GET and POST "world";
#   2. wisp: `wisp up`, deploy hello, warm it, the same two POST loads on /fn/hello;
#   3. RSS: the idle controller right after start, the hello worker after the loads;
#   4. cold start: hello deployed under 60 + 30 fresh names (the defaults), each
#      called once, on disjoint names: "spaced", 60 calls 20 ms apart, so each
#      is an independent cold start and the warm pool is refilled in between
#      (the figure held to the targets); "burst", 30 calls back to back, more
#      than the warm pool (2) holds, so most wait for a worker forked and warmed
#      while other cold starts compete for the CPUs (reported, no target).
#   5. events (NATS), first, when nats-server is installed: wisp_bench_events
#      (tests/bench/events_bench.cc) against a nats-server on a free port and a
#      `wisp up --nats` on it: fire-and-forget events/s through relay.so (each
#      event emits one) against raw nats.c pub -> sub msgs/s, and request-reply
#      p50 on wisp.fn.hello against a raw nats.c responder, rounds alternated;
#      then the same events/s through wisp_bench_nats_relay (nats_relay.cc), a
#      bare nats.c relay that adds the CloudEvents headers wisp's emitted
#      events carry: what any relay of binary-mode CloudEvents costs NATS and
#      nats.c here, with no worker and no function (reported, no target).
#   6. recording: two controllers, one with invocation records and logs (the
#      default) and one with --no-records, -c32 on hello alternated in
#      RECORD_ROUNDS rounds; the ratio of their means (target >= 0.9).
#   7. pipeline, when nats-server is installed (after events): a three-stage
#      event pipeline, forward -> forward -> journal (FORWARD_TO, JOURNAL),
#      fed through POST /v1/events/pipe.new by PIPELINE_PUBLISHERS concurrent
#      HTTP publishers, with wisp_bench_pipeline (tests/bench/pipeline_bench.cc)
#      reading the sink's file back as it grows; in three modes, each on its own
#      controller: plain subscriptions on the embedded broker, --durable on the
#      embedded broker (sqlite queue), --durable on JetStream (`wisp up --nats`
#      on a nats-server -js). Events/s (first publish -> all N at the sink) and
#      end-to-end latency p50/p99 (events one at a time: POST sent -> line at
#      the sink), as ratios to the floor: the same three hops on raw nats.c
#      (subscribers republishing, the last appending the line), measured first
#      on the same nats-server; the JetStream mode also against the same three
#      hops on raw JetStream (nats.c durable pull consumers with explicit acks,
#      each hop acking once its publishes are stored), and a raw js_Publish
#      awaiting its PubAck (storing one event). No targets; a lost event counts
#      as a failure.
# Every wisp figure is printed next to the floor's from the same run, as a ratio
# (DESIGN.md: "A benchmark reports its figure as a ratio to a floor measured in
# the same run"), and cold start and RSS against the targets.
#
#   WISP_BUILD_DIR     build directory (default: build; configured if needed)
#   DURATION           seconds per wrk load (default: 5)
#   COLD_FUNCTIONS     functions for the spaced cold-start run (default: 60)
#   COLD_GAP_MS        pause between spaced cold starts, ms (default: 20)
#   BURST_FUNCTIONS    functions for the back-to-back cold-start run (default: 30)
#   WARM_POOL          wisp up --warm-pool (default: 2)
#   RECORD_ROUNDS      alternated records on/off rounds, on first in odd rounds (default: 2)
#   WISP_BENCH_STRICT  1: exit 1 when a target is missed (default: report only)
#   WISP_BENCH_FLOOR_ONLY  1: measure only the floor (this machine's figures)
#   WISP_BENCH_NO_BUILD    1: use the binaries already in WISP_BUILD_DIR
#   WISP_BENCH_EVENTS      0: skip the events section (default 1: run it if
#                          nats-server is found: $WISP_NATS_SERVER, PATH, /usr/sbin)
#   WISP_BENCH_EVENTS_ONLY 1: run only the events section
#   EVENTS_ROUNDS          alternated floor/wisp rounds, medians reported (default: 3)
#   EVENTS_FLOOR_MSGS      raw pub -> sub messages per round (default: 200000)
#   EVENTS_WISP_EVENTS     events through relay per round (default: 50000)
#   EVENTS_REQUESTS        timed requests per round, after 200 warm-up (default: 2000)
#   WISP_BENCH_PIPELINE    0: skip the pipeline section (default 1: run it if
#                          nats-server is found, as for events)
#   WISP_BENCH_PIPELINE_ONLY 1: run only the pipeline section
#   PIPELINE_EVENTS        events per throughput round, each mode (default: 5000)
#   PIPELINE_PUBLISHERS    concurrent HTTP publishers (default: 4)
#   PIPELINE_LATENCY_EVENTS sequential events per latency round (default: 300)
#   PIPELINE_GAP_US        pause between latency events, us (default: 2000)
#   PIPELINE_ROUNDS        throughput + latency rounds per mode, medians (default: 3)
#   PIPELINE_FLOOR_EVENTS  raw nats.c messages per floor throughput round (default: 50000)
#   WISP_BENCH_CLUSTER_ONLY 1: run only the cluster section: two controllers of
#                          one cluster on a nats-server -js; deploy on one until
#                          the other serves, against a raw KV put seen by a
#                          subscriber (tests/bench/cluster_bench.cc); then hello
#                          under wrk -c32 on one controller, and on both at once
#   CLUSTER_ROUNDS         deploys measured (default: 20)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
BUILD_DIR="${WISP_BUILD_DIR:-build}"
DURATION="${DURATION:-5}"
COLD_FUNCTIONS="${COLD_FUNCTIONS:-60}"
COLD_GAP_MS="${COLD_GAP_MS:-20}"
BURST_FUNCTIONS="${BURST_FUNCTIONS:-30}"
WARM_POOL="${WARM_POOL:-2}"
# PINNED=1 (default when there are 2+ CPUs) adds the same loads with the
# server on CPU 1 and wrk on CPU 0, for the floor and for wisp.
PINNED="${PINNED:-$(( $(nproc) >= 2 ? 1 : 0 ))}"
LUA="$ROOT/tests/bench/post_world.lua"
BIN="$BUILD_DIR/bin"
HELLO_SO="$BUILD_DIR/examples/hello.so"

# Targets (DESIGN.md): cold start p50/p99 in ms, RSS in MiB.
COLD_P50_TARGET_MS=1
COLD_P99_TARGET_MS=3
CONTROLLER_RSS_TARGET_MB=10
WORKER_RSS_TARGET_MB=4

log() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

for tool in wrk curl python3 cmake; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (run scripts/setup.sh)"
done

# ---------------------------------------------------------------- build
FLOOR_ONLY="${WISP_BENCH_FLOOR_ONLY:-0}"
PIPELINE_ONLY="${WISP_BENCH_PIPELINE_ONLY:-0}"
if [[ "${WISP_BENCH_NO_BUILD:-0}" == "1" ]]; then
  log "using the binaries in $BUILD_DIR (WISP_BENCH_NO_BUILD=1)"
elif [[ ! -f "$BUILD_DIR/CMakeCache.txt" ]]; then
  log "configuring $BUILD_DIR"
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
if [[ "${WISP_BENCH_NO_BUILD:-0}" != "1" ]]; then
  log "building into $BUILD_DIR"
  if [[ "$FLOOR_ONLY" == "1" ]]; then
    targets=(wisp_bench_floor)
  elif [[ "$PIPELINE_ONLY" == "1" ]]; then
    targets=(wisp wisp-worker wisp_warmup wisp_bench_pipeline testfn_forward testfn_journal)
  elif [[ "${WISP_BENCH_CLUSTER_ONLY:-0}" == "1" ]]; then
    targets=(wisp wisp-worker wisp_warmup wisp_bench_cluster wisp_bench_floor hello)
  else
    targets=(wisp wisp-worker wisp_warmup wisp_bench_floor wisp_bench_cold_start hello
      wisp_bench_events wisp_bench_nats_relay testfn_relay wisp_bench_pipeline testfn_forward
      testfn_journal)
  fi
  cmake --build "$BUILD_DIR" -j"$(nproc)" --target "${targets[@]}" >"$BUILD_DIR/bench-build.log" 2>&1 || {
    tail -30 "$BUILD_DIR/bench-build.log" >&2
    die "build failed (full log: $BUILD_DIR/bench-build.log)"
  }
fi

# ---------------------------------------------------------------- processes
WORK="$(mktemp -d "${TMPDIR:-/tmp}/wisp-bench.XXXXXX")"
FLOOR_PID=
RELAY_PID=
NATS_PID=
CONTROLLER_PID=
CONTROLLER_CHILDREN=()
WARNINGS=()

# Stops one process we started: TERM, a bounded wait, then KILL.
stop_pid() {
  local pid="$1"
  [[ -n "$pid" ]] || return 0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

stop_controller() {
  [[ -n "$CONTROLLER_PID" ]] || return 0
  # Remember its workers, so none outlives the run if the controller dies badly.
  local kids
  kids="$(ps -o pid= --ppid "$CONTROLLER_PID" 2>/dev/null || true)"
  stop_pid "$CONTROLLER_PID"
  CONTROLLER_PID=
  local pid
  for pid in $kids "${CONTROLLER_CHILDREN[@]}"; do
    if [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == wisp-worker* ]]; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}

cleanup() {
  stop_pid "${RELAY_PID:-}"
  stop_pid "${CLUSTER_B_PID:-}"
  stop_pid "${CLUSTER_C_PID:-}"
  stop_pid "$FLOOR_PID"
  FLOOR_PID=
  stop_controller
  stop_pid "$NATS_PID"
  NATS_PID=
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_http PID URL: bounded wait (10 s) until URL answers; fails if PID exits.
wait_http() {
  local pid="$1" url="$2"
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 1
    curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# pin_tree PID CPU: pins a process, its threads and all its descendants.
pin_tree() {
  local pid="$1" cpu="$2" child
  taskset -a -p -c "$cpu" "$pid" >/dev/null 2>&1 || true
  for child in $(pgrep -P "$pid" || true); do pin_tree "$child" "$cpu"; done
}

rss_kb() {
  awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true
}

# ---------------------------------------------------------------- wrk parsing
# run_wrk NAME ARGS...: runs wrk, keeps its output in $WORK/NAME.txt.
run_wrk() {
  local name="$1"
  shift
  local prefix=()
  [[ "$name" != *_pin_* ]] || prefix=(taskset -c 0)
  "${prefix[@]}" wrk "$@" >"$WORK/$name.txt" 2>&1 || { cat "$WORK/$name.txt" >&2; die "wrk $name failed"; }
  local errs
  errs="$(grep -E 'Non-2xx|Socket errors' "$WORK/$name.txt" || true)"
  if [[ -n "$errs" ]]; then
    log "$name: $errs"
    WARNINGS+=("$name: $(tr '\n' ' ' <<<"$errs")")
  fi
  local p50
  p50="$(p50_us "$name")"
  log "$name: $(rps "$name") req/s${p50:+, p50 $p50 us}"
}

rps() { awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$WORK/$1.txt"; }

# The 50% line of --latency, in microseconds ("50%  43.00us", "1.20ms", "1.01s").
p50_us() {
  awk '$1 == "50%" {
    v = $2; mult = 1
    if (v ~ /us$/) { sub(/us$/, "", v); mult = 1 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); mult = 1000 }
    else if (v ~ /m$/) { sub(/m$/, "", v); mult = 60000000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); mult = 1000000 }
    printf "%.1f", v * mult
  }' "$WORK/$1.txt"
}

# ---------------------------------------------------------------- events (NATS)
# A nats-server on a free loopback port, a `wisp up --nats` on it with relay
# (--subscribe bench.in) and hello deployed, and wisp_bench_events, which
# alternates the raw nats.c floors and wisp in rounds and prints the medians.
EVENTS_THROUGHPUT_TARGET=0.3  # wisp events/s over raw pub -> sub msgs/s, at least
EVENTS_P50_TARGET=2           # wisp request-reply p50 over raw nats.c's, at most
EVENTS_RAN=0
EVENTS_ONLY="${WISP_BENCH_EVENTS_ONLY:-0}"

find_nats_server() {
  if [[ -n "${WISP_NATS_SERVER:-}" ]]; then
    [[ -x "$WISP_NATS_SERVER" ]] && echo "$WISP_NATS_SERVER"
    return
  fi
  command -v nats-server 2>/dev/null && return
  [[ -x /usr/sbin/nats-server ]] && echo /usr/sbin/nats-server
}

# wait_tcp PID PORT: bounded wait (10 s) until 127.0.0.1:PORT accepts; fails if PID exits.
wait_tcp() {
  local pid="$1" port="$2"
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 1
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

events_field() { sed -nE "s/.* $1=([0-9.]+).*/\1/p" "${2:-$WORK/events.txt}"; }  # KEY [FILE]

run_events() {
  local nats_bin
  nats_bin="$(find_nats_server || true)"
  if [[ -z "$nats_bin" ]]; then
    log "events: nats-server not found, skipping (set WISP_NATS_SERVER)"
    WARNINGS+=("events: skipped, no nats-server")
    return 0
  fi
  local nats_port wisp_port url events_url
  nats_port="$(free_port)"
  "$nats_bin" -a 127.0.0.1 -p "$nats_port" >"$WORK/nats-server.log" 2>&1 &
  NATS_PID=$!
  wait_tcp "$NATS_PID" "$nats_port" || { cat "$WORK/nats-server.log" >&2; die "nats-server did not start"; }
  url="nats://127.0.0.1:$nats_port"

  wisp_port="$(free_port)"
  events_url="http://127.0.0.1:$wisp_port"
  mkdir -p "$WORK/events-data"
  # A generous queue: the bench publishes a whole round at once.
  "$BIN/wisp" up --listen "127.0.0.1:$wisp_port" --data "$WORK/events-data" --nats "$url" \
    --warm-pool "$WARM_POOL" --max-queue 100000 >"$WORK/events-controller.log" 2>&1 &
  CONTROLLER_PID=$!
  if ! wait_http "$CONTROLLER_PID" "$events_url/healthz"; then
    cat "$WORK/events-controller.log" >&2
    die "wisp up --nats did not answer $events_url/healthz within 10 s"
  fi
  local d
  for d in "$BUILD_DIR/functions/testing/relay.so --name relay --subscribe bench.in" \
           "$HELLO_SO --name hello"; do
    # WISP_HOME: the CLI reads the control API token from that data dir.
    # shellcheck disable=SC2086  # word splitting wanted
    WISP_HOME="$WORK/events-data" "$BIN/wisp" deploy $d --server "$events_url" \
      >>"$WORK/events-deploy.log" 2>&1 || {
      cat "$WORK/events-deploy.log" >&2
      die "wisp deploy $d failed"
    }
  done

  log "events: nats-server $url, wisp on $events_url, ${EVENTS_ROUNDS:-3} rounds"
  local rc=0
  "$BIN/wisp_bench_events" --nats "$url" --rounds "${EVENTS_ROUNDS:-3}" \
    --floor-msgs "${EVENTS_FLOOR_MSGS:-200000}" --wisp-events "${EVENTS_WISP_EVENTS:-50000}" \
    --requests "${EVENTS_REQUESTS:-2000}" >"$WORK/events.txt" 2>"$WORK/events.err" || rc=$?
  sed 's/^events_bench: /bench: events: /' "$WORK/events.err" >&2
  grep -q '^events ' "$WORK/events.txt" || {
    tail -20 "$WORK/events-controller.log" >&2
    die "wisp_bench_events failed (exit $rc)"
  }
  ((rc == 0)) || WARNINGS+=("events: wisp_bench_events exited $rc (lost events or failed requests)")
  EV_F_RATE="$(events_field floor_msgs_per_s)"; EV_W_RATE="$(events_field wisp_events_per_s)"
  EV_SENT="$(events_field wisp_sent)"; EV_RECEIVED="$(events_field wisp_received)"
  EV_F_P50="$(events_field floor_req_p50_us)"; EV_W_P50="$(events_field wisp_req_p50_us)"
  EV_F_P99="$(events_field floor_req_p99_us)"; EV_W_P99="$(events_field wisp_req_p99_us)"
  EV_REQ_FAILURES="$(events_field req_failures)"
  EVENTS_RAN=1
  stop_controller

  # The reference: the same events through a bare nats.c relay.
  "$BIN/wisp_bench_nats_relay" --nats "$url" >"$WORK/nats-relay.log" 2>&1 &
  RELAY_PID=$!
  local relay_rc=0 _
  for _ in $(seq 50); do  # subscribed once it says so (at most 5 s)
    grep -q '^nats_relay: relaying' "$WORK/nats-relay.log" 2>/dev/null && break
    kill -0 "$RELAY_PID" 2>/dev/null || break
    sleep 0.1
  done
  "$BIN/wisp_bench_events" --nats "$url" --rounds "${EVENTS_ROUNDS:-3}" --floor-msgs "${EVENTS_FLOOR_MSGS:-200000}" \
    --wisp-events "${EVENTS_WISP_EVENTS:-50000}" --requests 100 --warmup 10 \
    >"$WORK/events-relay.txt" 2>"$WORK/events-relay.err" || relay_rc=$?
  EV_R_RATE="$(events_field wisp_events_per_s "$WORK/events-relay.txt")"
  EV_RF_RATE="$(events_field floor_msgs_per_s "$WORK/events-relay.txt")"
  ((relay_rc == 0)) && [[ -n "$EV_R_RATE" ]] ||
    WARNINGS+=("events: the bare relay reference failed (exit $relay_rc): $(tail -1 "$WORK/events-relay.err") / $(tail -1 "$WORK/nats-relay.log")")
  stop_pid "$RELAY_PID"
  RELAY_PID=
  stop_pid "$NATS_PID"
  NATS_PID=
}

# The events rows of the report (MISSED counts a missed target or a loss).
print_events_rows() {
  ((EVENTS_RAN)) || return 0
  local fmt='%-44s %12s %12s %10s %8s %8s\n' rt rp v_rate v_p50 v_loss
  rt="$(awk -v a="$EV_W_RATE" -v b="$EV_F_RATE" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "-" }')"
  rp="$(awk -v a="$EV_W_P50" -v b="$EV_F_P50" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')"
  v_rate=ok; v_p50=ok; v_loss=ok
  awk -v r="$rt" -v t="$EVENTS_THROUGHPUT_TARGET" 'BEGIN { exit !(r != "-" && r >= t) }' ||
    { v_rate=MISSED; MISSED=$((MISSED + 1)); }
  awk -v r="$rp" -v t="$EVENTS_P50_TARGET" 'BEGIN { exit !(r != "-" && r <= t) }' ||
    { v_p50=MISSED; MISSED=$((MISSED + 1)); }
  [[ "$EV_RECEIVED" == "$EV_SENT" ]] || { v_loss=FAILED; MISSED=$((MISSED + 1)); }
  echo
  printf "$fmt" "events (NATS, medians of ${EVENTS_ROUNDS:-3} rounds)" "wisp" "floor" "ratio" "target" "verdict"
  printf "$fmt" "--------------------------------------------" "------------" "------------" "----------" "--------" "--------"
  printf "$fmt" "fire-and-forget through relay (events/s)" "$EV_W_RATE" "$EV_F_RATE" "${rt}x" ">= $EVENTS_THROUGHPUT_TARGET" "$v_rate"
  if [[ -n "${EV_R_RATE:-}" ]]; then
    printf "$fmt" "the same through a bare nats.c relay" "$EV_R_RATE" "$EV_RF_RATE" \
      "$(awk -v a="$EV_R_RATE" -v b="$EV_RF_RATE" 'BEGIN { if (b > 0) printf "%.3fx", a / b; else print "-" }')" "" ""
    printf "$fmt" "wisp over the bare relay (events/s)" "$EV_W_RATE" "$EV_R_RATE" \
      "$(awk -v a="$EV_W_RATE" -v b="$EV_R_RATE" 'BEGIN { if (b > 0) printf "%.3fx", a / b; else print "-" }')" "" ""
  fi
  printf "$fmt" "events back / published (lost: none)" "$EV_RECEIVED" "$EV_SENT" "" "all" "$v_loss"
  printf "$fmt" "request-reply p50, wisp.fn.hello (us)" "$EV_W_P50" "$EV_F_P50" "${rp}x" "<= $EVENTS_P50_TARGET" "$v_p50"
  printf "$fmt" "request-reply p99 (us)" "$EV_W_P99" "$EV_F_P99" \
    "$(awk -v a="$EV_W_P99" -v b="$EV_F_P99" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')" "" ""
  if [[ "${EV_REQ_FAILURES:-0}" != "0" ]]; then
    printf "$fmt" "failed requests" "$EV_REQ_FAILURES" "" "" "0" "FAILED"
    MISSED=$((MISSED + 1))
  fi
}

CLUSTER_ONLY="${WISP_BENCH_CLUSTER_ONLY:-0}"
if [[ "$FLOOR_ONLY" != "1" && "$PIPELINE_ONLY" != "1" && "$CLUSTER_ONLY" != "1" &&
      "${WISP_BENCH_EVENTS:-1}" == "1" ]]; then
  run_events
fi
if [[ "$EVENTS_ONLY" == "1" ]]; then
  MISSED=0
  echo
  echo "wisp events benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs)"
  print_events_rows
  if ((${#WARNINGS[@]} > 0)); then
    echo
    printf 'warning: %s\n' "${WARNINGS[@]}"
  fi
  if ((MISSED > 0)); then
    echo
    echo "$MISSED target(s) missed"
    [[ "${WISP_BENCH_STRICT:-0}" != "1" ]] || exit 1
  fi
  exit 0
fi
# ---------------------------------------------------------------- end of events

# ---------------------------------------------------------------- pipeline
# A nats-server -js on a free port for the floors and the JetStream mode; per
# mode a controller of its own (fresh data dir, free port), the three stages
# deployed, wisp_bench_pipeline run against it, the controller stopped. A mode
# that fails is reported (with its controller log's tail) and the others run.
PIPELINE_RAN=0
PIPELINE_MODES=(plain durable jetstream)
declare -A PIPELINE_LABEL=(
  [plain]="plain subscriptions, embedded broker"
  [durable]="--durable, embedded broker (sqlite)"
  [jetstream]="--durable, NATS JetStream"
)
declare -A PL_RESULT=()  # mode -> its "pipeline mode=wisp ..." line, or empty (failed)

pipeline_field() {  # FILE KEY
  sed -nE "s/.* $2=([0-9.]+).*/\1/p" "$1" 2>/dev/null | head -1
}
pipeline_ratio() {  # A B: A / B as "0.123x", or "-"
  awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b > 0) printf "%.3fx", a / b; else print "-" }'
}

# pipeline_mode MODE UP_ARGS... -- DEPLOY_ARGS...
pipeline_mode() {
  local mode="$1"
  shift
  local up_args=() deploy_args=()
  while (($# > 0)) && [[ "$1" != "--" ]]; do up_args+=("$1"); shift; done
  (($# > 0)) && shift
  deploy_args=("$@")
  local dir="$WORK/pipeline-$mode" port url token sink rc=0
  mkdir -p "$dir/data"
  port="$(free_port)"
  url="http://127.0.0.1:$port"
  sink="$dir/sink.txt"
  : >"$sink"
  # Run as root, wisp runs each worker as a user of its own: the sink
  # function must reach the file and append to it.
  chmod 755 "$WORK" "$dir"
  chmod 666 "$sink"
  # A generous queue: up to PIPELINE_PUBLISHERS events arrive at once, and a
  # plain subscription's events beyond --max-queue would be dropped.
  "$BIN/wisp" up --listen "127.0.0.1:$port" --data "$dir/data" --warm-pool "$WARM_POOL" \
    --max-queue 100000 "${up_args[@]}" >"$dir/controller.log" 2>&1 &
  CONTROLLER_PID=$!
  if ! wait_http "$CONTROLLER_PID" "$url/healthz"; then
    log "pipeline: $mode: wisp up did not answer $url/healthz; its log:"
    tail -20 "$dir/controller.log" >&2
    WARNINGS+=("pipeline $mode: the controller did not start")
    stop_controller
    return 0
  fi
  token="$(cat "$dir/data/token")"
  local fn_dir="$BUILD_DIR/functions/testing" stage fn name subject env
  for stage in "forward stage-a pipe.new FORWARD_TO=pipe.a" \
               "forward stage-b pipe.a FORWARD_TO=pipe.b" \
               "journal sink pipe.b JOURNAL=$sink"; do
    read -r fn name subject env <<<"$stage"
    if ! WISP_TOKEN="$token" "$BIN/wisp" deploy "$fn_dir/$fn.so" --name "$name" \
        --subscribe "$subject" --env "$env" "${deploy_args[@]}" --server "$url" \
        >>"$dir/deploy.log" 2>&1; then
      log "pipeline: $mode: deploying $name failed:"
      tail -5 "$dir/deploy.log" >&2
      tail -20 "$dir/controller.log" >&2
      WARNINGS+=("pipeline $mode: deploying $name failed: $(tail -1 "$dir/deploy.log")")
      stop_controller
      return 0
    fi
  done
  log "pipeline: $mode on $url: ${PIPELINE_ROUNDS} rounds of ${PIPELINE_EVENTS} events, ${PIPELINE_LATENCY_EVENTS} sequential"
  # timeout: a backstop; the helper gives up by itself after 15 s without progress.
  timeout -k 5 150 "$BIN/wisp_bench_pipeline" wisp --server "127.0.0.1:$port" --token "$token" \
    --subject pipe.new --sink "$sink" --events "$PIPELINE_EVENTS" \
    --publishers "$PIPELINE_PUBLISHERS" --latency-events "$PIPELINE_LATENCY_EVENTS" \
    --gap-us "$PIPELINE_GAP_US" --rounds "$PIPELINE_ROUNDS" \
    >"$dir/result.txt" 2>"$dir/err.txt" || rc=$?
  sed "s/^pipeline_bench: /bench: pipeline: $mode: /" "$dir/err.txt" >&2
  if grep -q '^pipeline mode=wisp' "$dir/result.txt"; then
    PL_RESULT[$mode]="$dir/result.txt"
  fi
  if ((rc != 0)); then
    log "pipeline: $mode: wisp_bench_pipeline exited $rc; the controller log's tail:"
    tail -20 "$dir/controller.log" >&2
    WARNINGS+=("pipeline $mode: wisp_bench_pipeline exited $rc (lost events, failed publishes or a hang; log: $(tail -1 "$dir/controller.log"))")
  fi
  stop_controller
}

run_pipeline() {
  PIPELINE_EVENTS="${PIPELINE_EVENTS:-5000}"
  PIPELINE_PUBLISHERS="${PIPELINE_PUBLISHERS:-4}"
  PIPELINE_LATENCY_EVENTS="${PIPELINE_LATENCY_EVENTS:-300}"
  PIPELINE_GAP_US="${PIPELINE_GAP_US:-2000}"
  PIPELINE_ROUNDS="${PIPELINE_ROUNDS:-3}"
  PIPELINE_FLOOR_EVENTS="${PIPELINE_FLOOR_EVENTS:-50000}"
  local nats_bin
  nats_bin="$(find_nats_server || true)"
  if [[ -z "$nats_bin" ]]; then
    log "pipeline: nats-server not found, skipping (set WISP_NATS_SERVER)"
    WARNINGS+=("pipeline: skipped, no nats-server")
    return 0
  fi
  local nats_port url
  nats_port="$(free_port)"
  mkdir -p "$WORK/pipeline-js"
  "$nats_bin" -js -a 127.0.0.1 -p "$nats_port" -sd "$WORK/pipeline-js" \
    >"$WORK/pipeline-nats-server.log" 2>&1 &
  NATS_PID=$!
  wait_tcp "$NATS_PID" "$nats_port" || {
    cat "$WORK/pipeline-nats-server.log" >&2
    die "nats-server -js did not start"
  }
  url="nats://127.0.0.1:$nats_port"

  log "pipeline: floor, raw nats.c on $url: 3 rounds of $PIPELINE_FLOOR_EVENTS msgs, $PIPELINE_LATENCY_EVENTS sequential"
  local rc=0
  timeout -k 5 120 "$BIN/wisp_bench_pipeline" floor --nats "$url" --dir "$WORK" \
    --events "$PIPELINE_FLOOR_EVENTS" --latency-events "$PIPELINE_LATENCY_EVENTS" \
    --gap-us "$PIPELINE_GAP_US" --rounds 3 \
    >"$WORK/pipeline-floor.txt" 2>"$WORK/pipeline-floor.err" || rc=$?
  sed 's/^pipeline_bench: /bench: pipeline: /' "$WORK/pipeline-floor.err" >&2
  grep -q '^pipeline mode=floor' "$WORK/pipeline-floor.txt" ||
    die "the pipeline floor failed (exit $rc)"
  ((rc == 0)) || WARNINGS+=("pipeline floor: messages lost on raw nats.c (exit $rc)")
  rc=0
  timeout -k 5 180 "$BIN/wisp_bench_pipeline" jsfloor --nats "$url" --dir "$WORK" \
    --events "$PIPELINE_EVENTS" --latency-events "$PIPELINE_LATENCY_EVENTS" \
    --gap-us "$PIPELINE_GAP_US" --rounds "$PIPELINE_ROUNDS" \
    >"$WORK/pipeline-jsfloor.txt" 2>"$WORK/pipeline-jsfloor.err" || rc=$?
  sed 's/^pipeline_bench: /bench: pipeline: /' "$WORK/pipeline-jsfloor.err" >&2
  ((rc == 0)) || WARNINGS+=("pipeline: the JetStream floor failed or lost events (exit $rc)")

  pipeline_mode plain
  pipeline_mode durable -- --durable
  pipeline_mode jetstream --nats "$url" -- --durable
  PIPELINE_RAN=1
  stop_pid "$NATS_PID"
  NATS_PID=
}

# The pipeline rows of the report (MISSED counts a mode that failed or lost events).
print_pipeline_rows() {
  ((PIPELINE_RAN)) || return 0
  local floor="$WORK/pipeline-floor.txt" jsfloor="$WORK/pipeline-jsfloor.txt"
  local f_rate f_p50 f_p99 j_p50 j_p99 jp_rate jp_p50 jp_p99
  f_rate="$(pipeline_field "$floor" events_per_s)"
  f_p50="$(pipeline_field "$floor" p50_us)"; f_p99="$(pipeline_field "$floor" p99_us)"
  j_p50="$(pipeline_field "$jsfloor" p50_us)"; j_p99="$(pipeline_field "$jsfloor" p99_us)"
  jp_rate="$(pipeline_field "$jsfloor" pipe_events_per_s)"
  jp_p50="$(pipeline_field "$jsfloor" pipe_p50_us)"; jp_p99="$(pipeline_field "$jsfloor" pipe_p99_us)"
  local fmt='%-40s %10s %8s %10s %8s %10s %8s %9s %8s\n'
  echo
  echo "pipeline: forward -> forward -> journal, POST /v1/events by $PIPELINE_PUBLISHERS publishers," \
    "$PIPELINE_EVENTS events a round; latency: $PIPELINE_LATENCY_EVENTS one at a time," \
    "$PIPELINE_GAP_US us apart, POST -> line at the sink; medians of $PIPELINE_ROUNDS rounds"
  printf "$fmt" "mode" "events/s" "ratio" "p50 (us)" "ratio" "p99 (us)" "ratio" "lost/dup" "verdict"
  printf "$fmt" "----------------------------------------" "----------" "--------" "----------" \
    "--------" "----------" "--------" "---------" "--------"
  printf "$fmt" "floor: raw nats.c, 3 hops (median of 3)" "$f_rate" "1x" "$f_p50" "1x" "$f_p99" "1x" \
    "$(pipeline_field "$floor" lost)/0" ""
  local mode res rate p50 p99 lost dup v
  for mode in "${PIPELINE_MODES[@]}"; do
    res="${PL_RESULT[$mode]:-}"
    if [[ -z "$res" ]]; then
      printf "$fmt" "${PIPELINE_LABEL[$mode]}" "-" "" "-" "" "-" "" "" "FAILED"
      MISSED=$((MISSED + 1))
      continue
    fi
    rate="$(pipeline_field "$res" events_per_s)"
    p50="$(pipeline_field "$res" p50_us)"; p99="$(pipeline_field "$res" p99_us)"
    lost="$(pipeline_field "$res" lost)"; dup="$(pipeline_field "$res" duplicates)"
    v=ok
    if [[ "$lost" != "0" || "$(pipeline_field "$res" publish_failures)" != "0" ]]; then
      v=FAILED
      MISSED=$((MISSED + 1))
    fi
    printf "$fmt" "${PIPELINE_LABEL[$mode]}" "$rate" "$(pipeline_ratio "$rate" "$f_rate")" \
      "$p50" "$(pipeline_ratio "$p50" "$f_p50")" \
      "$p99" "$(pipeline_ratio "$p99" "$f_p99")" "$lost/$dup" "$v"
  done
  if [[ -n "$jp_rate" ]]; then
    printf "$fmt" "floor: raw JetStream, 3 durable hops" "$jp_rate" "1x" "$jp_p50" "1x" "$jp_p99" "1x" \
      "$(pipeline_field "$jsfloor" pipe_lost)/0" ""
    res="${PL_RESULT[jetstream]:-}"
    if [[ -n "$res" ]]; then
      rate="$(pipeline_field "$res" events_per_s)"
      p50="$(pipeline_field "$res" p50_us)"; p99="$(pipeline_field "$res" p99_us)"
      printf "$fmt" "--durable, JetStream, to that floor" "$rate" \
        "$(pipeline_ratio "$rate" "$jp_rate")" "$p50" "$(pipeline_ratio "$p50" "$jp_p50")" \
        "$p99" "$(pipeline_ratio "$p99" "$jp_p99")" "" ""
    fi
  fi
  if [[ -n "$j_p50" ]]; then
    printf "$fmt" "floor: one js_Publish awaiting its PubAck" "" "" "$j_p50" "1x" "$j_p99" "1x" "" ""
  fi
  local accepted=""
  for mode in "${PIPELINE_MODES[@]}"; do
    res="${PL_RESULT[$mode]:-}"
    [[ -z "$res" ]] || accepted+="${accepted:+, }$mode $(pipeline_field "$res" accept_per_s)"
  done
  echo "(accepted events/s, N / the last 202: $accepted; lost/dup summed over rounds)"
}

if [[ "$FLOOR_ONLY" != "1" && "$EVENTS_ONLY" != "1" && "$CLUSTER_ONLY" != "1" &&
      "${WISP_BENCH_PIPELINE:-1}" == "1" ]]; then
  run_pipeline
fi
if [[ "$PIPELINE_ONLY" == "1" ]]; then
  MISSED=0
  echo
  echo "wisp pipeline benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs)"
  print_pipeline_rows
  if ((${#WARNINGS[@]} > 0)); then
    echo
    printf 'warning: %s\n' "${WARNINGS[@]}"
  fi
  if ((MISSED > 0)); then
    echo
    echo "$MISSED pipeline mode(s) failed"
    [[ "${WISP_BENCH_STRICT:-0}" != "1" ]] || exit 1
  fi
  exit 0
fi
# ---------------------------------------------------------------- end of pipeline

# ---------------------------------------------------------------- cluster
if [[ "$CLUSTER_ONLY" == "1" ]]; then
  nats_bin="$(find_nats_server || true)"
  [[ -n "$nats_bin" ]] || die "cluster: nats-server not found (set WISP_NATS_SERVER)"
  nats_port="$(free_port)"
  "$nats_bin" -a 127.0.0.1 -p "$nats_port" -js -sd "$WORK/js" >"$WORK/nats-server.log" 2>&1 &
  NATS_PID=$!
  wait_tcp "$NATS_PID" "$nats_port" || { cat "$WORK/nats-server.log" >&2; die "nats-server did not start"; }
  nats_url="nats://127.0.0.1:$nats_port"
  a_port="$(free_port)"
  b_port="$(free_port)"
  mkdir -p "$WORK/cluster-a" "$WORK/cluster-b"
  "$BIN/wisp" up --listen "127.0.0.1:$a_port" --data "$WORK/cluster-a" --nats "$nats_url" \
    --cluster bench >"$WORK/cluster-a.log" 2>&1 &
  CONTROLLER_PID=$!
  "$BIN/wisp" up --listen "127.0.0.1:$b_port" --data "$WORK/cluster-b" --nats "$nats_url" \
    --cluster bench >"$WORK/cluster-b.log" 2>&1 &
  CLUSTER_B_PID=$!
  wait_http "$CONTROLLER_PID" "http://127.0.0.1:$a_port/healthz" || { cat "$WORK/cluster-a.log" >&2; die "controller A did not start"; }
  wait_http "$CLUSTER_B_PID" "http://127.0.0.1:$b_port/healthz" || { cat "$WORK/cluster-b.log" >&2; die "controller B did not start"; }
  sleep 1  # the buckets are made in the background
  log "cluster: two controllers (cluster bench) on $nats_url, ${CLUSTER_ROUNDS:-20} deploys"
  "$BIN/wisp_bench_cluster" --nats "$nats_url" --a "127.0.0.1:$a_port" \
    --a-token "$(cat "$WORK/cluster-a/token")" --b "127.0.0.1:$b_port" \
    --b-token "$(cat "$WORK/cluster-b/token")" --so "$HELLO_SO" \
    --rounds "${CLUSTER_ROUNDS:-20}" >"$WORK/cluster.txt" || {
    tail -20 "$WORK/cluster-a.log" "$WORK/cluster-b.log" >&2
    die "wisp_bench_cluster failed"
  }
  field() { sed -nE "s/.* $1=([0-9.]+).*/\1/p" "$WORK/cluster.txt"; }
  f50="$(field floor_p50_us)"; fmax="$(field floor_max_us)"
  p50="$(field propagation_p50_us)"; pmax="$(field propagation_max_us)"

  # Throughput: hello deployed on A (so served by B too) under wrk -t1 -c32
  # on A alone, then on A and B at once, against the floor server alone.
  curl -fsS -o /dev/null -X PUT --data-binary @"$HELLO_SO" \
    -H "Authorization: Bearer $(cat "$WORK/cluster-a/token")" \
    "http://127.0.0.1:$a_port/v1/functions/hello" || die "cluster: deploying hello on A failed"
  for _ in $(seq 100); do
    curl -fsS -o /dev/null -d world "http://127.0.0.1:$b_port/fn/hello" 2>/dev/null && break
    sleep 0.05
  done
  FLOOR_PORT="$(free_port)"
  "$BIN/wisp_bench_floor" "$FLOOR_PORT" &
  FLOOR_PID=$!
  wait_http "$FLOOR_PID" "http://127.0.0.1:$FLOOR_PORT/" || die "the floor server did not start"
  run_wrk cluster_floor -t1 -c32 -d"${DURATION}s" -s "$LUA" "http://127.0.0.1:$FLOOR_PORT/"
  stop_pid "$FLOOR_PID"
  FLOOR_PID=
  run_wrk cluster_one -t1 -c32 -d"${DURATION}s" -s "$LUA" "http://127.0.0.1:$a_port/fn/hello"
  run_wrk cluster_two_a -t1 -c32 -d"${DURATION}s" -s "$LUA" "http://127.0.0.1:$a_port/fn/hello" &
  two_a_pid=$!
  run_wrk cluster_two_b -t1 -c32 -d"${DURATION}s" -s "$LUA" "http://127.0.0.1:$b_port/fn/hello"
  wait "$two_a_pid" || die "wrk on A failed"
  # Forwarding: a third controller C with room for one call in flight and
  # one waiting; under wrk -c32 on C, the calls it has no room for go over
  # NATS to A or B.
  c_port="$(free_port)"
  mkdir -p "$WORK/cluster-c"
  "$BIN/wisp" up --listen "127.0.0.1:$c_port" --data "$WORK/cluster-c" --nats "$nats_url" \
    --cluster bench --max-queue 1 --pipeline-depth 1 --max-workers 1 >"$WORK/cluster-c.log" 2>&1 &
  CLUSTER_C_PID=$!
  wait_http "$CLUSTER_C_PID" "http://127.0.0.1:$c_port/healthz" || { cat "$WORK/cluster-c.log" >&2; die "controller C did not start"; }
  for _ in $(seq 100); do
    curl -fsS -o /dev/null -d world "http://127.0.0.1:$c_port/fn/hello" 2>/dev/null && break
    sleep 0.05
  done
  sleep 0.2  # A and B offer room within 20 ms
  run_wrk cluster_fwd -t1 -c32 -d"${DURATION}s" --latency -s "$LUA" "http://127.0.0.1:$c_port/fn/hello"
  run_wrk cluster_direct -t1 -c32 -d"${DURATION}s" --latency -s "$LUA" "http://127.0.0.1:$a_port/fn/hello"
  forwarded="$(curl -fsS "http://127.0.0.1:$c_port/healthz" | sed -nE 's/.*"forwarded":"([0-9]+)".*/\1/p')"
  stop_pid "$CLUSTER_C_PID"
  CLUSTER_C_PID=
  r_floor="$(rps cluster_floor)"; r_one="$(rps cluster_one)"
  r_two="$(( $(rps cluster_two_a) + $(rps cluster_two_b) ))"
  r_fwd="$(rps cluster_fwd)"; r_direct="$(rps cluster_direct)"
  fwd_total="$(awk '/requests in/ { print $1 }' "$WORK/cluster_fwd.txt")"
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
  echo
  echo "wisp cluster benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs)"
  printf '%-52s %12s %12s %10s\n' "" "p50 us" "max us" "x floor"
  printf '%-52s %12s %12s %10s\n' "floor: raw KV put -> subscriber (nats.c)" "$f50" "$fmax" "1.00"
  printf '%-52s %12s %12s %10s\n' "deploy on A -> first 200 from B (target < 1 s)" "$p50" "$pmax" \
    "$(awk -v a="$p50" -v b="$f50" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "-" }')"
  printf '%-52s %12s %12s %10s\n' "" "req/s" "" "x floor"
  printf '%-52s %12s %12s %10s\n' "floor: bare libuv server, wrk -c32" "$r_floor" "" "1.00"
  printf '%-52s %12s %12s %10s\n' "hello on one controller of the cluster, wrk -c32" "$r_one" "" \
    "$(ratio "$r_one" "$r_floor")"
  printf '%-52s %12s %12s %10s\n' "hello on both controllers at once (sum), 2 x wrk" "$r_two" "" \
    "$(ratio "$r_two" "$r_floor")"
  echo "two controllers / one: $(ratio "$r_two" "$r_one")x (this machine has $(nproc) CPUs for" \
    "both controllers, their workers, nats-server and both wrk)"
  printf '%-52s %12s %12s %10s\n' "" "req/s" "p50 us" "x floor"
  printf '%-52s %12s %12s %10s\n' "hello on A, wrk -c32 --latency" "$r_direct" \
    "$(p50_us cluster_direct)" "$(ratio "$r_direct" "$r_floor")"
  printf '%-52s %12s %12s %10s\n' "hello on full C, forwarded to A or B over NATS" "$r_fwd" \
    "$(p50_us cluster_fwd)" "$(ratio "$r_fwd" "$r_floor")"
  echo "C forwarded ${forwarded:-?} of ${fwd_total:-?} calls; forwarded / direct:" \
    "$(ratio "$r_fwd" "$r_direct")x"
  if ((pmax >= 1000000)); then
    echo "target missed: a deploy took ${pmax} us to reach B"
    [[ "${WISP_BENCH_STRICT:-0}" != "1" ]] || exit 1
  fi
  exit 0
fi

# ---------------------------------------------------------------- floor
FLOOR_PORT="$(free_port)"
"$BIN/wisp_bench_floor" "$FLOOR_PORT" &
FLOOR_PID=$!
wait_http "$FLOOR_PID" "http://127.0.0.1:$FLOOR_PORT/" || die "the floor server did not start"
FLOOR_URL="http://127.0.0.1:$FLOOR_PORT/"

log "floor on $FLOOR_URL, ${DURATION}s per load"
run_wrk floor_get_c32 -t1 -c32 -d"${DURATION}s" "$FLOOR_URL"
run_wrk floor_get_c1 -t1 -c1 -d"${DURATION}s" --latency "$FLOOR_URL"
run_wrk floor_post_c32 -t1 -c32 -d"${DURATION}s" -s "$LUA" "$FLOOR_URL"
run_wrk floor_post_c1 -t1 -c1 -d"${DURATION}s" --latency -s "$LUA" "$FLOOR_URL"
if ((PINNED)); then
  pin_tree "$FLOOR_PID" 1
  run_wrk floor_pin_c32 -t1 -c32 -d"${DURATION}s" -s "$LUA" "$FLOOR_URL"
  run_wrk floor_pin_c1 -t1 -c1 -d"${DURATION}s" --latency -s "$LUA" "$FLOOR_URL"
fi
stop_pid "$FLOOR_PID"
FLOOR_PID=

if [[ "$FLOOR_ONLY" == "1" ]]; then
  echo
  echo "floor only ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, ${DURATION}s per load, wrk -t1)"
  printf '%-36s %12s %12s\n' "load" "req/s" "p50 (us)"
  for run in floor_get_c32 floor_get_c1 floor_post_c32 floor_post_c1; do
    printf '%-36s %12s %12s\n' "$run" "$(rps "$run")" "$(p50_us "$run")"
  done
  exit 0
fi

# ---------------------------------------------------------------- wisp
WISP_PORT="$(free_port)"
WISP_URL="http://127.0.0.1:$WISP_PORT"
mkdir -p "$WORK/data"
"$BIN/wisp" up --listen "127.0.0.1:$WISP_PORT" --data "$WORK/data" --warm-pool "$WARM_POOL" \
  >"$WORK/controller.log" 2>&1 &
CONTROLLER_PID=$!
if ! wait_http "$CONTROLLER_PID" "$WISP_URL/healthz"; then
  cat "$WORK/controller.log" >&2
  die "wisp up did not answer $WISP_URL/healthz within 10 s"
fi
CONTROLLER_IDLE_RSS_KB="$(rss_kb "$CONTROLLER_PID")"

# The control API token of the running controller's data dir ($DATA_DIR).
DATA_DIR="$WORK/data"
deploy() {
  WISP_TOKEN="$(cat "$DATA_DIR/token")" \
    "$BIN/wisp" deploy "$@" --server "$WISP_URL" >>"$WORK/deploy.log" 2>&1 || {
    cat "$WORK/deploy.log" >&2
    die "wisp deploy $* failed"
  }
}

deploy "$HELLO_SO"
reply="$(curl -fsS --max-time 10 -d world "$WISP_URL/fn/hello")" ||
  die "POST /fn/hello failed (controller log: $(tail -5 "$WORK/controller.log"))"
[[ "$reply" == "hello, world" ]] || die "POST /fn/hello answered \"$reply\", want \"hello, world\""

log "wisp on $WISP_URL, hello deployed and warm"
run_wrk wisp_post_c32 -t1 -c32 -d"${DURATION}s" -s "$LUA" "$WISP_URL/fn/hello"
run_wrk wisp_post_c1 -t1 -c1 -d"${DURATION}s" --latency -s "$LUA" "$WISP_URL/fn/hello"
if ((PINNED)); then
  # The same loads with the server side on CPU 1 and wrk on CPU 0: the
  # controller, the zygote and the workers share one core, as the floor does.
  pin_tree "$CONTROLLER_PID" 1
  run_wrk wisp_pin_c32 -t1 -c32 -d"${DURATION}s" -s "$LUA" "$WISP_URL/fn/hello"
  run_wrk wisp_pin_c1 -t1 -c1 -d"${DURATION}s" --latency -s "$LUA" "$WISP_URL/fn/hello"
  pin_tree "$CONTROLLER_PID" "0-$(($(nproc) - 1))"
fi

# The hello worker's RSS, right after the loads (before an idle unload).
status_json="$(curl -fsS --max-time 5 -H "Authorization: Bearer $(cat "$DATA_DIR/token")" \
  "$WISP_URL/v1/functions/hello" | tr -d '\n')" ||
  die "GET /v1/functions/hello failed"
mapfile -t WORKER_PIDS < <(printf '%s' "$status_json" |
  grep -oE '"worker_?[pP]ids"[[:space:]]*:[[:space:]]*\[[^]]*\]' | grep -oE '[0-9]+' || true)
CONTROLLER_CHILDREN+=("${WORKER_PIDS[@]}")
WORKER_RSS_KB=
for pid in "${WORKER_PIDS[@]}"; do
  kb="$(rss_kb "$pid")"
  [[ -n "$kb" ]] || continue
  if [[ -z "$WORKER_RSS_KB" || "$kb" -gt "$WORKER_RSS_KB" ]]; then WORKER_RSS_KB="$kb"; fi
done
[[ -n "$WORKER_RSS_KB" ]] || log "no hello worker pid in GET /v1/functions/hello: $status_json"
CONTROLLER_LOADED_RSS_KB="$(rss_kb "$CONTROLLER_PID")"

# ---------------------------------------------------------------- cold start
COLD_TOTAL=$((COLD_FUNCTIONS + BURST_FUNCTIONS))
log "deploying hello under $COLD_TOTAL names for the cold-start runs"
spaced_names=()
burst_names=()
for i in $(seq "$COLD_TOTAL"); do
  deploy "$HELLO_SO" --name "cold$i"
  if ((i <= COLD_FUNCTIONS)); then spaced_names+=("cold$i"); else burst_names+=("cold$i"); fi
done

# cold_run NAME ARGS...: one wisp_bench_cold_start run (ARGS: its options, then
# the functions), its "cold_start n=.. p50_us=.." line kept in $WORK/NAME.txt.
cold_run() {
  local name="$1"
  shift
  sleep 0.5  # let the controller fill its warm pool first
  "$BIN/wisp_bench_cold_start" --server "127.0.0.1:$WISP_PORT" "$@" \
    >"$WORK/$name.txt" || { cat "$WORK/$name.txt" >&2; die "cold-start run $name failed"; }
  log "$name: $(cat "$WORK/$name.txt")"
}
cold_field() { sed -nE "s/.* $2=([0-9.]+).*/\1/p" "$WORK/$1.txt"; }

cold_run cold_spaced --gap-ms "$COLD_GAP_MS" "${spaced_names[@]}"
COLD_P50_US="$(cold_field cold_spaced p50_us)"
COLD_P99_US="$(cold_field cold_spaced p99_us)"
COLD_MAX_US="$(cold_field cold_spaced max_us)"
if ((BURST_FUNCTIONS > 0)); then
  cold_run cold_burst "${burst_names[@]}"
  BURST_P50_US="$(cold_field cold_burst p50_us)"
  BURST_P99_US="$(cold_field cold_burst p99_us)"
  BURST_MAX_US="$(cold_field cold_burst max_us)"
fi
# The same gap before a warm call: what idling alone costs on this machine.
warm_names=()
for _ in $(seq "$COLD_FUNCTIONS"); do warm_names+=(hello); done
cold_run warm_spaced --gap-ms "$COLD_GAP_MS" "${warm_names[@]}"
WARM_IDLE_P50_US="$(cold_field warm_spaced p50_us)"
CONTROLLER_FINAL_RSS_KB="$(rss_kb "$CONTROLLER_PID")"
stop_controller

# Back to back from a pool large enough for all of them: the cold start
# itself, without idle gaps and without forks in flight.
BIG_POOL=$((BURST_FUNCTIONS + 2))
if ((BURST_FUNCTIONS > 0)); then
  mkdir -p "$WORK/data2"
  "$BIN/wisp" up --listen "127.0.0.1:$WISP_PORT" --data "$WORK/data2" --warm-pool "$BIG_POOL" \
    >"$WORK/controller2.log" 2>&1 &
  CONTROLLER_PID=$!
  wait_http "$CONTROLLER_PID" "$WISP_URL/healthz" || die "second controller did not start"
  DATA_DIR="$WORK/data2"
  for name in "${burst_names[@]}"; do deploy "$HELLO_SO" --name "$name"; done
  sleep 1  # the pool fills and warms up
  cold_run cold_pooled "${burst_names[@]}"
  POOLED_P50_US="$(cold_field cold_pooled p50_us)"
  POOLED_P99_US="$(cold_field cold_pooled p99_us)"
  stop_controller
fi

# ---------------------------------------------------------------- recording
# Warm throughput with invocation records and logs on (the default) and off
# (--no-records), two controllers alternating in RECORD_ROUNDS rounds.
RECORD_ROUNDS="${RECORD_ROUNDS:-2}"
RECORDS_TARGET=0.9
start_bench_controller() {  # NAME PORT ARGS...: starts, deploys hello, warms it
  local name="$1" port="$2"
  shift 2
  mkdir -p "$WORK/$name"
  "$BIN/wisp" up --listen "127.0.0.1:$port" --data "$WORK/$name" --warm-pool "$WARM_POOL" "$@" \
    >"$WORK/$name.log" 2>&1 &
  CONTROLLER_CHILDREN+=("$!")
  wait_http "$!" "http://127.0.0.1:$port/healthz" || { cat "$WORK/$name.log" >&2; die "$name did not start"; }
  WISP_TOKEN="$(cat "$WORK/$name/token")" "$BIN/wisp" deploy "$HELLO_SO" \
    --server "http://127.0.0.1:$port" >>"$WORK/deploy.log" 2>&1 || die "deploy on $name failed"
  curl -fsS --max-time 10 -d world "http://127.0.0.1:$port/fn/hello" >/dev/null || die "hello on $name failed"
}
REC_ON_PORT="$(free_port)"; REC_OFF_PORT="$(free_port)"
start_bench_controller records_on "$REC_ON_PORT"
REC_ON_PID="${CONTROLLER_CHILDREN[-1]}"
start_bench_controller records_off "$REC_OFF_PORT" --no-records
REC_OFF_PID="${CONTROLLER_CHILDREN[-1]}"
REC_ON_SUM=0; REC_OFF_SUM=0
for round in $(seq "$RECORD_ROUNDS"); do
  # Which controller goes first alternates, so that an order effect (the
  # first load after the cold-start runs, a second load on warm caches)
  # weighs on both sides alike.
  order=(on off)
  ((round % 2 == 0)) && order=(off on)
  for which in "${order[@]}"; do
    if [[ "$which" == on ]]; then
      run_wrk "records_on_$round" -t1 -c32 -d"${DURATION}s" -s "$LUA" "http://127.0.0.1:$REC_ON_PORT/fn/hello"
    else
      run_wrk "records_off_$round" -t1 -c32 -d"${DURATION}s" -s "$LUA" "http://127.0.0.1:$REC_OFF_PORT/fn/hello"
    fi
  done
  REC_ON_SUM=$((REC_ON_SUM + $(rps "records_on_$round")))
  REC_OFF_SUM=$((REC_OFF_SUM + $(rps "records_off_$round")))
done
REC_ON_RPS=$((REC_ON_SUM / RECORD_ROUNDS)); REC_OFF_RPS=$((REC_OFF_SUM / RECORD_ROUNDS))
REC_COUNT="$(curl -fsS --max-time 5 -H "Authorization: Bearer $(cat "$WORK/records_on/token")" \
  "http://127.0.0.1:$REC_ON_PORT/v1/invocations?limit=1" | grep -oE '"id":"[^"]*"' | head -1 || true)"
[[ -n "$REC_COUNT" ]] || WARNINGS+=("records: no invocation record readable after the runs")
stop_pid "$REC_ON_PID"; stop_pid "$REC_OFF_PID"

# The floor after the same idle gap, for comparison with warm_spaced.
FLOOR_PORT="$(free_port)"
"$BIN/wisp_bench_floor" "$FLOOR_PORT" &
FLOOR_PID=$!
wait_http "$FLOOR_PID" "http://127.0.0.1:$FLOOR_PORT/" || die "the floor server did not restart"
"$BIN/wisp_bench_cold_start" --server "127.0.0.1:$FLOOR_PORT" --gap-ms "$COLD_GAP_MS" \
  "${warm_names[@]}" >"$WORK/floor_spaced.txt" || die "floor idle run failed"
FLOOR_IDLE_P50_US="$(cold_field floor_spaced p50_us)"
stop_pid "$FLOOR_PID"
FLOOR_PID=

# ---------------------------------------------------------------- report
MISSED=0
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
# verdict VAR VALUE TARGET: sets VAR to "ok" when VALUE <= TARGET, else "MISSED".
verdict() {
  local v
  if [[ -z "$2" || "$2" == "-" ]]; then
    v="-"
  elif awk -v v="$2" -v t="$3" 'BEGIN { exit !(v <= t) }'; then
    v="ok"
  else
    v="MISSED"
    MISSED=$((MISSED + 1))
  fi
  printf -v "$1" '%s' "$v"
}
mb() {
  if [[ -n "$1" ]]; then awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; else echo "-"; fi
}
ms() {
  if [[ -n "$1" ]]; then awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; else echo "-"; fi
}

W_RPS="$(rps wisp_post_c32)"; F_RPS="$(rps floor_post_c32)"
W_P50="$(p50_us wisp_post_c1)"; F_P50="$(p50_us floor_post_c1)"
C_IDLE_MB="$(mb "$CONTROLLER_IDLE_RSS_KB")"; WK_MB="$(mb "$WORKER_RSS_KB")"
C50_MS="$(ms "$COLD_P50_US")"; C99_MS="$(ms "$COLD_P99_US")"
verdict V_C50 "$C50_MS" "$COLD_P50_TARGET_MS"
verdict V_C99 "$C99_MS" "$COLD_P99_TARGET_MS"
verdict V_CRSS "$C_IDLE_MB" "$CONTROLLER_RSS_TARGET_MB"
verdict V_WRSS "$WK_MB" "$WORKER_RSS_TARGET_MB"

echo
echo "wisp benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, ${DURATION}s per load, wrk -t1)"
printf '%-44s %12s %12s %10s\n' "metric" "wisp" "floor" "ratio"
printf '%-44s %12s %12s %10s\n' "--------------------------------------------" "------------" "------------" "----------"
printf '%-44s %12s %12s %10s\n' "throughput, -c32 POST world (req/s)" "$W_RPS" "$F_RPS" "$(ratio "$W_RPS" "$F_RPS")"
printf '%-44s %12s %12s %10s\n' "latency p50, -c1 POST world (us)" "$W_P50" "$F_P50" "$(ratio "$W_P50" "$F_P50")"
if ((PINNED)); then
  WP_RPS="$(rps wisp_pin_c32)"; FP_RPS="$(rps floor_pin_c32)"
  WP_P50="$(p50_us wisp_pin_c1)"; FP_P50="$(p50_us floor_pin_c1)"
  printf '%-44s %12s %12s %10s\n' "pinned: throughput -c32 (req/s)" "$WP_RPS" "$FP_RPS" "$(ratio "$WP_RPS" "$FP_RPS")"
  printf '%-44s %12s %12s %10s\n' "pinned: latency p50 -c1 (us)" "$WP_P50" "$FP_P50" "$(ratio "$WP_P50" "$FP_P50")"
fi
printf '%-44s %12s %12s %10s\n' "floor GET: throughput -c32 (req/s)" "" "$(rps floor_get_c32)" ""
printf '%-44s %12s %12s %10s\n' "floor GET: latency p50 -c1 (us)" "" "$(p50_us floor_get_c1)" ""
REC_RATIO="$(awk -v a="$REC_ON_RPS" -v b="$REC_OFF_RPS" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')"
V_REC=ok
awk -v r="$REC_RATIO" -v t="$RECORDS_TARGET" 'BEGIN { exit !(r != "-" && r >= t) }' || { V_REC=MISSED; MISSED=$((MISSED + 1)); }
echo
printf '%-44s %12s %12s %10s %8s\n' "recording (-c32, mean of $RECORD_ROUNDS rounds)" "on" "off" "ratio" "verdict"
printf '%-44s %12s %12s %10s %8s\n' "throughput with records on / off (req/s)" "$REC_ON_RPS" "$REC_OFF_RPS" "${REC_RATIO}x" "$V_REC"
echo
printf '%-44s %12s %12s %10s\n' "metric" "wisp" "target" "verdict"
printf '%-44s %12s %12s %10s\n' "--------------------------------------------" "------------" "------------" "----------"
printf '%-44s %12s %12s %10s\n' "cold start p50, $COLD_FUNCTIONS spaced ${COLD_GAP_MS} ms apart (ms)" "$C50_MS" "<= $COLD_P50_TARGET_MS" "$V_C50"
printf '%-44s %12s %12s %10s\n' "cold start p99, spaced (ms)" "$C99_MS" "<= $COLD_P99_TARGET_MS" "$V_C99"
printf '%-44s %12s %12s %10s\n' "cold start max, spaced (ms)" "$(ms "$COLD_MAX_US")" "" ""
if ((BURST_FUNCTIONS > 0)); then
  BURST_LABEL="burst of $BURST_FUNCTIONS, pool of $WARM_POOL"
  printf '%-44s %12s %12s %10s\n' "cold start p50, $BURST_LABEL (ms)" "$(ms "$BURST_P50_US")" "" ""
  printf '%-44s %12s %12s %10s\n' "cold start p99, $BURST_LABEL (ms)" "$(ms "$BURST_P99_US")" "" ""
  printf '%-44s %12s %12s %10s\n' "cold start max, $BURST_LABEL (ms)" "$(ms "$BURST_MAX_US")" "" ""
fi
if ((BURST_FUNCTIONS > 0)); then
  printf '%-44s %12s %12s %10s\n' "cold start p50, back to back, pool of $BIG_POOL (ms)" "$(ms "$POOLED_P50_US")" "<= $COLD_P50_TARGET_MS" ""
  printf '%-44s %12s %12s %10s\n' "cold start p99, back to back, pool of $BIG_POOL (ms)" "$(ms "$POOLED_P99_US")" "<= $COLD_P99_TARGET_MS" ""
fi
printf '%-44s %12s %12s %10s\n' "warm call p50 after ${COLD_GAP_MS} ms idle (ms)" "$(ms "$WARM_IDLE_P50_US")" "" ""
printf '%-44s %12s %12s %10s\n' "floor call p50 after ${COLD_GAP_MS} ms idle (ms)" "$(ms "$FLOOR_IDLE_P50_US")" "" ""
printf '%-44s %12s %12s %10s\n' "controller RSS, idle after start (MiB)" "$C_IDLE_MB" "<= $CONTROLLER_RSS_TARGET_MB" "$V_CRSS"
printf '%-44s %12s %12s %10s\n' "hello worker RSS, after the loads (MiB)" "$WK_MB" "<= $WORKER_RSS_TARGET_MB" "$V_WRSS"
printf '%-44s %12s %12s %10s\n' "controller RSS, after the loads (MiB)" "$(mb "$CONTROLLER_LOADED_RSS_KB")" "" ""
printf '%-44s %12s %12s %10s\n' "controller RSS, after $COLD_TOTAL cold starts (MiB)" "$(mb "$CONTROLLER_FINAL_RSS_KB")" "" ""

print_events_rows
print_pipeline_rows

if ((${#WARNINGS[@]} > 0)); then
  echo
  echo "warnings (figures from loads with errors are not comparable):"
  printf '  %s\n' "${WARNINGS[@]}"
fi
if ((MISSED > 0)); then
  echo
  echo "$MISSED target(s) missed"
  [[ "${WISP_BENCH_STRICT:-0}" != "1" ]] || exit 1
fi
