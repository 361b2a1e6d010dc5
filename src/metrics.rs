//! Prometheus metrics, a leaf every layer may call: one global registry (the `prometheus`
//! crate's default one, which `pingora-prometheus` serves), recording functions that take plain
//! values (labels, durations), and the `/metrics` listener on `METRICS_PORT`.
//!
//! Recording is off until [`init`] runs (the binary calls it when `METRICS_PORT` is set): until
//! then every recording function returns after one relaxed atomic load.
//!
//! Labels are bounded sets only: route kinds, status codes, error codes and store operation
//! names. Client ids, pair ids, paths and hosts never become labels.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `pqrelay_requests_total` | counter | `route`, `status` |
//! | `pqrelay_request_duration_seconds` | histogram | `route` |
//! | `pqrelay_upstream_response_seconds` | histogram | `route` |
//! | `pqrelay_decode_failures_total` | counter | `reason` |
//! | `pqrelay_pairings_total` | counter | |
//! | `pqrelay_pairs_created_total` | counter | |
//! | `pqrelay_pairings_in_flight` | gauge | |
//! | `pqrelay_pairings_busy_total` | counter | |
//! | `pqrelay_active_pairs` | gauge (memory store only) | |
//! | `pqrelay_store_operation_seconds` | histogram | `op` |
//! | `pqrelay_store_errors_total` | counter | `op` |

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use http::Response;
use pingora_core::apps::http_app::{HttpServer, ServeHttp};
use pingora_core::protocols::http::ServerSession;
use pingora_core::services::listening::Service;
use pingora_prometheus::prometheus::core::{Collector, Desc};
use pingora_prometheus::prometheus::proto::MetricFamily;
use pingora_prometheus::prometheus::{
    self, register_histogram_vec, register_int_counter, register_int_counter_vec,
    register_int_gauge, HistogramVec, IntCounter, IntCounterVec, IntGauge,
};
use pingora_prometheus::PrometheusHttpApp;

use crate::error::ERROR_TABLE;

/// The path the metrics listener answers; every other path is a 404.
pub(crate) const METRICS_PATH: &str = "/metrics";

/// Whether [`init`] ran (recording is on).
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Buckets of request and upstream durations, in seconds (1 ms to 60 s).
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Buckets of state store operations, in seconds (10 µs to 1 s).
const STORE_BUCKETS: &[f64] = &[
    0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    1.0,
];

/// The relay's metrics, registered in the default registry on first use.
struct Metrics {
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    upstream_seconds: HistogramVec,
    decode_failures: IntCounterVec,
    pairings: IntCounter,
    pairs_created: IntCounter,
    pairings_in_flight: IntGauge,
    pairings_busy: IntCounter,
    store_seconds: HistogramVec,
    store_errors: IntCounterVec,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    // Registering a name twice is a logic bug (this runs once per process).
    const ONCE: &str = "pqrelay metrics are registered once";
    Metrics {
        requests: register_int_counter_vec!(
            "pqrelay_requests_total",
            "Requests answered, by route kind and HTTP status (0: no response was sent).",
            &["route", "status"]
        )
        .expect(ONCE),
        request_seconds: register_histogram_vec!(
            "pqrelay_request_duration_seconds",
            "Time from the request head to the end of the response, by route kind.",
            &["route"],
            DURATION_BUCKETS.to_vec()
        )
        .expect(ONCE),
        upstream_seconds: register_histogram_vec!(
            "pqrelay_upstream_response_seconds",
            "Time from choosing an upstream to its response header (connect, request and \
             request body included), by route kind.",
            &["route"],
            DURATION_BUCKETS.to_vec()
        )
        .expect(ONCE),
        decode_failures: register_int_counter_vec!(
            "pqrelay_decode_failures_total",
            "MTE requests refused with a status 559-569, by error code.",
            &["reason"]
        )
        .expect(ONCE),
        pairings: register_int_counter!(
            "pqrelay_pairings_total",
            "Pairing requests whose pairs were stored."
        )
        .expect(ONCE),
        pairs_created: register_int_counter!(
            "pqrelay_pairs_created_total",
            "Pairs created by pairing requests."
        )
        .expect(ONCE),
        pairings_in_flight: register_int_gauge!(
            "pqrelay_pairings_in_flight",
            "Pairing key exchanges admitted now, running or waiting for a pairing thread (at most PAIRING_CONCURRENCY)."
        )
        .expect(ONCE),
        pairings_busy: register_int_counter!(
            "pqrelay_pairings_busy_total",
            "Pairing requests refused with 503 pairing_busy (every PAIRING_CONCURRENCY slot taken)."
        )
        .expect(ONCE),
        store_seconds: register_histogram_vec!(
            "pqrelay_store_operation_seconds",
            "Duration of pair state store operations (insert, load, compare_and_set, ping).",
            &["op"],
            STORE_BUCKETS.to_vec()
        )
        .expect(ONCE),
        store_errors: register_int_counter_vec!(
            "pqrelay_store_errors_total",
            "Pair state store operations that failed (store unreachable, timed out or full).",
            &["op"]
        )
        .expect(ONCE),
    }
});

