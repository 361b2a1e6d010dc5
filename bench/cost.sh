#!/usr/bin/env bash
# Cost per request of the release relay, counted by the kernel (repeatable on a busy machine,
# unlike req/s): CPU µs (task-clock), syscalls and context switches per request, from
# `perf stat` attached to the relay for 5 s in the middle of a load run.
#   bench/cost.sh pt|bare|mte|redis [CONNS] [RATE] [SIZE]
# pt: pass-through route; bare: bare Pingora (bench/src/bin/bare-pingora.rs) on the same path; mte: sealed requests, memory state; redis: sealed, Redis state.
# CONNS defaults to 300; RATE (req/s, open loop) to none (closed loop); SIZE to 1024 bytes.
# RELAY_BIN=path measures another relay binary (e.g. a saved copy of an earlier build).
# SYSCALLS=1 also prints the relay's syscalls by name (`perf trace -s`: slower, so rough).
# Needs: cargo build --release -p pqrelay -p pqrelay-bench; perf (Debian linux-perf).
set -euo pipefail
MODE=${1:?usage: bench/cost.sh pt|bare|mte|redis [CONNS] [RATE] [SIZE]}
CONNS=${2:-300}
RATE=${3:-}
SIZE=${4:-1024}
cd "$(dirname "$0")/.."
B="${CARGO_TARGET_DIR:-$PWD/target}/release"
D=$(mktemp -d /tmp/pqrelay-cost-XXXX)
# shellcheck source=bench/lab.sh
. bench/lab.sh
trap 'cleanup; rm -rf "$D"' EXIT INT TERM
if [ -n "$RATE" ]; then ARGS+=(--rate "$RATE"); fi
SECS=5
"$B/pqrelay-bench" load "${ARGS[@]}" --size "$SIZE" --conns "$CONNS" --secs 8 --warmup 2 >"$D/load.txt" 2>&1 & L=$!
sleep 3
EVENTS=task-clock,context-switches,raw_syscalls:sys_enter
perf stat -x, -e "$EVENTS" -p "$R" -o "$D/stat.txt" -- sleep "$SECS"
if [ "${SYSCALLS:-}" = 1 ]; then
    timeout -s INT 3 perf trace -s -p "$R" -o "$D/trace.txt" >/dev/null 2>&1 || true
fi
wait "$L"
cat "$D/load.txt"
RPS=$(awk '/req\/s/ {print $1; exit}' "$D/load.txt")
awk -F, -v rps="$RPS" -v secs="$SECS" -v load="$(cut -d' ' -f1-3 /proc/loadavg)" '
    /task-clock/ { cpu = $1 * 1000 }          # msec → µs
    /context-switches/ { cs = $1 }
    /raw_syscalls/ { sc = $1 }
    END {
        n = rps * secs
        printf "per request: cpu %.1f µs  syscalls %.2f  context switches %.2f  (%.0f req/s, load %s)\n", cpu / n, sc / n, cs / n, rps, load
    }' "$D/stat.txt"
if [ -f "$D/trace.txt" ]; then
    awk '/^ *[a-z_0-9]+ +[0-9]+ / && $2 > 0 { print "  " $1, $2 }' "$D/trace.txt" | sort -k2 -n -r | awk '{a[$1]+=$2} END {for (k in a) print "  syscall", k, a[k]}' | sort -k3 -n -r | head -12
fi
