#!/usr/bin/env bash
# Profiles the release relay under load with `perf record -e cpu-clock` (software clock: this
# VM has no hardware counters) and prints relay CPU per request and the top symbols.
#   bench/profile.sh pt|mte|redis [--graph]
# pt: pass-through route; mte: sealed requests, memory state; redis: sealed, Redis state.
# 300 connections, 1 KiB JSON, 8 s of load, 5 s sampled. --graph: DWARF call graphs (slower).
# Needs: cargo build --release -p pqrelay -p pqrelay-bench; perf (Debian linux-perf).
set -euo pipefail
MODE=${1:?usage: bench/profile.sh pt|mte|redis [--graph]}
GRAPH=${2:-}
cd "$(dirname "$0")/.."
B="${CARGO_TARGET_DIR:-$PWD/target}/release"
D=$(mktemp -d /tmp/pqrelay-profile-XXXX)
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
UPP=$(port); RP=$(port); RDP=$(port)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
"$B/pqrelay-bench" upstream --port "$UPP" --threads "$(nproc)" >"$D/upstream.log" 2>&1 & PIDS+=($!)
EXTRA=()
if [ "$MODE" = redis ]; then
    redis-server --port "$RDP" --bind 127.0.0.1 --save "" --appendonly no >"$D/redis.log" 2>&1 & PIDS+=($!)
    EXTRA=("REDIS_URL=redis://127.0.0.1:$RDP")
    sleep 0.3
fi
printf 'pid_file: %s/r.pid\nupgrade_sock: %s/r.sock\nupstream_keepalive_pool_size: 1024\n' "$D" "$D" >"$D/r.yaml"
env -i PATH="$PATH" UPSTREAM="http://127.0.0.1:$UPP" CLIENT_ID_SECRET=pqrelay-bench-client-id-secret-0123456789 \
    CORS_ORIGINS=http://localhost HOST=127.0.0.1 PORT="$RP" PASS_THROUGH_ROUTES='/pt/*' PAIR_RATE_PER_IP=0 PAIR_RATE_PER_CLIENT=0 THREADS="$(nproc)" \
    "${EXTRA[@]}" "$B/pqrelay" run --config "$D/r.yaml" >"$D/relay.log" 2>&1 & R=$!; PIDS+=($R)
sleep 1
if [ "$MODE" = pt ]; then
    ARGS=("http://127.0.0.1:$RP/pt/json/1024")
else
    ARGS=("http://127.0.0.1:$RP" --relay /json/1024)
fi
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
