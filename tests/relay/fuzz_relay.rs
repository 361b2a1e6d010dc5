//! docs/SECURITY.md §6: the relay's request handling under arbitrary bytes. A seeded PRNG
//! generates requests (random bytes, random heads with random framing and sizes, mutated
//! sealed MTE requests, mutated pairing bodies) and sends them over raw TCP to the real binary
//! (memory state, demo upstream). Every reply must be a well-formed HTTP response; an
//! unmutated sealed request must succeed and a mutated sealed part must never; the relay must
//! not panic or die, must still serve a normal exchange afterwards, and its open file
//! descriptors must come back to the baseline.
//!
//! `PQRELAY_FUZZ_SECS` (default 12) sets the length of the run, `PQRELAY_FUZZ_SEED` the seed
//! (printed at the start: rerun a failure with it).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pqrelay_protocol::{ClientId, ClientPairing, DecapsulationSeed, PairId, RelayHeader, RelayKey};
use pqrelay_testkit::{fd_count, fd_listing};

use crate::util::exchange::{relay_client, seal_request, HandPair};
use crate::util::fuzz::{exchange, mutate, response_statuses, show, Outgoing, Rng};
use crate::util::machine;
use crate::util::{discover, Relay, Upstream};

/// Concurrent connections.
const WORKERS: u64 = 6;

/// What a case's reply must show.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    /// Any well-formed reply (or none).
    Any,
    /// A 2xx (an unmutated sealed request).
    Success,
    /// No 2xx (a sealed part was changed).
    Refused,
    /// No 5xx (the relay answers pairing input itself).
    NoServerError,
}

/// One generated case.
struct Case {
    kind: &'static str,
    send: Outgoing,
    expect: Expect,
    /// A mutated `x-mte-relay` still names the pair, with another counter: the relay may have
    /// spent that counter (a forged header spends it, PROTOCOL.md §7), so the worker re-pairs.
    spends_other_counter: bool,
}

/// Which part of a sealed request a byte belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Framing,
    Sealed,
    Body,
}

/// Counters of a run.
#[derive(Default)]
struct Stats {
    cases: BTreeMap<&'static str, u64>,
    statuses: BTreeMap<u16, u64>,
    no_reply: u64,
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "CONNECT", "PRI", "get",
    "G\0T", "",
];
const TARGETS: &[&str] = &[
    "/",
    "/api/mte-relay",
    "/api/mte-pair",
    "/api/mte-ready",
    "/api/mte-errors",
    "/api/mte-echo/fuzz",
    "/api/mte-echo/",
    "/public/mte-relay-browser.js",
    "/pt/a",
    "/pt/../admin",
    "/pt/%2e%2e/x",
    "/pt/a?b=c",
    "/echo?msg=1",
    "/upload",
    "*",
    "http://evil.example/pt/a",
    "//evil.example/",
    "\\\\x",
    "/a b",
    "",
];
const VERSIONS: &[&str] = &[
    "HTTP/1.1",
    "HTTP/1.1",
    "HTTP/1.1",
    "HTTP/1.0",
    "HTTP/2.0",
    "HTTP/1.1 x",
    "http/1.1",
    "HTTP/9",
    "",
];
const NAMES: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "expect",
    "upgrade",
    "x-mte-relay",
    "x-mte-relay-eh",
    "origin",
    "access-control-request-method",
    "content-type",
    "cookie",
    "te",
    "trailer",
    "keep-alive",
    "x-forwarded-for",
];

/// Header names a well-formed random request may repeat.
const CLEAN_NAMES: &[&str] = &[
    "accept",
    "cookie",
    "origin",
    "user-agent",
    "x-a",
    "x-mte-relay-eh",
    "access-control-request-method",
    "content-type",
];

