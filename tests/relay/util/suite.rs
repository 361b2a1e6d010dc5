//! The exchange suite, run against memory state (`exchange_memory`) and Redis state
//! (`exchange_redis`). Each function takes a started [`Env`].

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use pqrelay_client::{Body, Bytes, Method, RelayClient, WireEvent};
use pqrelay_testkit::{pattern, sha256_hex, Tap};

use super::exchange::*;
use super::{expect_error, Relay, Upstream};

/// A relay in front of the demo upstream, with extra relay settings (e.g. REDIS_URL).
pub struct Env {
    /// The demo upstream, running as long as the env.
    pub _upstream: Upstream,
    pub relay: Relay,
}

impl Env {
    pub fn start(extra: &[(&str, &str)]) -> Env {
        let upstream = Upstream::start();
        let relay = Relay::start(&upstream.url(), extra);
        Env {
            _upstream: upstream,
            relay,
        }
    }

    pub fn client(&self) -> RelayClient {
        relay_client(&self.relay.url(""))
    }
}

/// GET/POST/PUT/DELETE with query strings, custom headers both ways, JSON and binary bodies.
pub async fn round_trips(env: &Env) {
    let c = env.client();
    // GET with a query: the upstream saw the plain request.
    let seen = c
        .request(Method::GET, "/headers?x=1&y=%20two")
        .header("x-custom", "custom value")
        .header("accept", "application/json")
        .send()
        .await
        .expect("send");
    assert_eq!(seen.status(), 200);
    assert_eq!(
        seen.headers()["content-type"],
        "application/json",
        "content-type sealed and restored"
    );
    let seen: serde_json::Value = seen.json().await.unwrap();
    assert_eq!(seen["method"], "GET");
    assert_eq!(seen["path"], "/headers");
    assert_eq!(seen["query"], "x=1&y=%20two");
    let h = &seen["headers"];
    assert_eq!(h["x-custom"], "custom value");
    assert_eq!(h["accept"], "application/json");
    assert_eq!(
        h["accept-encoding"], "identity",
        "the relay asks for identity"
    );
    for (name, _) in h.as_object().unwrap() {
        assert!(!name.starts_with("x-mte-"), "upstream saw {name}");
        assert_ne!(name, "transfer-encoding");
    }

    for method in [Method::PUT, Method::DELETE, Method::POST] {
        let resp = c
            .request(method.clone(), "/headers?m=1")
            .header("content-type", "application/json")
            .body(r#"{"a":1}"#)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 200);
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(v["method"], method.as_str());
        assert_eq!(v["query"], "m=1");
        assert_eq!(v["headers"]["content-type"], "application/json");
        assert_eq!(v["headers"]["content-length"], "7", "plain length upstream");
    }

    // JSON echo through /echo and a 404 from the upstream keep their statuses.
    let resp = c.get("/echo?msg=hello%20relay").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["echo"], "hello relay");
    let resp = c.get("/nope").send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.text().await.unwrap().contains("not_found"));

    // HEAD: no body, no body flag.
    let resp = c
        .request(Method::HEAD, "/headers?h=1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().await.unwrap().is_empty());
}

/// Upload sizes around the record boundary: 0, 1, 64 KiB - 1, 64 KiB, 64 KiB + 1, 1 MiB.
pub async fn body_sizes(env: &Env) {
    let c = env.client();
    for len in [0usize, 1, 65535, 65536, 65537, 1 << 20] {
        let body = pattern(len);
        let v = upload(&c, body.clone()).await;
        assert_eq!(v["size"], len as u64, "{len}");
        assert_eq!(v["sha256"], sha256_hex(&body), "{len}");
    }
    // A chunked (streaming) upload of unknown length.
    let pieces: Vec<Result<Bytes, std::io::Error>> = (0..5)
        .map(|i| Ok(Bytes::from(vec![i as u8; 30_000])))
        .collect();
    let resp = c
        .post("/upload")
        .header("content-type", "application/octet-stream")
        .body(Body::stream(futures::stream::iter(pieces)))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["size"], 150_000);
    // Many small records (the JS client's 7000-byte stream pieces), some pieces empty.
    let pieces: Vec<Result<Bytes, std::io::Error>> = (0..43)
        .map(|i| {
            Ok(Bytes::from(if i % 10 == 5 {
                vec![]
            } else {
                vec![i as u8; 7000]
            }))
        })
        .collect();
    let resp = c
        .post("/upload")
        .header("content-type", "application/octet-stream")
        .body(Body::stream(futures::stream::iter(pieces)))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["size"], 39 * 7000);
}

