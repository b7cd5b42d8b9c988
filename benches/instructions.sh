#!/bin/bash
# Instructions per cache hit, counted by valgrind's callgrind: repeatable for one binary and
# input whatever else the machine is doing, so a change of a few percent on the hit path shows
# where wrk's requests per second on a shared machine cannot.
#
# usage: benches/instructions.sh [BINARY=target/release/isr-edge] [SECONDS=8]
# Runs the proxy under callgrind twice in front of ../shared/bench's origin: once with only
# 200 misses, once with the same misses and then wrk over 8 keep-alive connections on those 200
# URLs (1 KiB bodies) for SECONDS. Prints (second run - first run) / hits.
# BINARY=origin counts the bench origin itself the same way (the origin-direct row's server:
# the least work a hyper server does per request).
set -euo pipefail
BIN=${1:-target/release/isr-edge}
SECS=${2:-8}
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
    valgrind --tool=callgrind --callgrind-out-file="$work/out.%p" "$TARGET/release/bench-origin" \
      --listen 127.0.0.1:$EDGE_PORT --threads 1 >/dev/null 2>"$work/valgrind.log" & edge=$!
  else
    valgrind --tool=callgrind --callgrind-out-file="$work/out.%p" "$BIN" \
      --listen 127.0.0.1:$EDGE_PORT --origin http://127.0.0.1:$ORIGIN_PORT \
      --admin-listen off --workers 1 >/dev/null 2>"$work/valgrind.log" & edge=$!
  fi
  for _ in $(seq 150); do
    curl -s -o /dev/null "http://127.0.0.1:$EDGE_PORT/kb/1/w-0" && break
    sleep 0.2
  done
  "$TARGET/release/burst" --url "http://127.0.0.1:$EDGE_PORT/kb/1/w-{i}" --n 200 --concurrency 8 >/dev/null
  if [[ $seconds != 0 ]]; then
    hits=$(wrk -t1 -c8 -d"${seconds}s" -s "$BENCH/keys.lua" "http://127.0.0.1:$EDGE_PORT" -- /kb/1/w- 200 \
      | awk '/requests in/{print $1}')
  fi
  kill -TERM $edge; wait $edge 2>/dev/null || true
  kill $origin; wait $origin 2>/dev/null || true
  echo "$(awk '/^summary:/{print $2}' "$work"/out.$edge) $hits"
}

read -r base _ < <(run 0)
sleep 1
read -r total hits < <(run "$SECS")
python3 -c "import sys; b,t,h=map(int,sys.argv[1:]); print(f'{h} hits; {(t-b)/h:,.0f} instructions per hit')" \
  "$base" "$total" "$hits"