/// A random request head with random fields, framing and body; half of them (`clean`) are
/// well-formed HTTP/1.1 so they get past Pingora's parser to the relay's own checks.
fn random_request(rng: &mut Rng, token: &str) -> Vec<u8> {
    let clean = rng.chance(50);
    let eol = if clean || rng.chance(90) {
        "\r\n"
    } else {
        rng.pick(&["\n", "\r", "\r\r\n"])
    };
    let method = match (clean, rng.chance(90)) {
        (true, _) => rng.pick(&METHODS[..7]).to_string(),
        (false, true) => rng.pick(METHODS).to_string(),
        (false, false) => rng.some_token(1, 12),
    };
    let target = match rng.below(10) {
        0 => format!("/{}", rng.some_safe(0, 20_000)),
        1 => format!("/{}", rng.some_safe(11_000, 4_000)),
        2 if !clean => String::from_utf8_lossy(&rng.some_bytes(64)).into_owned(),
        3 if !clean => format!("/{}", rng.some_token(0, 100)),
        _ => rng.pick(TARGETS).to_string(),
    };
    let version = if clean {
        "HTTP/1.1"
    } else {
        rng.pick(VERSIONS)
    };
    let mut out = format!("{method} {target} {version}{eol}").into_bytes();
    if clean || rng.chance(85) {
        out.extend_from_slice(format!("host: relay.example{eol}").as_bytes());
    }
    if rng.chance(40) {
        let v = match rng.below(4) {
            0 => format!("2.{}", rng.safe(64)),
            1 if !clean => rng.some_token(0, 200),
            _ => token.to_owned(),
        };
        out.extend_from_slice(format!("x-mte-relay: {v}{eol}").as_bytes());
    }
    for _ in 0..rng.len(40) {
        let name = match (clean, rng.chance(70)) {
            (true, _) => rng.pick(CLEAN_NAMES).to_string(),
            (false, true) => rng.pick(NAMES).to_string(),
            (false, false) => rng.some_token(1, 30),
        };
        let value: Vec<u8> = match rng.below(6) {
            0 if !clean => rng.some_bytes(100),
            1 => {
                let n = rng.below(40_000);
                rng.safe(n).into_bytes()
            }
            2 if !clean => b"chunked".to_vec(),
            3 => b"100-continue".to_vec(),
            _ => rng.some_safe(0, 60).into_bytes(),
        };
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(if clean || rng.chance(95) {
            b": "
        } else {
            b" : "
        });
        out.extend_from_slice(&value);
        out.extend_from_slice(eol.as_bytes());
    }
    let body = rng.some_bytes(100_000);
    match rng.below(if clean { 4 } else { 5 }) {
        0 => {}
        1 => out.extend_from_slice(format!("content-length: {}{eol}", body.len()).as_bytes()),
        2 => out.extend_from_slice(format!("content-length: {}{eol}", rng.len(1 << 20)).as_bytes()),
        3 => out.extend_from_slice(format!("transfer-encoding: chunked{eol}").as_bytes()),
        _ => out.extend_from_slice(
            format!(
                "content-length: {}{eol}transfer-encoding: chunked{eol}",
                body.len()
            )
            .as_bytes(),
        ),
    }
    if rng.chance(70) {
        out.extend_from_slice(format!("connection: close{eol}").as_bytes());
    }
    out.extend_from_slice(eol.as_bytes());
    if rng.chance(50) {
        out.extend_from_slice(&chunked(rng, &body));
    } else {
        out.extend_from_slice(&body);
    }
    out
}

