#!/usr/bin/env bash
# User-space instructions per request of the release relay (or bare Pingora), counted by
# callgrind: a count, not a time, so an A/B of two builds needs one run each, whatever the load
# of the machine. The proxy runs under valgrind; instrumentation is switched on after a warm-up
# and covers one load run (8 connections, 1 KiB, 6 s); requests are the calls of Pingora's
# `RequestHeader::clone` (one per proxied request, in the relay and bare Pingora alike).
#   bench/instructions.sh pt|bare|mte|redis [OUT]
# RELAY_BIN=path measures another relay build. OUT keeps the callgrind profile (default: a
# scratch file, removed); read it with `callgrind_annotate OUT`. Needs valgrind.
# SIDE=client counts the load generator instead (pt: plain requests, mte: the Rust client's
# sealed ones; the proxy runs natively): requests are then the calls of hyper's client-side
# `Http1Transaction::encode` (one per request head written); BENCH_BIN=path measures
# another build of the generator.
# Caveat: valgrind hides SHA-NI and VAES, so SHA-256 and AES run their portable code here and
# count several times what they cost natively; compare cryptography with `cargo bench` instead.
# Sealed modes leave out the relay's pairing of the load's 8 clients (one pair each; ~8% of an
# MTE run's instructions, more the fewer requests the window holds).
set -euo pipefail
MODE=${1:?usage: bench/instructions.sh pt|bare|mte|redis [OUT]}
SIZE=1024
cd "$(dirname "$0")/.."
B="${CARGO_TARGET_DIR:-$PWD/target}/release"
command -v valgrind >/dev/null || { echo "instructions.sh: valgrind not found (apt-get install -y valgrind)" >&2; exit 1; }
D=$(mktemp -d /tmp/pqrelay-instructions-XXXX)
OUT=${2:-$D/callgrind.out}
if [ "${SIDE:-}" = client ]; then TARGET=${BENCH_BIN:-$B/pqrelay-bench}
elif [ "$MODE" = bare ]; then TARGET=$B/bare-pingora; else TARGET=${RELAY_BIN:-$B/pqrelay}; fi
# The measured program is started through this wrapper (lab.sh runs a proxy with a clean
# environment); vgdb names its pipes after USER and HOST, so both sides set them alike.
WRAP=$D/under-callgrind
printf '#!/bin/sh\nexport USER=root HOST=127.0.0.1\nexec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=%s "%s" "$@"\n' "$OUT" "$TARGET" >"$WRAP"
chmod +x "$WRAP"
if [ "${SIDE:-}" = client ]; then :; elif [ "$MODE" = bare ]; then BARE_BIN=$WRAP; else RELAY_BIN=$WRAP; fi
READY_TENTHS=400
# shellcheck source=bench/lab.sh
. bench/lab.sh
trap 'cleanup; rm -rf "$D"' EXIT INT TERM
# control PID OPTION...: callgrind_control OPTION... of the process PID.
control() { USER=root HOST=127.0.0.1 callgrind_control "${@:2}" "$1" >/dev/null 2>&1; }
if [ "${SIDE:-}" = client ]; then
    # Warm-up (and the clients' pairing) for 8 s, instrumentation on for 6 s of the load.
    "$WRAP" load "${ARGS[@]}" --size "$SIZE" --conns 8 --secs 8 --warmup 8 >"$D/load.txt" 2>&1 & G=$!
    sleep 8
    control "$G" -i on
    sleep 6
    control "$G" -i off
    control "$G" -d
    wait "$G"
    CALLS='role::Client as hyper::proto::h1::Http1Transaction>::encode'
else
    "$B/pqrelay-bench" load "${ARGS[@]}" --size "$SIZE" --conns 8 --secs 3 --warmup 1 >/dev/null 2>&1
    control "$R" -i on
    "$B/pqrelay-bench" load "${ARGS[@]}" --size "$SIZE" --conns 8 --secs 6 --warmup 0 >"$D/load.txt" 2>&1
    control "$R" -i off
    control "$R" -d
    CALLS='RequestHeader as core::clone::Clone>::clone'
fi
sleep 1
DUMP=$(find "$(dirname "$OUT")" -maxdepth 1 -name "$(basename "$OUT")*" -size +1k | sort | tail -n 1)
# The relay's pairing of the load's clients (its own routes, and the key exchange on the
# blocking pool) is left out: its share would move with the number of requests in the window.
PAIRING=0
if [ "${SIDE:-}" != client ]; then
    PAIRING=$(callgrind_annotate --inclusive=yes --threshold=100 "$DUMP" 2>/dev/null \
        | awk '/pqrelay_protocol::pairing::answer |pqrelay::http::own::answer/ { gsub(",", "", $1); s += $1 } END { print s + 0 }')
fi
# Total instructions, and the calls of the per-request function from every caller.
awk -v mode="$MODE${SIDE:+ ($SIDE)}" -v calls="$CALLS" -v pairing="$PAIRING" '
    /^(summary|totals):/ { total = $2 }
    /^c?fn=\([0-9]+\)/ {
        id = $1; sub(/^c?fn=/, "", id)
        if (NF > 1) { name = $0; sub(/^c?fn=\([0-9]+\) /, "", name); names[id] = name }
        if ($0 ~ /^cfn=/) callee = names[id]
        next
    }
    /^calls=/ && callee ~ calls { split($1, c, "="); n += c[2] }
    END {
        printf "%s: %.0f instructions per request (%d requests, %.0f instructions", mode, (total - pairing) / n, n, total
        if (pairing > 0) printf "; %.0f of pairing left out", pairing
        print ")"
    }
' "$DUMP"
if [ -n "${2:-}" ]; then echo "profile: $DUMP"; fi