/// Cookies: `set-cookie` stays plain for browsers; a cookie sent back reaches the upstream.
pub async fn cookies(env: &Env) {
    let c = env.client();
    let resp = c
        .post("/login")
        .header("content-type", "application/json")
        .body(r#"{"username":"ada","password":"pw"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let wire: Vec<_> = resp.wire_headers().get_all("set-cookie").iter().collect();
    assert_eq!(wire.len(), 2, "set-cookie plain on the wire");
    assert!(resp.wire_headers().get("content-type").unwrap() == "application/octet-stream");
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["user"], "ada");
    let seen = c
        .get("/headers")
        .header("cookie", "demo_session=logged-in")
        .send()
        .await
        .unwrap();
    let seen: serde_json::Value = seen.json().await.unwrap();
    assert_eq!(seen["headers"]["cookie"], "demo_session=logged-in");
}

/// What crosses the wire never contains the plain path, header values or body.
pub async fn wire_is_sealed(env: &Env) {
    let tap = Tap::start(env.relay.port).await;
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let ev = events.clone();
    let c = RelayClient::builder(tap.url())
        .pairs(1)
        .observer(move |e: &WireEvent| ev.lock().unwrap().push(e.clone()))
        .build()
        .unwrap();
    let secret_body = b"SECRET-BODY-0123456789-the-plain-body".repeat(50);
    let resp = c
        .post("/upload?SECRETQUERY=1")
        .header("x-secret-header", "SECRET-HEADER-VALUE")
        .header("content-type", "text/plain")
        .body(secret_body.clone())
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["sha256"], sha256_hex(&secret_body));
    let resp = c.get("/echo?msg=SECRET-ECHO-MESSAGE").send().await.unwrap();
    assert!(resp.text().await.unwrap().contains("SECRET-ECHO-MESSAGE"));

    let up = String::from_utf8_lossy(&tap.up.lock().unwrap()).into_owned();
    let down = String::from_utf8_lossy(&tap.down.lock().unwrap()).into_owned();
    assert!(up.contains("x-mte-relay-eh"), "the tap saw the traffic");
    for needle in [
        "/upload",
        "SECRETQUERY",
        "SECRET-HEADER-VALUE",
        "x-secret-header",
        "SECRET-BODY",
        "SECRET-ECHO-MESSAGE",
        "text/plain",
    ] {
        assert!(!up.contains(needle), "client → relay wire shows {needle}");
    }
    for needle in ["SECRET-ECHO-MESSAGE", "sha256"] {
        assert!(!down.contains(needle), "relay → client wire shows {needle}");
    }
    let events = events.lock().unwrap();
    assert!(events
        .iter()
        .any(|e| matches!(e, WireEvent::Request { target, .. } if !target.contains("upload"))));
}

/// A 100 MiB upload streamed through the relay; the relay's peak RSS stays bounded.
/// Returns (peak RSS in KiB, seconds).
pub async fn big_upload(env: &Env) -> (u64, f64) {
    const LEN: u64 = 100 << 20;
    const PIECE: usize = 256 * 1024;
    let c = env.client();
    c.connect().await.unwrap();
    let piece = Bytes::from(pattern(PIECE));
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    for _ in 0..(LEN as usize / PIECE) {
        sha2::Digest::update(&mut hasher, &piece);
    }
    let expected: String = sha2::Digest::finalize(hasher)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let p = piece.clone();
    let stream = futures::stream::iter(0..(LEN as usize / PIECE))
        .map(move |_| Ok::<_, std::io::Error>(p.clone()));
    let started = Instant::now();
    let resp = c
        .post("/upload")
        .header("content-type", "application/octet-stream")
        .body(Body::sized_stream(stream, LEN))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(v["size"], LEN);
    assert_eq!(v["sha256"], expected);
    let hwm = vm_hwm_kib(env.relay.proc.pid());
    assert!(hwm > 0 && hwm < 100 * 1024, "relay VmHWM {hwm} KiB");
    (hwm, secs)
}

