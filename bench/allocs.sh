#!/usr/bin/env bash
# Heap allocations per request of the release relay (or bare Pingora), counted exactly with
# uprobes on mimalloc's entry points: a count, not a time, so it does not move with the load of
# the machine. Requests are counted by a probe on `RequestHeader::clone` (Pingora clones each
# proxied request's head once, in the relay and in bare Pingora alike).
#   bench/allocs.sh pt|bare|mte|redis
# RELAY_BIN=path counts another relay binary. Needs root (tracefs uprobes) and perf.
set -euo pipefail
MODE=${1:?usage: bench/allocs.sh pt|bare|mte|redis}
SIZE=1024
cd "$(dirname "$0")/.."
B="${CARGO_TARGET_DIR:-$PWD/target}/release"
if [ "$MODE" = bare ]; then BIN=$B/bare-pingora; else BIN=${RELAY_BIN:-$B/pqrelay}; fi
T=/sys/kernel/tracing
[ -w "$T/uprobe_events" ] || T=/sys/kernel/debug/tracing
[ -w "$T/uprobe_events" ] || { echo "allocs.sh: no writable tracefs uprobe_events (root needed)" >&2; exit 1; }
# The file offset of the first symbol matching $1 (uprobes take offsets, not addresses).
offset() {
    local vaddr off addr
    vaddr=$(nm "$BIN" | awk -v re="$1" '$3 ~ re {print $1; exit}')
    [ -n "$vaddr" ] || { echo "allocs.sh: no symbol $1 in $BIN" >&2; exit 1; }
    read -r off addr < <(readelf -lW "$BIN" | awk '$1 == "LOAD" && $8 == "E" {print $2, $3; exit}')
    python3 -c 'import sys; v, o, a = (int(x, 16) for x in sys.argv[1:]); print(hex(v - a + o))' "$vaddr" "$off" "$addr"
}
echo >"$T/uprobe_events"
for s in mi_malloc_aligned mi_zalloc_aligned mi_realloc_aligned mi_free; do
    echo "p:pqallocs/$s $BIN:$(offset "^$s\$")" >>"$T/uprobe_events"
done
echo "p:pqallocs/request $BIN:$(offset 'pingora_http..RequestHeader.u20.as.u20.core..clone..Clone')" >>"$T/uprobe_events"
D=$(mktemp -d /tmp/pqrelay-allocs-XXXX)
RELAY_BIN=$BIN
# shellcheck source=bench/lab.sh
. bench/lab.sh
trap 'cleanup; rm -rf "$D"; echo >"$T/uprobe_events"' EXIT INT TERM
"$B/pqrelay-bench" load "${ARGS[@]}" --size "$SIZE" --conns 50 --secs 5 --warmup 1 >"$D/load.txt" 2>&1 & L=$!
sleep 2.5
perf stat -x, -e 'pqallocs:*' -p "$R" -o "$D/stat.txt" -- sleep 2
wait "$L"
awk -F, -v mode="$MODE" '
    /pqallocs:request/ { n = $1 }
    /pqallocs:mi_/ { c[substr($3, 10)] = $1 }
    END {
        allocs = c["mi_malloc_aligned"] + c["mi_zalloc_aligned"] + c["mi_realloc_aligned"]
        printf "%s: %.1f allocations and %.1f frees per request (malloc %.1f, zalloc %.1f, realloc %.1f; %d requests)\n", mode, allocs / n, c["mi_free"] / n, c["mi_malloc_aligned"] / n, c["mi_zalloc_aligned"] / n, c["mi_realloc_aligned"] / n, n
    }' "$D/stat.txt"