/// Counts the pairs a store holds now, when it can tell cheaply (the memory store).
pub(crate) type PairCounter = Box<dyn Fn() -> Option<usize> + Send + Sync>;

/// Turns recording on and registers every metric, plus `pqrelay_active_pairs` when the store
/// can count its pairs (`active_pairs`). Call once, before serving.
pub(crate) fn init(active_pairs: Option<PairCounter>) {
    LazyLock::force(&METRICS);
    if ENABLED.swap(true, Ordering::Relaxed) {
        return;
    }
    let Some(count) = active_pairs else { return };
    let gauge = IntGauge::new(
        "pqrelay_active_pairs",
        "Pairs held by the in-memory state store (expired ones not yet swept included).",
    )
    .expect("a valid metric name");
    if let Err(e) = prometheus::register(Box::new(ActivePairs { gauge, count })) {
        log::warn!("metrics: pqrelay_active_pairs not registered: {e}");
    }
}

/// Whether recording is on.
pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Now, when recording is on (the start of a measured span).
pub(crate) fn start() -> Option<Instant> {
    enabled().then(Instant::now)
}

/// Records a finished request: its count by route label (a bounded set) and status (0 when
/// no response was sent), its duration, and, when it was refused with a 559–569 code, that code.
pub(crate) fn request_done(
    route: &'static str,
    status: u16,
    elapsed: Duration,
    error_code: Option<&str>,
) {
    if !enabled() {
        return;
    }
    let m = &*METRICS;
    let status = status.to_string();
    m.requests
        .with_label_values(&[route, status.as_str()])
        .inc();
    m.request_seconds
        .with_label_values(&[route])
        .observe(elapsed.as_secs_f64());
    let mte_error = error_code.and_then(|code| {
        ERROR_TABLE
            .iter()
            .find(|k| k.code == code && (559..=569).contains(&k.status))
    });
    if let Some(kind) = mte_error {
        m.decode_failures.with_label_values(&[kind.code]).inc();
    }
}

/// Records the time from choosing an upstream to its response header.
pub(crate) fn upstream_answered(route: &'static str, waited: Duration) {
    if enabled() {
        METRICS
            .upstream_seconds
            .with_label_values(&[route])
            .observe(waited.as_secs_f64());
    }
}

/// Records one store operation: its duration, and whether it failed because the store is
/// unavailable or full (`failed`; a pair that does not open is the client's problem).
pub(crate) fn store_operation(op: &'static str, elapsed: Duration, failed: bool) {
    if !enabled() {
        return;
    }
    let m = &*METRICS;
    m.store_seconds
        .with_label_values(&[op])
        .observe(elapsed.as_secs_f64());
    if failed {
        m.store_errors.with_label_values(&[op]).inc();
    }
}

/// Records a pairing request whose `pairs` pairs were stored.
pub(crate) fn paired(pairs: usize) {
    if enabled() && pairs > 0 {
        METRICS.pairings.inc();
        METRICS.pairs_created.inc_by(pairs as u64);
    }
}

/// Records a pairing key exchange starting (`pqrelay_pairings_in_flight` up).
pub(crate) fn pairing_started() {
    if enabled() {
        METRICS.pairings_in_flight.inc();
    }
}

/// Records a pairing key exchange finished (`pqrelay_pairings_in_flight` down). Recording is
/// never switched off once on, so every `pairing_started` recorded has its `pairing_finished`.
pub(crate) fn pairing_finished() {
    if enabled() {
        METRICS.pairings_in_flight.dec();
    }
}

/// Records a pairing refused with 503 `pairing_busy`.
pub(crate) fn pairing_busy() {
    if enabled() {
        METRICS.pairings_busy.inc();
    }
}

/// `pqrelay_active_pairs`, read from the store at each scrape.
struct ActivePairs {
    gauge: IntGauge,
    count: PairCounter,
}

impl Collector for ActivePairs {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        if let Some(n) = (self.count)() {
            self.gauge.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.gauge.collect()
    }
}

/// The metrics listener's app: [`PrometheusHttpApp`] at [`METRICS_PATH`], 404 elsewhere.
pub(crate) struct MetricsApp;

#[async_trait]
impl ServeHttp for MetricsApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        if session.req_header().uri.path() == METRICS_PATH {
            return PrometheusHttpApp.response(session).await;
        }
        let body = b"not found: metrics are at /metrics\n".to_vec();
        Response::builder()
            .status(404)
            .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(body)
            .unwrap_or_default()
    }
}

/// The Pingora service serving [`METRICS_PATH`] on `addr` (`host:port`).
pub(crate) fn service(addr: &str) -> Service<HttpServer<MetricsApp>> {
    let mut service = Service::new(
        "pqrelay metrics".to_string(),
        HttpServer::new_app(MetricsApp),
    );
    service.add_tcp(addr);
    service
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_failure_codes_are_the_mte_statuses() {
        let codes: Vec<_> = ERROR_TABLE
            .iter()
            .filter(|k| (559..=569).contains(&k.status))
            .map(|k| k.code)
            .collect();
        assert_eq!(codes.len(), 12);
        assert!(codes.contains(&"state_not_found"));
    }
}