/// Server-Sent Events arrive one by one, not at the end.
pub async fn sse_streams(env: &Env) {
    let c = env.client();
    let mut resp = c.get("/events").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert!(resp.wire_headers().get("content-length").is_none());
    let started = Instant::now();
    let mut arrivals = Vec::new();
    let mut text = String::new();
    while let Some(piece) = resp.chunk().await.unwrap() {
        if piece.is_empty() {
            continue;
        }
        text.push_str(&String::from_utf8_lossy(&piece));
        arrivals.push(started.elapsed());
    }
    assert_eq!(text.matches("event: tick").count(), 5, "{text}");
    assert!(arrivals.len() >= 5, "{arrivals:?}");
    let spread = *arrivals.last().unwrap() - arrivals[0];
    assert!(spread >= Duration::from_millis(600), "{arrivals:?}");
}

/// Many sequential exchanges; returns the mean time per exchange.
pub async fn exchange_time(env: &Env, n: u32) -> Duration {
    let c = env.client();
    c.connect().await.unwrap();
    let started = Instant::now();
    for i in 0..n {
        let resp = c.get(format!("/echo?msg={i}")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
    started.elapsed() / n
}

/// Tampered, replayed, wrong-pair and wrong-client requests, against a recording upstream that
/// must never receive a complete request.
pub async fn rejections(relay: &Relay) {
    let mut p = HandPair::new(relay, None).await;

    // A valid request is accepted (the recorder never answers: time out instead of waiting).
    // Not sent here; the checks below must all fail before any upstream byte.

    // Tampered header block.
    let mut s = seal_request(&mut p, "GET", "/echo?msg=x", &[("x-a", "b")], None);
    let eh = &mut s.headers[1].1;
    let flipped = if eh.ends_with('A') { 'B' } else { 'A' };
    eh.pop();
    eh.push(flipped);
    expect_error(send_sealed(relay, &s).await, 562, "decode_failed").await;

    // Tampered URL.
    let mut s = seal_request(&mut p, "GET", "/echo?msg=x", &[], None);
    // Replace one character by a different one (the same character would leave a valid request).
    let flipped = if s.target.as_bytes()[3] == b'x' {
        "y"
    } else {
        "x"
    };
    s.target.replace_range(3..4, flipped);
    expect_error(send_sealed(relay, &s).await, 562, "decode_failed").await;

    // Method changed (bound into the AAD).
    let mut s = seal_request(&mut p, "GET", "/echo", &[], None);
    s.method = "DELETE".into();
    expect_error(send_sealed(relay, &s).await, 562, "decode_failed").await;

    // Malformed and wrong-version relay headers.
    let mut s = seal_request(&mut p, "GET", "/echo", &[], None);
    s.headers[0].1.push_str(".9");
    expect_error(send_sealed(relay, &s).await, 561, "relay_header_invalid").await;
    let mut s = seal_request(&mut p, "GET", "/echo", &[], None);
    s.headers[0].1.replace_range(0..1, "9");
    expect_error(send_sealed(relay, &s).await, 568, "version_unsupported").await;

    // No x-mte-relay-eh.
    let mut s = seal_request(&mut p, "GET", "/echo", &[], None);
    s.headers.remove(1);
    expect_error(send_sealed(relay, &s).await, 561, "relay_header_invalid").await;

    // Forbidden sealed header and bad decoded URL.
    let s = seal_request(&mut p, "GET", "/echo", &[("host", "evil")], None);
    expect_error(send_sealed(relay, &s).await, 400, "forbidden_header").await;

    // A content-length that no encoded body has (every body has at least one 20-byte record
    // overhead).
    let mut s = seal_request(&mut p, "POST", "/upload", &[], Some(b"abc"));
    s.body.as_mut().unwrap().truncate(19);
    expect_error(send_sealed(relay, &s).await, 400, "invalid_length").await;

    // A body without the body flag.
    let mut s = seal_request(&mut p, "POST", "/upload", &[], None);
    s.body = Some(b"plain".to_vec());
    expect_error(send_sealed(relay, &s).await, 400, "invalid_length").await;

    // Counter too far ahead (the pair skipped 17 counters).
    for _ in 0..17 {
        p.next();
    }
    let s = seal_request(&mut p, "GET", "/echo", &[], None);
    expect_error(send_sealed(relay, &s).await, 564, "counter_rejected").await;

    // Wrong pair: a pair id never paired.
    let mut q = HandPair::new(relay, Some(&p.token.encode())).await;
    q.pid = pqrelay_protocol::PairId([0x55; 16]);
    let s = seal_request(&mut q, "GET", "/echo", &[], None);
    expect_error(send_sealed(relay, &s).await, 563, "state_not_found").await;

    // Wrong client: another client's token with this pair id.
    let mut r = HandPair::new(relay, None).await;
    let other = HandPair::new(relay, None).await;
    r.token = other.token.clone();
    let s = seal_request(&mut r, "GET", "/echo", &[], None);
    expect_error(send_sealed(relay, &s).await, 563, "state_not_found").await;

    // Forged token.
    let mut f = HandPair::new(relay, None).await;
    let mut forged = f.token.encode();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'Q' } else { 'A' });
    if let Ok(t) = pqrelay_protocol::ClientIdToken::parse(&forged) {
        f.token = t;
        let s = seal_request(&mut f, "GET", "/echo", &[], None);
        expect_error(send_sealed(relay, &s).await, 566, "invalid_client_id").await;
    }
}

