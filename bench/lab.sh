# shellcheck shell=bash
# Sourced by bench/cost.sh, profile.sh, allocs.sh and instructions.sh: starts the fast upstream, redis-server (MODE
# redis) and the release relay on free ports of 127.0.0.1, stops them all on exit.
# In: MODE (pt|mte|redis|bare: bare Pingora instead of the relay, pass-through path), B (release dir), RELAY_BIN / BARE_BIN (optional: another relay / bare Pingora binary), D (a scratch directory), READY_TENTHS (optional: how long to wait for the proxy, default 100 = 10 s),
# RELAY_YAML (optional extra lines for the relay's YAML, e.g. 'work_stealing: false').
# Out: R (relay pid), RP (relay port), ARGS (`pqrelay-bench load` target for MODE and SIZE).
for bin in "$B/pqrelay-bench" "${RELAY_BIN:-$B/pqrelay}"; do
    [ -x "$bin" ] || { echo "$bin not built (cargo build --release -p pqrelay -p pqrelay-bench)" >&2; exit 1; }
done
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
UPP=$(port); RP=$(port); RDP=$(port)
PIDS=()
# Background jobs of a script ignore SIGINT: the relay handles it (a fast stop, unlike SIGTERM's
# grace period), the others get SIGTERM. Whatever is still running 5 s later is killed, so a
# relay that does not stop (RELAY_BIN of an older build could spin logging after SIGINT) cannot
# keep the script waiting while it fills the disk.
cleanup() {
    if [ -n "${R:-}" ]; then kill -INT "$R" 2>/dev/null || true; fi
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 50); do
        [ -z "$(jobs -pr)" ] && break
        sleep 0.1
    done
    for p in $(jobs -pr); do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM
"$B/pqrelay-bench" upstream --port "$UPP" --threads "$(nproc)" >"$D/upstream.log" 2>&1 & PIDS+=($!)
EXTRA=()
if [ "$MODE" = redis ]; then
    redis-server --port "$RDP" --bind 127.0.0.1 --save "" --appendonly no >"$D/redis.log" 2>&1 & PIDS+=($!)
    EXTRA=("REDIS_URL=redis://127.0.0.1:$RDP")
fi
if [ "$MODE" = bare ]; then
    "${BARE_BIN:-$B/bare-pingora}" --listen "127.0.0.1:$RP" --upstream "127.0.0.1:$UPP" --threads "$(nproc)" --dir "$D" >"$D/relay.log" 2>&1 & R=$!
else
printf 'pid_file: %s/r.pid\nupgrade_sock: %s/r.sock\nupstream_keepalive_pool_size: 1024\n%s\n' "$D" "$D" "${RELAY_YAML:-}" >"$D/r.yaml"
env -i PATH="$PATH" UPSTREAM="http://127.0.0.1:$UPP" CLIENT_ID_SECRET=pqrelay-bench-client-id-secret-0123456789 \
    CORS_ORIGINS=http://localhost HOST=127.0.0.1 PORT="$RP" PASS_THROUGH_ROUTES='/pt/*' PAIR_RATE_PER_IP=0 PAIR_RATE_PER_CLIENT=0 THREADS="$(nproc)" \
    "${EXTRA[@]}" "${RELAY_BIN:-$B/pqrelay}" run --config "$D/r.yaml" >"$D/relay.log" 2>&1 & R=$!
fi
# Up to READY_TENTHS tenths of a second for the proxy to answer (a proxy under valgrind is slow).
for _ in $(seq "${READY_TENTHS:-100}"); do curl -fs "http://127.0.0.1:$RP/pt/health" >/dev/null 2>&1 && break; sleep 0.1; done
# shellcheck disable=SC2034 # ARGS is read by the sourcing script
if [ "$MODE" = pt ] || [ "$MODE" = bare ]; then
    ARGS=("http://127.0.0.1:$RP/pt/json/${SIZE:-1024}")
else
    ARGS=("http://127.0.0.1:$RP" --relay "/json/${SIZE:-1024}")
fi
