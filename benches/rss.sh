#!/bin/bash
# Memory per stored page: RSS of the release proxy after storing N distinct 1 KiB pages.
# usage: [ORIGIN=bench|next] benches/rss.sh [N=100000] [BINARY=target/release/isr-edge]
# Uses the bench origin and `burst` client of ../shared/bench (built here when missing).
# ORIGIN=next serves the same 1 KiB pages with the head Next.js 15 sends (Vary with four names,
# x-nextjs-* and X-Powered-By) from benches/next_shaped_origin.py: slower (Python), so use
# N=50000 or fewer.
set -euo pipefail
N=${1:-100000}
BIN=${2:-target/release/isr-edge}
BENCH=$(cd "$(dirname "$0")/../../shared/bench" && pwd)
TARGET=${BENCH_TARGET_DIR:-/tmp/bench-origin-target}
if [[ ! -x $TARGET/release/bench-origin || ! -x $TARGET/release/burst ]]; then
  cargo build --release --quiet --manifest-path "$BENCH/origin/Cargo.toml" --target-dir "$TARGET"
fi
[[ -x $BIN ]] || cargo build --release --quiet
ORIGIN_PORT=18190 EDGE_PORT=18194 ADMIN_PORT=18195
if [[ ${ORIGIN:-bench} == next ]]; then
  python3 "$(dirname "$0")/next_shaped_origin.py" $ORIGIN_PORT >/dev/null 2>&1 & origin=$!
else
  "$TARGET/release/bench-origin" --listen 127.0.0.1:$ORIGIN_PORT >/dev/null 2>&1 & origin=$!
fi
"$BIN" --listen 127.0.0.1:$EDGE_PORT --origin http://127.0.0.1:$ORIGIN_PORT \
  --admin-listen 127.0.0.1:$ADMIN_PORT >/dev/null 2>&1 & edge=$!
trap 'kill $edge $origin 2>/dev/null' EXIT
sleep 1
rss_kib() { awk '/VmRSS/{print $2}' "/proc/$edge/status"; }
before=$(rss_kib)
"$TARGET/release/burst" --url "http://127.0.0.1:$EDGE_PORT/kb/1/rss-{i}" --n "$N" --concurrency 16 >/dev/null
sleep 2
after=$(rss_kib)
metrics=$(curl -s http://127.0.0.1:$ADMIN_PORT/metrics)
entries=$(awk '/^isr_edge_cache_entries /{print $2}' <<<"$metrics")
weighted=$(awk '/^isr_edge_cache_bytes /{print $2}' <<<"$metrics")
python3 - "$N" "$before" "$after" "$entries" "$weighted" <<'PY'
import sys
n, before, after, entries, weighted = (float(x) for x in sys.argv[1:])
body = n * 1024
print(f"{int(entries)} pages stored; RSS {after * 1024 / 1e6:.1f} MB (was {before * 1024 / 1e6:.1f} MB before)")
print(f"RSS / body bytes {after * 1024 / body:.2f}x; RSS / cache-accounted bytes {after * 1024 / weighted:.2f}x; "
      f"{(after - before) * 1024 / n:.0f} bytes of growth per page")
PY
