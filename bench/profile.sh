#!/usr/bin/env bash
# Profiles the release relay under load with `perf record -e cpu-clock` (software clock: this
# VM has no hardware counters) and prints relay CPU per request and the top symbols.
#   bench/profile.sh pt|bare|mte|redis [--graph]
# pt: pass-through route; bare: bare Pingora (bench/src/bin/bare-pingora.rs) on the same path; mte: sealed requests, memory state; redis: sealed, Redis state.
# 300 connections, 1 KiB JSON, 8 s of load, 5 s sampled. --graph: DWARF call graphs (slower).
# Needs: cargo build --release -p pqrelay -p pqrelay-bench; perf (Debian linux-perf).
set -euo pipefail
MODE=${1:?usage: bench/profile.sh pt|bare|mte|redis [--graph]}
GRAPH=${2:-}
cd "$(dirname "$0")/.."
B="${CARGO_TARGET_DIR:-$PWD/target}/release"
D=$(mktemp -d /tmp/pqrelay-profile-XXXX)
# shellcheck source=bench/lab.sh
. bench/lab.sh
"$B/pqrelay-bench" load "${ARGS[@]}" --conns 300 --secs 8 --warmup 1 >"$D/load.txt" 2>&1 & L=$!
sleep 3
if [ "$GRAPH" = --graph ]; then
    perf record -F 199 -e cpu-clock --call-graph dwarf,16384 -p "$R" -o "$D/perf.data" -- sleep 3 >"$D/perf.log" 2>&1
else
    perf record -F 499 -e cpu-clock -p "$R" -o "$D/perf.data" -- sleep 5 >"$D/perf.log" 2>&1
fi
wait "$L"
cat "$D/load.txt"
# utime + stime of the relay over its whole life (load, warm-up and start-up).
awk '{printf "relay CPU: %.2f s\n", ($14+$15)/100}' "/proc/$R/stat"
perf report -i "$D/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -6
perf report -i "$D/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -30 | cut -c1-150
echo "perf data: $D/perf.data (perf report -i $D/perf.data -G for call graphs with --graph)"
