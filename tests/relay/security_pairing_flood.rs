//! docs/SECURITY.md "Pairing cost": a flood of pairing requests cannot take the relay from
//! paired clients. The key exchange runs in a pool of `PAIRING_CONCURRENCY` permits off the
//! proxy threads; beyond it a pairing is answered at once with 503 `pairing_busy` and
//! `Retry-After: 1` (never queued), `pqrelay_pairings_busy_total` counts it, and an already
//! paired client's sealed exchanges keep succeeding throughout.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pqrelay_protocol::{ClientPairing, DecapsulationSeed, PairId};

use crate::util::exchange::{discovered, open_answer, random, seal_request, send_sealed, HandPair};
use crate::util::{free_port, machine, Relay, Upstream};

/// Flooding connections (each its own client, so its own connection).
const FLOOD_CONNECTIONS: usize = 48;
/// Pairs per flood pairing request (the most a request may ask for: the most work).
const FLOOD_PAIRS: usize = 25;
/// How long the flood lasts at least.
const FLOOD_TIME: Duration = Duration::from_secs(3);

/// A pairing request for a fresh client: its `x-mte-relay` value and JSON body.
async fn pairing_request(relay: &Relay) -> (String, Vec<u8>) {
    let (token, offered) = discovered(relay, None).await;
    let key = offered.choose(&[]).expect("a key").clone();
    let pids = (0..FLOOD_PAIRS).map(|_| PairId(random())).collect();
    let seed = DecapsulationSeed::from_bytes(random());
    let pending =
        ClientPairing::new(token.id(), &key, &random(), &seed, pids).expect("pairing request");
    (
        format!("2.{}", token.encode()),
        pending.request_body().to_vec(),
    )
}

/// What the flood saw.
#[derive(Default)]
struct Seen {
    ok: AtomicUsize,
    busy: AtomicUsize,
    other: AtomicUsize,
}

/// One flooding connection: sends its pairing request again and again until `stop`. Every
/// answer must be 200, 400 (its pair ids are in use after the first success) or a well-formed
/// 503 `pairing_busy`.
async fn flood(url: String, value: String, body: Vec<u8>, stop: Arc<AtomicBool>, seen: Arc<Seen>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(1)
        .build()
        .expect("client");
    while !stop.load(Ordering::Relaxed) {
        let sent = client
            .post(&url)
            .header("x-mte-relay", &value)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        let Ok(resp) = sent else {
            seen.other.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        match resp.status().as_u16() {
            200 | 400 => {
                seen.ok.fetch_add(1, Ordering::Relaxed);
            }
            503 => {
                let h = resp.headers();
                assert_eq!(h["retry-after"], "1", "{h:?}");
                assert_eq!(h["x-mte-relay-error"], "pairing_busy", "{h:?}");
                let v: serde_json::Value = resp.json().await.expect("JSON error");
                assert_eq!(v["error"], "pairing_busy", "{v}");
                assert_eq!(v["status"], 503, "{v}");
                seen.busy.fetch_add(1, Ordering::Relaxed);
            }
            s => panic!("flood pairing answered {s}"),
        }
    }
}

/// The value of the metrics sample line `series`.
async fn metric(port: &str, series: &str) -> f64 {
    let url = format!("http://127.0.0.1:{port}/metrics");
    let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} missing from:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_flood_gets_busy_while_paired_clients_go_on() {
    let _machine = machine::heavy();
    let upstream = Upstream::start();
    let metrics_port = free_port().to_string();
    let relay = Relay::start(
        &upstream.url(),
        &[
            ("PAIRING_CONCURRENCY", "1"),
            ("PAIR_RATE_PER_IP", "0"),
            ("PAIR_RATE_PER_CLIENT", "0"),
            ("METRICS_PORT", &metrics_port),
        ],
    );
    relay.proc.wait_log("metrics at http://");
    let mut paired = HandPair::new(&relay, None).await;
    assert_eq!(
        metric(&metrics_port, "pqrelay_pairings_busy_total").await,
        0.0
    );

    let mut requests = Vec::new();
    for _ in 0..FLOOD_CONNECTIONS {
        requests.push(pairing_request(&relay).await);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Seen::default());
    let url = relay.url("/api/mte-pair");
    let flooders: Vec<_> = requests
        .into_iter()
        .map(|(value, body)| {
            let (url, stop, seen) = (url.clone(), stop.clone(), seen.clone());
            tokio::spawn(flood(url, value, body, stop, seen))
        })
        .collect();

    // The paired client goes on during the flood.
    let started = Instant::now();
    let mut exchanges = 0;
    while started.elapsed() < FLOOD_TIME || seen.busy.load(Ordering::Relaxed) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no pairing_busy"
        );
        let s = seal_request(&mut paired, "GET", "/headers", &[], None);
        let resp = send_sealed(&relay, &s).await;
        let (status, _, body) = open_answer(&s, resp).await;
        assert_eq!(status, 200, "exchange {exchanges} during the flood");
        assert!(!body.is_empty());
        exchanges += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.await.expect("flooder");
    }

    let busy = seen.busy.load(Ordering::Relaxed);
    let ok = seen.ok.load(Ordering::Relaxed);
    eprintln!(
        "{exchanges} exchanges; flood: {ok} answered, {busy} busy, {} failed",
        seen.other.load(Ordering::Relaxed)
    );
    assert!(busy > 0 && ok > 0, "{ok} answered, {busy} busy");
    assert!(exchanges > 0);
    let counted = metric(&metrics_port, "pqrelay_pairings_busy_total").await;
    assert_eq!(counted, busy as f64);
    assert_eq!(
        metric(&metrics_port, "pqrelay_pairings_in_flight").await,
        0.0
    );
}