/// Body tampering and truncation: the upstream sees at most an aborted request.
pub async fn body_tampering(relay: &Relay, recorder: &Recorder) {
    let mut p = HandPair::new(relay, None).await;
    let body = pattern(100_000);

    // A flipped byte in the second record.
    let mut s = seal_request(&mut p, "POST", "/upload", &[], Some(&body));
    let b = s.body.as_mut().unwrap();
    b[70_000] ^= 1;
    let mut raw = format!(
        "POST {} HTTP/1.1\r\nhost: x\r\nx-mte-relay: {}\r\nx-mte-relay-eh: {}\r\ncontent-length: {}\r\n\r\n",
        s.target,
        s.headers[0].1,
        s.headers[1].1,
        b.len()
    )
    .into_bytes();
    raw.extend_from_slice(b);
    let answer = send_raw(relay.port, &raw, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 562"), "{answer}");

    // A chunked body that ends before its final record.
    let keys = p.next();
    let flags = pqrelay_protocol::Flags::URL
        | pqrelay_protocol::Flags::HEADERS
        | pqrelay_protocol::Flags::BODY
        | pqrelay_protocol::Flags::STREAMING;
    let ctx = pqrelay_protocol::MessageContext::request(
        p.client_id(),
        p.pid,
        keys.counter,
        flags,
        "POST",
        "",
    )
    .unwrap();
    let target = pqrelay_protocol::seal_url(&keys.request, &ctx, "/upload").unwrap();
    let eh = pqrelay_protocol::seal_headers(&keys.request, &ctx, []);
    let mut wire = Vec::new();
    let mut enc = pqrelay_protocol::StreamEncoder::new(&keys.request, &ctx, None);
    enc.push(b"TRUNCATED-BODY-MARKER", &mut wire).unwrap();
    enc.flush(&mut wire).unwrap();
    // no finish(): the final record is missing
    let relay_header = pqrelay_protocol::ExchangeHeader {
        token: p.token.clone(),
        pair_id: p.pid,
        counter: keys.counter,
        flags,
    }
    .encode();
    let mut raw = format!(
        "POST {target} HTTP/1.1\r\nhost: x\r\nx-mte-relay: {relay_header}\r\nx-mte-relay-eh: {eh}\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n",
        wire.len()
    )
    .into_bytes();
    raw.extend_from_slice(&wire);
    raw.extend_from_slice(b"\r\n0\r\n\r\n");
    let answer = send_raw(relay.port, &raw, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 562"), "{answer}");

    // Give the relay a moment to close upstream connections, then check what arrived.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = recorder.received.lock().unwrap().clone();
    let text = String::from_utf8_lossy(&got);
    // The sized request was cut short: fewer body bytes than its content-length.
    if let Some(pos) = text.find("content-length: 100000") {
        let head_end = text[pos..].find("\r\n\r\n").map(|i| pos + i + 4).unwrap();
        let after = &got[head_end..];
        let body_bytes = after
            .windows(4)
            .position(|w| w == b"POST")
            .unwrap_or(after.len());
        assert!(body_bytes < 100_000, "upstream got {body_bytes} body bytes");
    }
    // The chunked request never got its terminating chunk.
    if let Some(pos) = text.find("TRUNCATED-BODY-MARKER") {
        assert!(!text[pos..].contains("0\r\n\r\n"), "{text}");
    }
}
