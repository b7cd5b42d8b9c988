#!/bin/bash
# A profile-guided release build: the binary is built once with instrumentation, serves a
# training load of cache hits (the bench's own: 1 KiB and 64 KiB pages over 64 and 256
# connections, after the misses that store them), and is built again with the profile, so
# LLVM lays out and inlines the hit path for what it does. Same source, same behaviour; on
# this machine a hit costs ~25 % fewer instructions and almost no instruction-cache misses
# (see README, Performance).
#
# usage: bash benches/pgo.sh   ->  target/pgo/isr-edge (about 4 minutes)
# Needs rustup's llvm-tools (added when missing), wrk (apt-get when missing), and the origin
# and burst client of ../shared/bench (built here when missing), as benches/instructions.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$PWD/target/pgo
BENCH=$(cd ../shared/bench && pwd)
ORIGIN_TARGET=${BENCH_TARGET_DIR:-/tmp/bench-origin-target}
HOST=$(rustc -vV | awk '/^host:/{print $2}')
PROFDATA=$(rustc --print sysroot)/lib/rustlib/$HOST/bin/llvm-profdata
[[ -x $PROFDATA ]] || rustup component add llvm-tools
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
if [[ ! -x $ORIGIN_TARGET/release/bench-origin || ! -x $ORIGIN_TARGET/release/burst ]]; then
  cargo build --release --quiet --manifest-path "$BENCH/origin/Cargo.toml" --target-dir "$ORIGIN_TARGET"
fi

# `--target` keeps the flags off build scripts and proc macros: only the proxy is profiled.
rm -rf "$WORK/raw"
RUSTFLAGS="-Cprofile-generate=$WORK/raw" \
  cargo build --release --quiet --target "$HOST" --target-dir "$WORK/generate"

ORIGIN_PORT=18590 EDGE_PORT=18594
"$ORIGIN_TARGET/release/bench-origin" --listen 127.0.0.1:$ORIGIN_PORT >/dev/null 2>&1 & origin=$!
"$WORK/generate/$HOST/release/isr-edge" --listen 127.0.0.1:$EDGE_PORT \
  --origin http://127.0.0.1:$ORIGIN_PORT --admin-listen off --workers 1 >/dev/null 2>&1 & edge=$!
trap 'kill $edge $origin 2>/dev/null' EXIT
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$EDGE_PORT/kb/1/ready" && break
  sleep 0.1
done
for size in 1 64; do
  "$ORIGIN_TARGET/release/burst" --url "http://127.0.0.1:$EDGE_PORT/kb/$size/train-{i}" \
    --n 1000 --concurrency 16 >/dev/null
  for conns in 64 256; do
    wrk -t1 -c$conns -d4s -s "$BENCH/keys.lua" "http://127.0.0.1:$EDGE_PORT" \
      -- "/kb/$size/train-" 1000 >/dev/null
  done
done
# The profile is written when the process exits.
kill -TERM $edge
wait $edge || true

"$PROFDATA" merge -o "$WORK/merged.profdata" "$WORK/raw"
RUSTFLAGS="-Cprofile-use=$WORK/merged.profdata -Cllvm-args=-pgo-warn-missing-function=false" \
  cargo build --release --quiet --target "$HOST" --target-dir "$WORK/use"
cp "$WORK/use/$HOST/release/isr-edge" "$WORK/isr-edge"
echo "profile-guided build: $WORK/isr-edge"
