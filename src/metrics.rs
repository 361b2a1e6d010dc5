//! Prometheus metrics: one global registry (the `prometheus` crate's default one, which
//! `pingora-prometheus` serves), a few recording functions called from the proxy's filters and
//! the store, and the `/metrics` listener on `METRICS_PORT`.
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
//! | `pqrelay_active_pairs` | gauge (memory store only) | |
//! | `pqrelay_store_operation_seconds` | histogram | `op` |
//! | `pqrelay_store_errors_total` | counter | `op` |

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use http::Response;
use pingora_core::apps::http_app::{HttpServer, ServeHttp};
use pingora_core::protocols::http::ServerSession;
use pingora_core::services::listening::Service;
use pingora_error::{Error, ErrorType};
use pingora_prometheus::prometheus::core::{Collector, Desc};
use pingora_prometheus::prometheus::proto::MetricFamily;
use pingora_prometheus::prometheus::{
    self, register_histogram_vec, register_int_counter, register_int_counter_vec, HistogramVec,
    IntCounter, IntCounterVec, IntGauge,
};
use pingora_prometheus::PrometheusHttpApp;
use pqrelay_protocol::{ClientId, PairId, ServerPair};

use crate::ctx::{RequestCtx, RouteKind};
use crate::error::ErrorKind;
use crate::store::{PairStore, StoreError, Stored, Version};

/// The path the metrics listener answers; every other path is a 404.
pub const METRICS_PATH: &str = "/metrics";

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

/// Turns recording on and registers every metric, plus `pqrelay_active_pairs` when the store
/// can count its pairs cheaply ([`PairStore::pairs`]: the memory store; Redis reports none).
/// Call once, before serving.
pub fn init(store: Arc<dyn PairStore>) {
    LazyLock::force(&METRICS);
    if !ENABLED.swap(true, Ordering::Relaxed) && store.pairs().is_some() {
        let gauge = IntGauge::new(
            "pqrelay_active_pairs",
            "Pairs held by the in-memory state store (expired ones not yet swept included).",
        )
        .expect("a valid metric name");
        let collector = ActivePairs { gauge, store };
        if let Err(e) = prometheus::register(Box::new(collector)) {
            log::warn!("metrics: pqrelay_active_pairs not registered: {e}");
        }
    }
}

fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The `route` label of a request: a bounded set of route kinds.
fn route_label(route: &RouteKind) -> &'static str {
    match route {
        RouteKind::Mte(_) => "mte",
        RouteKind::PassThrough => "pass_through",
        RouteKind::Own(_) => "own",
        RouteKind::Preflight => "preflight",
        RouteKind::Rejected => "rejected",
        RouteKind::Unrouted => "unrouted",
    }
}

/// Records a finished request (called from the proxy's `logging` callback): its count by route
/// kind and status, its duration, and a decode failure when it was refused with a 559–569 code.
/// `status` is 0 when no response was sent.
pub fn request_done(ctx: &RequestCtx, status: u16, error: Option<&Error>) {
    if !enabled() {
        return;
    }
    let m = &*METRICS;
    let route = route_label(&ctx.route);
    let status = status.to_string();
    m.requests
        .with_label_values(&[route, status.as_str()])
        .inc();
    m.request_seconds
        .with_label_values(&[route])
        .observe(ctx.started.elapsed().as_secs_f64());
    let reason = ctx.error_code.or_else(|| match error.map(|e| e.etype()) {
        Some(ErrorType::HTTPStatus(s)) => Some(ErrorKind::for_status(*s).code),
        _ => None,
    });
    if let Some(reason) = reason {
        let is_mte_error = crate::error::ERROR_TABLE
            .iter()
            .any(|k| k.code == reason && (559..=569).contains(&k.status));
        if is_mte_error {
            m.decode_failures.with_label_values(&[reason]).inc();
        }
    }
}

/// Marks the moment the request's upstream was chosen (`upstream_peer`).
pub fn upstream_chosen(ctx: &mut RequestCtx) {
    if enabled() {
        ctx.upstream_started = Some(Instant::now());
    }
}

/// Records the time to the upstream's response header (`response_filter`, final responses).
pub fn upstream_answered(ctx: &mut RequestCtx) {
    if let Some(started) = ctx.upstream_started.take() {
        METRICS
            .upstream_seconds
            .with_label_values(&[route_label(&ctx.route)])
            .observe(started.elapsed().as_secs_f64());
    }
}

