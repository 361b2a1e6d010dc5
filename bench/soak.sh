#!/usr/bin/env bash
# Soak test (not in CI): builds the relay and the load generator in release, then runs
# `pqrelay-bench soak`: DURATION seconds (default 600) of mixed, verified traffic (sealed JSON
# GETs and POSTs, uploads of 1 KiB to 8 MiB with their SHA-256 checked, Server-Sent Events, new
# pairings) through one relay with Redis state, with Redis SIGKILLed and restarted empty a third
# of the way in and a zero-downtime upgrade (-u + SIGQUIT) two thirds in. Prints the requests,
# the failures by phase and kind, and the relay's RSS; exits non-zero if a request failed outside
# the Redis outage and the upgrade, or if any answer was wrong.
# Needs redis-server on PATH (Debian: apt-get install -y redis-server).
# Environment: DURATION (seconds, default 600), WORKERS (default 8).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
if ! command -v redis-server >/dev/null 2>&1; then
    echo "soak.sh: redis-server not found (apt-get install -y redis-server)" >&2
    exit 1
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cargo build --release -p pqrelay -p pqrelay-bench
exec "$CARGO_TARGET_DIR/release/pqrelay-bench" soak \
    --secs "${DURATION:-600}" --workers "${WORKERS:-8}" \
    --relay-bin "$CARGO_TARGET_DIR/release/pqrelay"
