#!/usr/bin/env bash
# A/B of two relay binaries by CPU per request (bench/cost.sh), alternating A and B so that the
# machine's drift falls on both; prints every run and the median of each side.
#   bench/ab.sh A_BIN B_BIN pt|bare|mte|redis [ROUNDS] [CONNS]
# ROUNDS defaults to 5, CONNS to 300. Save a build first, e.g. `cp target/release/pqrelay /tmp/a`.
set -euo pipefail
A=${1:?usage: bench/ab.sh A_BIN B_BIN MODE [ROUNDS] [CONNS]}
B_BIN=${2:?usage: bench/ab.sh A_BIN B_BIN MODE [ROUNDS] [CONNS]}
MODE=${3:?usage: bench/ab.sh A_BIN B_BIN MODE [ROUNDS] [CONNS]}
ROUNDS=${4:-5}
CONNS=${5:-300}
cd "$(dirname "$0")/.."
OUT=$(mktemp /tmp/pqrelay-ab-XXXX)
trap 'rm -f "$OUT"' EXIT
for i in $(seq "$ROUNDS"); do
    for side in A B; do
        if [ "$side" = A ]; then bin=$A; else bin=$B_BIN; fi
        line=$(RELAY_BIN=$bin bash bench/cost.sh "$MODE" "$CONNS" | tail -1)
        echo "round $i $side: $line"
        echo "$side $(echo "$line" | awk '{print $4}')" >>"$OUT"
    done
done
for side in A B; do
    awk -v s="$side" '$1 == s {print $2}' "$OUT" | sort -n | awk -v s="$side" '
        { v[NR] = $1 }
        END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf "%s: median %.1f µs per request over %d runs (min %.1f, max %.1f)\n", s, m, NR, v[1], v[NR] }'
done
