//! The relay's edge limits as configuration data: sizes, timeouts, pairing rates and pairing concurrency, with their
//! defaults (docs/SECURITY.md says what each one answers and which test proves it).

use std::time::Duration;

/// Default `MAX_HEADER_BYTES`: every header field (name, value, 4 bytes of framing) together.
/// Room for a 16 KiB `x-mte-relay-eh` (PROTOCOL.md §15) plus ordinary headers and cookies.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 32 * 1024;
/// Default `MAX_URL_BYTES`: the request-target as sent. A sealed 8 KiB URL is about 11 KiB.
pub const DEFAULT_MAX_URL_BYTES: usize = 12 * 1024;
/// Default `HEADER_TIMEOUT_MS`: a request head must be complete by then.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `CLIENT_TIMEOUT_MS`: the longest wait for one read of a request body from, or one
/// write of a response to, the client.
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `UPSTREAM_CONNECT_TIMEOUT_MS`.
pub const DEFAULT_UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `UPSTREAM_READ_TIMEOUT_MS`: the longest wait for one read from (or write to) the
/// upstream, so also the longest silence of a streamed response such as Server-Sent Events.
pub const DEFAULT_UPSTREAM_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `PAIR_RATE_PER_IP`: pairing requests per second from one client IP (room for a
/// few clients behind one NAT re-pairing at once).
pub const DEFAULT_PAIR_RATE_PER_IP: u32 = 50;
/// Default `PAIR_RATE_PER_CLIENT`: pairing requests per second for one client id. A client
/// whose relay restarted re-pairs each stale pair once (PROTOCOL.md §12): up to
/// `MAX_POOL_SIZE` (25) requests in a burst must pass.
pub const DEFAULT_PAIR_RATE_PER_CLIENT: u32 = 30;
/// Pairings in flight per CPU by default (`PAIRING_CONCURRENCY` = this × the CPU count). The
/// work is CPU-bound: permits beyond the CPU count add no pairing throughput, only threads
/// that compete with the proxy workers for the cores (docs/PERFORMANCE.md, "Pairing flood":
/// on 2 cores, 32 per CPU let a 64-connection flood in whole and the exchanges' p99 rose to
/// 123 ms, against 73–86 ms with 2–4 per CPU and 41 ms with 1). 4 per CPU still admits a burst
/// of about a millisecond of pairing work per core before answering 503.
pub const PAIRINGS_PER_CPU: usize = 4;
/// The largest `PAIRING_CONCURRENCY` (Tokio's semaphore holds far more; beyond the pairing
/// threads, 4 per CPU, admitted work waits in memory).
pub const MAX_PAIRING_CONCURRENCY: usize = 65_536;

/// Default `PAIRING_CONCURRENCY`: [`PAIRINGS_PER_CPU`] × the CPU count.
pub fn default_pairing_concurrency() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    PAIRINGS_PER_CPU.saturating_mul(cpus)
}

/// The edge limits of a relay (all configurable; see each default constant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `MAX_HEADER_BYTES`: the request's header fields together (431 beyond).
    pub max_header_bytes: usize,
    /// `MAX_URL_BYTES`: the request-target as sent (414 beyond).
    pub max_url_bytes: usize,
    /// `HEADER_TIMEOUT_MS`: a connection's request head must arrive within this time.
    pub header_timeout: Duration,
    /// `CLIENT_TIMEOUT_MS`: idle limit of one body read from / response write to the client.
    pub client_timeout: Duration,
    /// `UPSTREAM_CONNECT_TIMEOUT_MS` (504 when it passes, 502 when refused).
    pub upstream_connect_timeout: Duration,
    /// `UPSTREAM_READ_TIMEOUT_MS`: idle limit of one read from / write to the upstream (504).
    pub upstream_read_timeout: Duration,
    /// `PAIR_RATE_PER_IP`: pairing requests per second per client IP; 0 = unlimited.
    pub pair_rate_per_ip: u32,
    /// `PAIR_RATE_PER_CLIENT`: pairing requests per second per client id; 0 = unlimited.
    pub pair_rate_per_client: u32,
    /// `PAIRING_CONCURRENCY`: pairings whose key exchange runs at once (503 beyond); never 0.
    pub pairing_concurrency: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_url_bytes: DEFAULT_MAX_URL_BYTES,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            client_timeout: DEFAULT_CLIENT_TIMEOUT,
            upstream_connect_timeout: DEFAULT_UPSTREAM_CONNECT_TIMEOUT,
            upstream_read_timeout: DEFAULT_UPSTREAM_READ_TIMEOUT,
            pair_rate_per_ip: DEFAULT_PAIR_RATE_PER_IP,
            pair_rate_per_client: DEFAULT_PAIR_RATE_PER_CLIENT,
            pairing_concurrency: default_pairing_concurrency(),
        }
    }
}
