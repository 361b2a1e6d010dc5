//! The metrics listener (`METRICS_PORT`): after real traffic through the relay (sealed
//! exchanges from the Rust client, pass-through, own routes, a preflight, a refused MTE
//! request), `curl http://127.0.0.1:<METRICS_PORT>/metrics` shows every metric of
//! docs/OPERATIONS.md, with bounded labels only; other paths are 404; without `METRICS_PORT`
//! nothing listens. With Redis state the store metrics are recorded and no pair count is made.

use std::process::Command;

use pqrelay_testkit::redis::RedisServer;

use crate::util::exchange::relay_client;
use crate::util::{client, free_port, Relay, Upstream, ORIGIN};

/// `GET url` the way an operator would: `curl -s`, or reqwest where curl is missing.
async fn curl(url: &str) -> (u16, String) {
    if let Ok(out) = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", url])
        .output()
    {
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let (body, code) = text.rsplit_once('\n').expect("status line");
            return (code.trim().parse().expect("status"), body.to_owned());
        }
    }
    let resp = client().get(url).send().await.expect("metrics request");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

/// The value of the sample line that starts with `series` (name and labels, exactly).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn must(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("{series} missing from:\n{text}"))
}

/// Drives one of each kind of request through `relay`.
async fn traffic(relay: &Relay) {
    let c = relay_client(&relay.url(""));
    for i in 0..5 {
        let resp = c
            .post("/upload")
            .header("content-type", "text/plain")
            .body(format!("hello {i}"))
            .send()
            .await
            .expect("sealed request");
        assert_eq!(resp.status(), 200);
        let _ = resp.bytes().await.expect("body");
    }
    // Pass-through, an own route, a preflight, and an MTE route without x-mte-relay (561).
    let plain = client();
    let resp = plain.get(relay.url("/headers")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = plain
        .get(relay.url("/api/mte-echo/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = plain
        .request(reqwest::Method::OPTIONS, relay.url("/upload"))
        .header("origin", ORIGIN)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = plain.get(relay.url("/upload")).send().await.unwrap();
    assert_eq!(resp.status(), 561);
}

#[tokio::test]
async fn metrics_after_traffic_with_memory_state() {
    let upstream = Upstream::start();
    let metrics_port = free_port().to_string();
    let relay = Relay::start(
        &upstream.url(),
        &[
            ("METRICS_PORT", &metrics_port),
            ("PASS_THROUGH_ROUTES", "/headers"),
        ],
    );
    assert!(relay
        .proc
        .wait_log("metrics at http://[127.0.0.1]:")
        .contains("/metrics"));
    traffic(&relay).await;

    let url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let (status, text) = curl(&url).await;
    assert_eq!(status, 200, "{text}");

    // Requests by route kind and status (the sealed requests and their pairing included).
    assert_eq!(
        must(&text, r#"pqrelay_requests_total{route="mte",status="200"}"#),
        5.0
    );
    assert_eq!(
        must(
            &text,
            r#"pqrelay_requests_total{route="pass_through",status="200"}"#
        ),
        1.0
    );
    assert!(must(&text, r#"pqrelay_requests_total{route="own",status="200"}"#) >= 3.0);
    assert_eq!(
        must(
            &text,
            r#"pqrelay_requests_total{route="preflight",status="204"}"#
        ),
        1.0
    );
    assert_eq!(
        must(
            &text,
            r#"pqrelay_requests_total{route="rejected",status="561"}"#
        ),
        1.0
    );
    assert_eq!(
        must(
            &text,
            r#"pqrelay_request_duration_seconds_count{route="mte"}"#
        ),
        5.0
    );
    assert_eq!(
        must(
            &text,
            r#"pqrelay_decode_failures_total{reason="relay_header_invalid"}"#
        ),
        1.0
    );
    // Upstream latency: MTE and pass-through requests reached the upstream.
    assert_eq!(
        must(
            &text,
            r#"pqrelay_upstream_response_seconds_count{route="mte"}"#
        ),
        5.0
    );
    assert_eq!(
        must(
            &text,
            r#"pqrelay_upstream_response_seconds_count{route="pass_through"}"#
        ),
        1.0
    );
    // Pairing: the client paired its pool (2 pairs) once; the memory store holds them.
    assert_eq!(must(&text, "pqrelay_pairings_total"), 1.0);
    assert_eq!(must(&text, "pqrelay_pairs_created_total"), 2.0);
    assert_eq!(must(&text, "pqrelay_active_pairs"), 2.0);
    assert_eq!(must(&text, "pqrelay_pairings_in_flight"), 0.0);
    assert_eq!(must(&text, "pqrelay_pairings_busy_total"), 0.0);
    // Store operations: one load and one compare-and-set per exchange.
    assert_eq!(
        must(&text, r#"pqrelay_store_operation_seconds_count{op="load"}"#),
        5.0
    );
    assert_eq!(
        must(
            &text,
            r#"pqrelay_store_operation_seconds_count{op="compare_and_set"}"#
        ),
        5.0
    );
    assert_eq!(
        must(
            &text,
            r#"pqrelay_store_operation_seconds_count{op="insert"}"#
        ),
        1.0
    );
    assert!(!text.contains("pqrelay_store_errors_total{"), "{text}");
    // Bounded labels only: no path, client id or token.
    for needle in ["/upload", "/headers", "mte-echo"] {
        assert!(
            !text
                .lines()
                .filter(|l| l.starts_with("pqrelay_"))
                .any(|l| l.contains(needle)),
            "{needle} in a label:\n{text}"
        );
    }

    let (status, _) = curl(&format!("http://127.0.0.1:{metrics_port}/other")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn no_metrics_listener_without_metrics_port() {
    let upstream = Upstream::start();
    let relay = Relay::start(&upstream.url(), &[]);
    let log = relay.proc.wait_log("Server listening at");
    assert!(!log.contains("metrics at"), "{log}");
    // The relay's own port does not serve metrics either (it is an MTE route there).
    let resp = client().get(relay.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 561);
}

#[tokio::test]
async fn metrics_with_redis_state_time_the_store_and_count_no_pairs() {
    let redis = RedisServer::start();
    let upstream = Upstream::start();
    let metrics_port = free_port().to_string();
    let url = redis.url();
    let relay = Relay::start(
        &upstream.url(),
        &[("METRICS_PORT", &metrics_port), ("REDIS_URL", &url)],
    );
    relay.proc.wait_log("metrics at");
    let c = relay_client(&relay.url(""));
    for _ in 0..3 {
        let resp = c.post("/upload").body("x").send().await.expect("sealed");
        assert_eq!(resp.status(), 200);
    }
    let resp = client()
        .get(relay.url("/api/mte-ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let (_, text) = curl(&format!("http://127.0.0.1:{metrics_port}/metrics")).await;
    assert_eq!(
        must(&text, r#"pqrelay_store_operation_seconds_count{op="load"}"#),
        3.0
    );
    assert_eq!(
        must(&text, r#"pqrelay_store_operation_seconds_count{op="ping"}"#),
        1.0
    );
    assert_eq!(must(&text, "pqrelay_pairs_created_total"), 2.0);
    assert!(!text.contains("pqrelay_active_pairs"), "{text}");

    // Redis gone: readiness fails, and the failed ping is counted as a store error.
    drop(redis);
    let resp = client()
        .get(relay.url("/api/mte-ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let (_, text) = curl(&format!("http://127.0.0.1:{metrics_port}/metrics")).await;
    assert_eq!(must(&text, r#"pqrelay_store_errors_total{op="ping"}"#), 1.0);
    assert_eq!(
        must(&text, r#"pqrelay_requests_total{route="own",status="503"}"#),
        1.0
    );
}