/// Records one store operation: its duration, and whether it failed because the store is
/// unavailable or full (a pair that does not open is the client's problem: not counted).
fn store_operation(op: &'static str, elapsed: Duration, result: Result<(), &StoreError>) {
    if !enabled() {
        return;
    }
    let m = &*METRICS;
    m.store_seconds
        .with_label_values(&[op])
        .observe(elapsed.as_secs_f64());
    if matches!(result, Err(StoreError::Unavailable(_) | StoreError::Full)) {
        m.store_errors.with_label_values(&[op]).inc();
    }
}

/// A [`PairStore`] that measures the one it wraps: operation durations and errors, pairings
/// and pairs created (every successful [`PairStore::insert`] is one pairing request).
pub struct MeasuredStore<S: ?Sized> {
    inner: Arc<S>,
}

impl<S: PairStore + ?Sized> MeasuredStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: Arc<S>) -> MeasuredStore<S> {
        MeasuredStore { inner }
    }
}

/// Runs one store operation and records it.
async fn measure<T>(
    op: &'static str,
    work: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = Instant::now();
    let result = work.await;
    store_operation(op, started.elapsed(), result.as_ref().map(|_| ()));
    result
}

#[async_trait]
impl<S: PairStore + ?Sized> PairStore for MeasuredStore<S> {
    async fn insert(
        &self,
        client: &ClientId,
        pairs: &[(PairId, ServerPair)],
    ) -> Result<(), StoreError> {
        measure("insert", self.inner.insert(client, pairs)).await?;
        if enabled() && !pairs.is_empty() {
            METRICS.pairings.inc();
            METRICS.pairs_created.inc_by(pairs.len() as u64);
        }
        Ok(())
    }

    async fn load(&self, client: &ClientId, pair: &PairId) -> Result<Option<Stored>, StoreError> {
        measure("load", self.inner.load(client, pair)).await
    }

    async fn load_recent(
        &self,
        client: &ClientId,
        pair: &PairId,
    ) -> Result<Option<Stored>, StoreError> {
        measure("load", self.inner.load_recent(client, pair)).await
    }

    async fn compare_and_set(
        &self,
        client: &ClientId,
        pair: &PairId,
        expected: &Version,
        next: &ServerPair,
    ) -> Result<bool, StoreError> {
        let work = self.inner.compare_and_set(client, pair, expected, next);
        measure("compare_and_set", work).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        measure("ping", self.inner.ping()).await
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn pairs(&self) -> Option<usize> {
        self.inner.pairs()
    }
}

/// `pqrelay_active_pairs`, read from the store at each scrape.
struct ActivePairs {
    gauge: IntGauge,
    store: Arc<dyn PairStore>,
}

impl Collector for ActivePairs {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        if let Some(n) = self.store.pairs() {
            self.gauge.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.gauge.collect()
    }
}

/// The metrics listener's app: [`PrometheusHttpApp`] at [`METRICS_PATH`], 404 elsewhere.
pub struct MetricsApp;

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
pub fn service(addr: &str) -> Service<HttpServer<MetricsApp>> {
    let mut service = Service::new(
        "pqrelay metrics".to_string(),
        HttpServer::new_app(MetricsApp),
    );
    service.add_tcp(addr);
    service
}

/// The `route` label values, for documentation and tests.
pub const ROUTE_LABELS: &[&str] = &[
    "mte",
    "pass_through",
    "own",
    "preflight",
    "rejected",
    "unrouted",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_cover_every_route_kind() {
        for kind in [
            RouteKind::Unrouted,
            RouteKind::Preflight,
            RouteKind::Own("echo"),
            RouteKind::PassThrough,
            RouteKind::Rejected,
        ] {
            assert!(ROUTE_LABELS.contains(&route_label(&kind)));
        }
    }

    #[test]
    fn decode_failure_codes_are_the_mte_statuses() {
        let codes: Vec<_> = crate::error::ERROR_TABLE
            .iter()
            .filter(|k| (559..=569).contains(&k.status))
            .map(|k| k.code)
            .collect();
        assert_eq!(codes.len(), 11);
        assert!(codes.contains(&"state_not_found"));
    }
}
