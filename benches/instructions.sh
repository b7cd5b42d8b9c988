#!/bin/bash
# Instructions per cache hit, counted by valgrind's callgrind: repeatable for one binary and
# input whatever else the machine is doing, so a change of a few percent on the hit path shows
# where wrk's requests per second on a shared machine cannot.
#
# usage: [KEYS=200] [CONNS=8] [CACHE_SIM=0] benches/instructions.sh [BINARY=target/release/isr-edge] [SECONDS=8]
# Runs the proxy under callgrind twice in front of ../shared/bench's origin: once with only
# KEYS misses, once with the same misses and then wrk over CONNS keep-alive connections on those
# KEYS URLs (1 KiB bodies) for SECONDS. Prints (second run - first run) / hits.
# CACHE_SIM=1 also simulates the caches (32 KiB L1s, a 512 KiB last level: one core's L2 on
# the first machine) and prints misses per hit: KEYS=1000 CONNS=64 (or 256) is the bench's own
# load. CACHE_SIZES replaces the sizes (valgrind's --I1/--D1/--LL options), e.g. this
# machine's: CACHE_SIZES="--I1=65536,8,64 --D1=49152,12,64 --LL=2097152,16,64".
# BINARY=origin counts the bench origin itself the same way (the origin-direct row's server:
# the least work a hyper server does per request).
set -euo pipefail
BIN=${1:-target/release/isr-edge}
SECS=${2:-8}
KEYS=${KEYS:-200}
CONNS=${CONNS:-8}
SIM=()
[[ ${CACHE_SIM:-0} == 1 ]] && SIM=(--cache-sim=yes ${CACHE_SIZES:---LL=524288,8,64})
BENCH=$(cd "$(dirname "$0")/../../shared/bench" && pwd)
TARGET=${BENCH_TARGET_DIR:-/tmp/bench-origin-target}
if [[ ! -x $TARGET/release/bench-origin || ! -x $TARGET/release/burst ]]; then
  cargo build --release --quiet --manifest-path "$BENCH/origin/Cargo.toml" --target-dir "$TARGET"
fi
[[ $BIN == origin || -x $BIN ]] || cargo build --release --quiet
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
ORIGIN_PORT=18390 EDGE_PORT=18394
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One run: prints "instructions hits".
run() {
  local seconds=$1 origin edge hits=0
  "$TARGET/release/bench-origin" --listen 127.0.0.1:$ORIGIN_PORT >/dev/null 2>&1 & origin=$!
  if [[ $BIN == origin ]]; then
    valgrind --tool=callgrind "${SIM[@]}" --callgrind-out-file="$work/out.%p" "$TARGET/release/bench-origin" \
      --listen 127.0.0.1:$EDGE_PORT --threads 1 >/dev/null 2>"$work/valgrind.log" & edge=$!
  else
    valgrind --tool=callgrind "${SIM[@]}" --callgrind-out-file="$work/out.%p" "$BIN" \
      --listen 127.0.0.1:$EDGE_PORT --origin http://127.0.0.1:$ORIGIN_PORT \
      --admin-listen off --workers 1 >/dev/null 2>"$work/valgrind.log" & edge=$!
  fi
  for _ in $(seq 150); do
    curl -s -o /dev/null "http://127.0.0.1:$EDGE_PORT/kb/1/w-0" && break
    sleep 0.2
  done
  "$TARGET/release/burst" --url "http://127.0.0.1:$EDGE_PORT/kb/1/w-{i}" --n "$KEYS" --concurrency 8 >/dev/null
  if [[ $seconds != 0 ]]; then
    hits=$(wrk -t1 -c"$CONNS" -d"${seconds}s" -s "$BENCH/keys.lua" "http://127.0.0.1:$EDGE_PORT" -- /kb/1/w- "$KEYS" \
      | awk '/requests in/{print $1}')
  fi
  kill -TERM $edge; wait $edge 2>/dev/null || true
  kill $origin; wait $origin 2>/dev/null || true
  # Every event the run counted (instructions; with CACHE_SIM, misses too), then the hits.
  echo "$(awk '/^summary:/{$1=""; print}' "$work"/out.$edge | tr -s ' ' ',' | sed 's/^,//') $hits"
}

read -r base _ < <(run 0)
sleep 1
read -r total hits < <(run "$SECS")
python3 - "$base" "$total" "$hits" <<'PY'
import sys
base, total = ([int(n) for n in field.split(",")] for field in sys.argv[1:3])
hits = int(sys.argv[3])
per_hit = [(t - b) / hits for b, t in zip(base, total)]
print(f"{hits} hits; {per_hit[0]:,.0f} instructions per hit")
if len(per_hit) == 9:
    # callgrind's order: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
    print(f"misses per hit: L1 instructions {per_hit[3]:,.0f}, L1 data {per_hit[4] + per_hit[5]:,.0f}, "
          f"last level instructions {per_hit[6]:,.1f}, data {per_hit[7] + per_hit[8]:,.1f}")
PY
