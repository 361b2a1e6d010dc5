#!/usr/bin/env bash
# Builds the relay, the load generator and the bare Pingora proxy in release, then runs every
# measurement (`pqrelay-bench all`): writes docs/PERFORMANCE.md and prints, last,
#   relay CPU per sealed request: X.XX× bare Pingora, Y.YY× nginx
# Needs nginx and redis-server on PATH (Debian: apt-get install -y nginx redis-server); the
# syscalls-per-request points need strace, the profiles of the CPU goals missed need perf
# (Debian: linux-perf); without them those points are skipped, and the report says so.
# Arguments go to `all`: --quick (about 2 minutes), --secs N, --out FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
for tool in nginx redis-server; do
    if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
        echo "run.sh: $tool not found (apt-get install -y nginx redis-server)" >&2
        exit 1
    fi
done
export PATH="$PATH:/usr/sbin"
# 1000 client connections plus as many upstream ones per proxy.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# One build of both packages (features unified), then the binary itself: `cargo run -p
# pqrelay-bench` would rebuild the dependencies with the bench's features alone.
cargo build --release -p pqrelay -p pqrelay-bench
exec "$CARGO_TARGET_DIR/release/pqrelay-bench" all "$@"
