# syntax=docker/dockerfile:1
#
# pqrelay container image.
#
#   docker build -t pqrelay .
#   docker run --rm -p 8080:8080 \
#     -e UPSTREAM=http://host.docker.internal:9000 \
#     -e CORS_ORIGINS=http://localhost:3000 \
#     -e CLIENT_ID_SECRET="$(head -c 32 /dev/urandom | base64)" \
#     pqrelay
#
# Configuration is by environment variables only (see docs/OPERATIONS.md); the image holds no
# config file and no secret. Logs go to the container's stdout/stderr (JSON lines), which is
# what `docker logs`, CloudWatch (awslogs) and Kubernetes collect.
#
# Needs BuildKit (the default builder since Docker 23) for the cache mounts below.

ARG RUST_VERSION=1
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------------------------------------
# Builder: release build of the `pqrelay` binary.
# ---------------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder

# pingora-core pulls flate2 with zlib-ng, whose build script needs cmake.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# The whole workspace is needed: cargo loads every member (protocol, clients/rust, bench) even
# when building one package. .dockerignore keeps target/, .git and the JS/Python clients out.
COPY . .

# Dependency caching: the cargo registry, git checkouts and target/ live in BuildKit cache
# mounts, so a rebuild after a source change recompiles only the workspace crates (the
# dependencies' artifacts stay in the cached target/). The binary is copied out of the cache
# mount, which is not part of the image.
RUN --mount=type=cache,id=pqrelay-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=pqrelay-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=pqrelay-target,target=/src/target,sharing=locked \
    cargo build --release --locked --package pqrelay --bin pqrelay \
 && install -D -m 0755 target/release/pqrelay /out/pqrelay

# ---------------------------------------------------------------------------------------------
# Runtime: Debian slim + CA roots (https upstreams, rediss://) + busybox for the health check.
# ---------------------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime

LABEL org.opencontainers.image.title="pqrelay" \
      org.opencontainers.image.description="Open post-quantum end-to-end encrypting HTTP relay on Pingora" \
      org.opencontainers.image.licenses="Apache-2.0"

# ca-certificates: trust roots for https:// upstreams and rediss:// (ElastiCache in-transit TLS).
# busybox: only its `wget` applet is used, by HEALTHCHECK (about 1 MB; curl would pull in
# libcurl and friends). A dedicated non-root user with fixed ids (10001) so that Kubernetes'
# runAsNonRoot and ECS' `user` can refer to it numerically.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates busybox \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 pqrelay \
 && useradd --system --uid 10001 --gid pqrelay --no-create-home \
            --home-dir /nonexistent --shell /usr/sbin/nologin pqrelay

COPY --from=builder /out/pqrelay /usr/local/bin/pqrelay

# JSON log lines for CloudWatch Logs Insights / log shippers (override with LOG_FORMAT=text).
# Pingora's pid file and upgrade socket are only used by the daemon/upgrade modes, which a
# container does not use; point them at /tmp (mount a tmpfs there with a read-only root).
ENV LOG_FORMAT=json \
    PID_FILE=/tmp/pqrelay.pid \
    UPGRADE_SOCK=/tmp/pqrelay_upgrade.sock

USER 10001:10001
# 8080: the relay (PORT). 9090: Prometheus metrics at /metrics, only when METRICS_PORT=9090 is
# set (off by default; keep that port private).
EXPOSE 8080 9090

# SIGTERM = Pingora's graceful stop: stop accepting, let in-flight requests finish within
# grace_period_seconds + graceful_shutdown_timeout_seconds (5 s + 5 s by default), then exit.
# Give the container more than that: `docker stop -t 20`, compose `stop_grace_period: 20s`,
# ECS `stopTimeout: 30`, Kubernetes `terminationGracePeriodSeconds: 30`.
STOPSIGNAL SIGTERM

# Liveness: the echo route answers {"echo":"healthcheck","time":...} without touching Redis or
# the upstream. Follows PORT when it is changed. (Readiness, GET /api/mte-ready, also checks
# Redis and answers 503 while shutting down: used by Kubernetes, not by this check.) Shell form on purpose: it expands
# ${PORT}; /bin/sh exists in the slim image. No `-T` timeout flag: Debian bookworm's busybox
# 1.35 wget segfaults with it (checked); HEALTHCHECK --timeout bounds the check instead.
# wget exits non-zero on a refused connection and on any non-2xx status.
# hadolint ignore=DL3025
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD busybox wget -q -O /dev/null "http://127.0.0.1:${PORT:-8080}/api/mte-echo/healthcheck" || exit 1

# No arguments = `pqrelay run` in the foreground (no -d: the container runtime supervises it).
# Other subcommands: `docker run IMAGE check-config`, `docker run IMAGE demo-upstream --host 0.0.0.0 --port 9000`.
ENTRYPOINT ["/usr/local/bin/pqrelay"]