/// `body` in chunked framing with random chunk sizes, a chunk size or CRLF sometimes broken.
fn chunked(rng: &mut Rng, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let n = (1 + rng.len(70_000)).min(rest.len());
        let size = if rng.chance(5) {
            rng.pick(&[
                "zz",
                "-1",
                "0x10",
                "fffffffffffffffffff",
                " 5",
                "5;ext=1",
                "",
            ])
            .to_string()
        } else {
            format!("{n:x}")
        };
        out.extend_from_slice(size.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(if rng.chance(3) { b"\n" } else { b"\r\n" });
        rest = &rest[n..];
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// A sealed request as parts: `(part, bytes)` in wire order.
fn sealed_parts(rng: &mut Rng, p: &mut HandPair) -> Vec<(Part, Vec<u8>)> {
    let with_body = rng.chance(40);
    let (method, path) = if with_body {
        ("POST", "/upload".to_owned())
    } else {
        let echo = format!("/echo?msg={}", rng.below(1000));
        let options = [
            ("GET", echo),
            ("GET", "/headers?x=1".to_owned()),
            ("DELETE", "/headers".to_owned()),
            ("GET", "/".to_owned()),
        ];
        options[rng.below(options.len())].clone()
    };
    let value = rng.some_token(0, 300).replace(['\\', '"'], "_");
    let headers = [("x-fuzz", value.as_str()), ("accept", "*/*")];
    let plain = with_body.then(|| rng.some_bytes(200_000));
    let s = seal_request(p, method, &path, &headers, plain.as_deref());
    let mut parts = vec![
        (Part::Framing, format!("{method} ").into_bytes()),
        (Part::Sealed, s.target.clone().into_bytes()),
        (
            Part::Framing,
            b" HTTP/1.1\r\nhost: relay.example\r\n".to_vec(),
        ),
    ];
    for (name, value) in &s.headers {
        parts.push((Part::Framing, format!("{name}: ").into_bytes()));
        let part = if name.starts_with("x-mte-") {
            Part::Sealed
        } else {
            Part::Framing
        };
        parts.push((part, value.clone().into_bytes()));
        parts.push((Part::Framing, b"\r\n".to_vec()));
    }
    let body = s.body.unwrap_or_default();
    let chunked_wire = !body.is_empty() && rng.chance(40);
    let framing = if chunked_wire {
        "transfer-encoding: chunked\r\n".to_owned()
    } else {
        format!("content-length: {}\r\n", body.len())
    };
    parts.push((
        Part::Framing,
        format!("{framing}connection: close\r\n\r\n").into_bytes(),
    ));
    if chunked_wire {
        let mut rest = &body[..];
        while !rest.is_empty() {
            let n = (1 + rng.len(70_000)).min(rest.len());
            parts.push((Part::Framing, format!("{n:x}\r\n").into_bytes()));
            parts.push((Part::Body, rest[..n].to_vec()));
            parts.push((Part::Framing, b"\r\n".to_vec()));
            rest = &rest[n..];
        }
        parts.push((Part::Framing, b"0\r\n\r\n".to_vec()));
    } else if !body.is_empty() {
        parts.push((Part::Body, body));
    }
    parts
}

/// A sealed request, unmutated (must succeed) or with one part mutated.
fn sealed_case(rng: &mut Rng, p: &mut HandPair) -> Case {
    let mut parts = sealed_parts(rng, p);
    let mut spends_other_counter = false;
    let (kind, expect) = if rng.chance(15) {
        ("sealed-valid", Expect::Success)
    } else {
        // Sealed items and body records as often as all the framing together.
        let wanted = *rng.pick(&[Part::Sealed, Part::Body, Part::Framing]);
        let candidates: Vec<usize> = (0..parts.len()).filter(|&i| parts[i].0 == wanted).collect();
        let i = if candidates.is_empty() {
            rng.below(parts.len())
        } else {
            *rng.pick(&candidates)
        };
        let original = parts[i].1.clone();
        mutate(rng, &mut parts[i].1);
        let now = &parts[i].1;
        spends_other_counter = names_other_counter(&original, now);
        // Header values lose surrounding whitespace; bytes after a body are the next request.
        let changed = match parts[i].0 {
            Part::Body => !now.starts_with(&original),
            _ => now.trim_ascii() != original.trim_ascii(),
        };
        match parts[i].0 {
            Part::Sealed if changed => ("sealed-mutated", Expect::Refused),
            Part::Body if changed => ("sealed-body-mutated", Expect::Refused),
            _ => ("sealed-framing-mutated", Expect::Any),
        }
    };
    let bytes = parts.into_iter().flat_map(|(_, b)| b).collect();
    Case {
        kind,
        send: Outgoing {
            bytes,
            pieces: rng.chance(30),
            half_close: false,
            first_wait: Duration::from_secs(if expect == Expect::Success { 10 } else { 2 }),
        },
        expect,
        spends_other_counter,
    }
}

/// Whether `now`, a mutation of the `x-mte-relay` value `original`, still parses as the relay
/// parses it, with the same token and pair but another counter.
fn names_other_counter(original: &[u8], now: &[u8]) -> bool {
    let exchange = |v: &[u8]| match RelayHeader::parse(std::str::from_utf8(v).ok()?.trim()) {
        Ok(RelayHeader::Exchange(h)) => Some(h),
        _ => None,
    };
    match (exchange(original), exchange(now)) {
        (Some(was), Some(is)) => {
            is.token == was.token && is.pair_id == was.pair_id && is.counter != was.counter
        }
        _ => false,
    }
}

/// A pairing request whose JSON body is mutated or random.
fn pairing_case(rng: &mut Rng, token: &str) -> Case {
    let mut body = if rng.chance(70) {
        let mut bytes = |n: usize| -> Vec<u8> { (0..n).map(|_| rng.next() as u8).collect() };
        let seed = |b: Vec<u8>| DecapsulationSeed::from_bytes(b.try_into().unwrap_or([7; 32]));
        // A well-formed request to some relay key (usually not this relay's: 400).
        let key = RelayKey::from_seed(&seed(bytes(32))).config().clone();
        let client = ClientId(bytes(16).try_into().unwrap_or([1; 16]));
        let eseed: [u8; 64] = bytes(64).try_into().unwrap_or([2; 64]);
        let ephemeral = seed(bytes(32));
        let count = 1 + rng.below(3);
        let pids = (0..count)
            .map(|i| PairId([i as u8 ^ rng.next() as u8; 16]))
            .collect();
        ClientPairing::new(client, &key, &eseed, &ephemeral, pids)
            .map(|p| p.request_body().to_vec())
            .unwrap_or_default()
    } else {
        let depth = rng.len(3000);
        let mut b = "[".repeat(depth).into_bytes();
        b.extend_from_slice(&rng.some_bytes(100));
        b.extend_from_slice("]".repeat(depth).as_bytes());
        b
    };
    if rng.chance(85) {
        mutate(rng, &mut body);
    }
    let head = format!(
        "POST /api/mte-pair HTTP/1.1\r\nhost: relay.example\r\nx-mte-relay: {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&body);
    Case {
        kind: "pairing",
        send: Outgoing {
            bytes,
            pieces: rng.chance(20),
            half_close: false,
            first_wait: Duration::from_secs(3),
        },
        expect: Expect::NoServerError,
        spends_other_counter: false,
    }
}

fn any_case(rng: &mut Rng, kind: &'static str, bytes: Vec<u8>) -> Case {
    Case {
        kind,
        send: Outgoing {
            bytes,
            pieces: rng.chance(30),
            half_close: rng.chance(30),
            first_wait: Duration::from_millis(700),
        },
        expect: Expect::Any,
        spends_other_counter: false,
    }
}

/// A sealing pair of a worker and how many requests in a row it had refused (the relay's
/// counter window is 16: re-pair before the client's counter runs away).
struct Slot {
    pair: HandPair,
    misses: u32,
}

/// Checks one reply against the case; `Err` describes the failure.
fn check(case: &Case, reply: &crate::util::fuzz::Reply) -> Result<Option<u16>, String> {
    if reply.bytes.is_empty() {
        return match case.expect {
            Expect::Success => Err("a valid sealed request got no reply".into()),
            _ => Ok(None),
        };
    }
    let statuses = response_statuses(&reply.bytes, reply.closed)?;
    let Some(&last) = statuses.last() else {
        return Ok(None);
    };
    let success = statuses.iter().any(|s| (200..300).contains(s));
    match case.expect {
        Expect::Success if !(200..300).contains(&last) => {
            Err(format!("a valid sealed request got {last}"))
        }
        Expect::Refused if success => Err(format!("a mutated sealed request got {statuses:?}")),
        Expect::NoServerError if last >= 500 => Err(format!("pairing input got {last}")),
        _ if last == 500 => Err("500 (internal error)".into()),
        _ => Ok(Some(last)),
    }
}

/// One worker: generates and sends cases until `until`.
async fn worker(
    relay: Arc<Relay>,
    seed: u64,
    until: Instant,
    stats: Arc<Mutex<Stats>>,
) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let token = discover(&relay, None).await;
    let mut slots = Vec::new();
    for _ in 0..2 {
        slots.push(Slot {
            pair: HandPair::new(&relay, None).await,
            misses: 0,
        });
    }
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let slot = rng.below(slots.len());
        let case = match rng.below(10) {
            0 | 1 => {
                let len = rng.len(70_000);
                let bytes = rng.bytes(len);
                any_case(&mut rng, "random-bytes", bytes)
            }
            2..=4 => {
                let bytes = random_request(&mut rng, &token);
                any_case(&mut rng, "random-request", bytes)
            }
            5 => pairing_case(&mut rng, &token),
            _ => sealed_case(&mut rng, &mut slots[slot].pair),
        };
        let reply = exchange(relay.port, &case.send, &mut rng).await?;
        let status = check(&case, &reply).map_err(|e| {
            format!(
                "seed {seed} case {n} ({}): {e}\nsent: {}\ngot: {}",
                case.kind,
                show(&case.send.bytes, 3000),
                show(&reply.bytes, 2000)
            )
        })?;
        if case.kind.starts_with("sealed") {
            let s = &mut slots[slot];
            if status.is_some_and(|s| (200..300).contains(&s)) {
                s.misses = 0;
            } else {
                s.misses += 1;
            }
            if s.misses >= 10 || case.spends_other_counter {
                *s = Slot {
                    pair: HandPair::new(&relay, None).await,
                    misses: 0,
                };
            }
        }
        let mut st = stats.lock().unwrap();
        *st.cases.entry(case.kind).or_default() += 1;
        match status {
            Some(s) => *st.statuses.entry(s).or_default() += 1,
            None => st.no_reply += 1,
        }
    }
    Ok(())
}

/// A normal exchange through the Rust client works.
async fn normal_exchange(relay: &Relay) {
    let c = relay_client(&relay.url(""));
    let resp = c.get("/echo?msg=after-fuzz").send().await.expect("send");
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("after-fuzz"));
    let resp = c
        .post("/upload")
        .body(vec![7u8; 100_000])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_bytes_never_break_the_relay() {
    let _turn = machine::heavy();
    let secs = env_u64("PQRELAY_FUZZ_SECS").unwrap_or(12);
    let seed = env_u64("PQRELAY_FUZZ_SEED").unwrap_or_else(|| {
        let mut b = [0u8; 8];
        getrandom::getrandom(&mut b).unwrap();
        u64::from_le_bytes(b)
    });
    eprintln!("fuzz_relay: seed {seed} (PQRELAY_FUZZ_SEED), {secs} s (PQRELAY_FUZZ_SECS)");
    let upstream = Upstream::start();
    let relay = Arc::new(Relay::start(
        &upstream.url(),
        &[
            ("PASS_THROUGH_ROUTES", "/pt/*"),
            ("PAIR_RATE_PER_IP", "0"),
            ("PAIR_RATE_PER_CLIENT", "0"),
            ("HEADER_TIMEOUT_MS", "2000"),
            ("CLIENT_TIMEOUT_MS", "2000"),
            ("UPSTREAM_READ_TIMEOUT_MS", "5000"),
        ],
    ));
    let pid = relay.proc.pid();
    // Baseline after a warm-up as concurrent as the run (upstream pool included).
    let warm: Vec<_> = (0..WORKERS)
        .map(|_| {
            let relay = relay.clone();
            tokio::spawn(async move { normal_exchange(&relay).await })
        })
        .collect();
    for w in warm {
        w.await.unwrap();
    }
    let baseline = fd_count(pid);

    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let stats = Arc::new(Mutex::new(Stats::default()));
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            let seed = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9));
            tokio::spawn(worker(relay.clone(), seed, until, stats.clone()))
        })
        .collect();
    let mut failures = Vec::new();
    for w in workers {
        if let Err(e) = w.await.unwrap() {
            failures.push(e);
        }
    }
    let elapsed = started.elapsed();
    let mut relay = Arc::try_unwrap(relay).ok().expect("one owner");
    assert!(!relay.proc.exited(), "the relay died");
    let total: u64 = {
        let st = stats.lock().unwrap();
        eprintln!(
            "fuzz_relay: {} cases in {:.1} s: {:?}; statuses {:?}; {} without reply; relay fds {baseline} before",
            st.cases.values().sum::<u64>(),
            elapsed.as_secs_f64(),
            st.cases,
            st.statuses,
            st.no_reply
        );
        st.cases.values().sum()
    };
    let log = relay.proc.log_text();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        !log.contains("panicked"),
        "the relay panicked:\n{}",
        crate::util::fuzz::tail(&log, 20_000)
    );
    assert!(total > 0, "no case ran");

    normal_exchange(&relay).await;
    // Connections the run left behind close (HEADER_TIMEOUT_MS / CLIENT_TIMEOUT_MS of 2 s).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut fds = fd_count(pid);
    while fds > baseline + 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        fds = fd_count(pid);
    }
    eprintln!("fuzz_relay: relay fds {fds} after (baseline {baseline})");
    assert!(
        fds <= baseline + 4,
        "relay fds {fds}, baseline {baseline}:\n{}",
        fd_listing(pid)
    );
    assert!(!relay.proc.exited(), "the relay died");
}

