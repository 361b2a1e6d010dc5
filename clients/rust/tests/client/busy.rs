//! A pairing refused with 429 (`rate_limited`, `Retry-After: 1`) is sent again after the wait,
//! at most `PAIRING_ATTEMPTS` attempts in all (§11.1), against the real relay started with
//! `PAIR_RATE_PER_IP=1`; and how `Retry-After` is read.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pqrelay_client::engine::{retry_after, MAX_RETRY_AFTER};
use pqrelay_client::{Error, HeaderMap, RelayClient, WireEvent, PAIRING_ATTEMPTS};
use pqrelay_testkit::{Relay, Upstream};

use crate::util::recorder;

/// One pairing request per second from one IP, none per client id.
const ONE_PER_SECOND: &[(&str, &str)] = &[("PAIR_RATE_PER_IP", "1"), ("PAIR_RATE_PER_CLIENT", "0")];

/// The statuses of the pairing answers among `events`, and the `RetryAfter` events.
fn pairings(events: &[WireEvent]) -> (Vec<u16>, Vec<(u16, u32, u64)>) {
    let statuses = events
        .iter()
        .filter_map(|e| match e {
            WireEvent::Pairing { status, .. } => Some(*status),
            _ => None,
        })
        .collect();
    let waits = events
        .iter()
        .filter_map(|e| match e {
            WireEvent::RetryAfter {
                status,
                attempt,
                wait_ms,
                ..
            } => Some((*status, *attempt, *wait_ms)),
            _ => None,
        })
        .collect();
    (statuses, waits)
}

#[tokio::test]
async fn a_pairing_refused_with_429_is_sent_again_after_retry_after() {
    let upstream = Upstream::start();
    let relay = Relay::start(&upstream.url(), ONE_PER_SECOND);
    let first = RelayClient::builder(relay.url("")).build().unwrap();
    first
        .connect()
        .await
        .expect("the first pairing of this second");

    let (log, observer) = recorder();
    let second = RelayClient::builder(relay.url(""))
        .observer(observer)
        .build()
        .unwrap();
    let started = Instant::now();
    second.connect().await.expect("paired after waiting");
    let elapsed = started.elapsed();

    let (statuses, waits) = pairings(&log.lock().unwrap());
    assert_eq!(statuses, [429, 200], "refused once, then paired");
    assert_eq!(waits.len(), 1, "{waits:?}");
    let (status, attempt, wait_ms) = waits[0];
    assert_eq!((status, attempt), (429, 1));
    assert!(
        (1000..=1250).contains(&wait_ms),
        "Retry-After: 1 plus jitter: {wait_ms}"
    );
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert_eq!(second.stats().busy_retries, 1);
    let resp = second.get("/echo?msg=after-429").send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

/// Sends pairing requests from this IP as fast as the relay answers until `stop`: every rate
/// window's one pairing goes to them (the relay counts them before reading anything else).
/// Returns once the relay has refused one of them, so the current window is already spent.
fn hammer(port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let (refused, first_refusal) = std::sync::mpsc::sync_channel(1);
    let thread = std::thread::spawn(move || {
        let conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut conn = conn;
        let request =
            b"POST /api/mte-pair HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 0\r\n\r\n";
        while !stop.load(Ordering::Relaxed) {
            conn.write_all(request).unwrap();
            let mut status = String::new();
            reader.read_line(&mut status).unwrap();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end().to_ascii_lowercase();
                if line.is_empty() {
                    break;
                }
                if let Some(v) = line.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body).unwrap();
            if status.starts_with("HTTP/1.1 429") {
                let _ = refused.try_send(());
            }
        }
    });
    first_refusal
        .recv_timeout(Duration::from_secs(10))
        .expect("the relay refuses the hammer's second pairing within its window");
    thread
}

#[tokio::test]
async fn a_pairing_refused_every_time_fails_after_three_attempts() {
    let upstream = Upstream::start();
    let relay = Relay::start(&upstream.url(), ONE_PER_SECOND);
    let stop = Arc::new(AtomicBool::new(false));
    let hammering = hammer(relay.port, stop.clone());
    let (log, observer) = recorder();
    let client = RelayClient::builder(relay.url(""))
        .observer(observer)
        .build()
        .unwrap();
    let outcome = client.connect().await;
    stop.store(true, Ordering::Relaxed);
    hammering.join().unwrap();

    let (statuses, waits) = pairings(&log.lock().unwrap());
    assert_eq!(PAIRING_ATTEMPTS, 3);
    assert_eq!(statuses, [429; 3], "three attempts, all refused");
    let attempts: Vec<_> = waits.iter().map(|&(s, a, _)| (s, a)).collect();
    assert_eq!(
        attempts,
        [(429, 1), (429, 2)],
        "a wait after each but the last"
    );
    match outcome {
        Err(Error::Relay { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (429, "rate_limited"));
        }
        other => panic!("expected the relay's 429, got {other:?}"),
    }
    assert_eq!(client.stats().busy_retries, 2);
}

#[test]
fn retry_after_is_delta_seconds_capped_and_one_second_otherwise() {
    let with = |v: Option<&str>| {
        let mut h = HeaderMap::new();
        if let Some(v) = v {
            h.insert("retry-after", v.parse().unwrap());
        }
        h
    };
    let secs = Duration::from_secs;
    assert_eq!(retry_after(429, &with(Some("2"))), Some(secs(2)));
    assert_eq!(retry_after(503, &with(Some("0"))), Some(secs(0)));
    assert_eq!(retry_after(503, &with(Some("3600"))), Some(MAX_RETRY_AFTER));
    assert_eq!(MAX_RETRY_AFTER, secs(10));
    assert_eq!(retry_after(429, &with(None)), Some(secs(1)));
    let date = "Fri, 04 Dec 2026 10:00:00 GMT";
    assert_eq!(retry_after(503, &with(Some(date))), Some(secs(1)));
    assert_eq!(retry_after(429, &with(Some("-1"))), Some(secs(1)));
    assert_eq!(retry_after(500, &with(Some("1"))), None);
    assert_eq!(retry_after(400, &with(None)), None);
}

#[cfg(feature = "cli")]
#[test]
fn curl_verbose_prints_the_wait() {
    let event = WireEvent::RetryAfter {
        request: "pairing (POST /api/mte-pair)",
        status: 429,
        attempt: 1,
        wait_ms: 1100,
    };
    let line = pqrelay_client::curl::describe(&event);
    assert!(line.contains("429") && line.contains("1100 ms"), "{line}");
    assert!(line.contains("attempt 1 of 3"), "{line}");
}