/// `method target` with the sealed request's headers and a sized wire body, ready to send.
fn raw_sealed(s: &crate::util::exchange::Sealed) -> Vec<u8> {
    let body = s.body.clone().unwrap_or_default();
    let mut raw = format!(
        "{} {} HTTP/1.1\r\nhost: relay.example\r\n",
        s.method, s.target
    );
    for (k, v) in &s.headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(&body);
    raw
}

/// Found by the run above: a sealed empty body (one 20-byte record) went upstream as
/// `content-length: 0`, a complete request before the relay opened the record, so a tampered
/// (or missing) record still got the upstream's 200. Now the upstream's request completes only
/// once the record opened. (Sent chunked, it then showed that an empty last piece reached the
/// upstream as a second terminating chunk.)
#[tokio::test]
async fn an_empty_sealed_body_reaches_the_upstream_only_once_it_opened() {
    use crate::util::strict::{exchange_raw, statuses, Strict};
    let up = Strict::start(Duration::ZERO).await;
    let relay = Relay::start(&up.url(), &[]);
    let mut p = HandPair::new(&relay, None).await;
    let idle = Duration::from_secs(3);

    let mut s = seal_request(&mut p, "POST", "/upload", &[], Some(b""));
    s.body.as_mut().unwrap()[10] ^= 1;
    let got = exchange_raw(relay.port, &raw_sealed(&s), idle).await;
    assert_eq!(statuses(&got), vec![562], "{got}");
    let seen = up.take();
    assert!(seen.iter().all(|r| !r.complete), "{seen:#?}");

    // A sealed body cut to one record's length on the wire (plain length 0 by the framing).
    let mut s = seal_request(&mut p, "POST", "/upload", &[], Some(b"transfer 100"));
    s.body = Some(vec![0x80; 20]);
    let got = exchange_raw(relay.port, &raw_sealed(&s), idle).await;
    assert_eq!(statuses(&got), vec![562], "{got}");
    let seen = up.take();
    assert!(seen.iter().all(|r| !r.complete), "{seen:#?}");

    // The record never sent: the relay waits for it, the upstream's request stays open.
    let s = seal_request(&mut p, "POST", "/upload", &[], Some(b""));
    let mut raw = raw_sealed(&s);
    raw.truncate(raw.len() - 20);
    let got = exchange_raw(relay.port, &raw, Duration::from_millis(500)).await;
    assert!(!statuses(&got).contains(&200), "{got}");
    let seen = up.take();
    assert!(seen.iter().all(|r| !r.complete), "{seen:#?}");

    let s = seal_request(&mut p, "POST", "/upload", &[], Some(b""));
    let got = exchange_raw(relay.port, &raw_sealed(&s), idle).await;
    assert_eq!(statuses(&got), vec![200], "{got}");
    // Exactly one complete request, nothing after it (no stray terminating chunk).
    let complete: Vec<_> = up.take().into_iter().filter(|r| r.complete).collect();
    assert_eq!(complete.len(), 1, "{complete:#?}");
    assert!(complete[0].body.is_empty(), "{complete:#?}");
    assert!(complete[0].problem.is_none(), "{complete:#?}");
}

#[test]
fn a_mutated_header_naming_another_counter_is_told_apart() {
    let header = |counter: &str| {
        format!(
            "2.FRBkyAp8Nzu-WZhYZXpn1T14KA74F9hA7Zsq6eWoCzLPdKYyuULn2qmoXIvgwas3.\
             AMKgWF6mC8zzxshhCFjcuQ.{counter}"
        )
        .into_bytes()
    };
    let original = header("6.3");
    assert!(names_other_counter(&original, &header("8.3")));
    let padded = [&b" "[..], &header("16.3"), b" "].concat();
    assert!(names_other_counter(&original, &padded));
    assert!(!names_other_counter(&original, &header("6.3")));
    assert!(!names_other_counter(&original, &header("8.x")));
    assert!(!names_other_counter(&original, b"2.garbage.8.3"));
}
