//! Outbound mode with real processes on loopback:
//! app → relay A (outbound, plain in) → [tap] → relay B → demo upstream B.
//!
//! The tap between A and B records every byte (the attacker's view of the partner link).

use std::time::Duration;

use pqrelay_testkit::redis::RedisServer;
use pqrelay_testkit::{pattern, sha256_hex, Tap};

use crate::util::exchange::vm_hwm_kib;
use crate::util::machine;
use crate::util::{client, expect_error, free_port, Relay, Upstream};

const TOKEN: &str = "outbound-token-0123456789abcdefghij";
const MARKER: &str = "plaintext-marker-7f3a9c";

/// Relay B (fronted by a tap) and relay A allowed to reach it.
struct Chain {
    _upstream: Upstream,
    b: Relay,
    b_port: u16,
    tap: Tap,
    a: Relay,
}

impl Chain {
    async fn start() -> Chain {
        let upstream = Upstream::start();
        let b_port = free_port();
        let b = Relay::start_on(b_port, &upstream.url(), &[], &[]);
        let tap = Tap::start(b_port).await;
        let allowed = format!("{},http://127.0.0.1:1", tap.url());
        let a = Relay::start(
            &upstream.url(),
            &[("OUTBOUND_TOKEN", TOKEN), ("OUTBOUND_UPSTREAMS", &allowed)],
        );
        Chain {
            _upstream: upstream,
            b,
            b_port,
            tap,
            a,
        }
    }

    /// A request to relay A, outbound to relay B through the tap.
    fn out(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        client()
            .request(method, self.a.url(path))
            .timeout(Duration::from_secs(120))
            .header("x-mte-outbound-token", TOKEN)
            .header("x-mte-upstream", self.tap.url())
    }

    fn wire(&self) -> (Vec<u8>, Vec<u8>) {
        (
            self.tap.up.lock().unwrap().clone(),
            self.tap.down.lock().unwrap().clone(),
        )
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

async fn upload_sized(c: &Chain, body: Vec<u8>) -> serde_json::Value {
    let len = body.len();
    let resp = c
        .out(reqwest::Method::POST, "/upload")
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{len}: {e}"));
    assert_eq!(resp.status(), 200, "{len}");
    resp.json().await.unwrap()
}

async fn upload_chunked(c: &Chain, len: usize) -> serde_json::Value {
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> = pattern(len)
        .chunks(40_000)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(pieces));
    let resp = c
        .out(reqwest::Method::POST, "/upload")
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("chunked {len}: {e}"));
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "chunked {len}: {text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_bodies_headers_and_query_arrive_and_the_link_is_sealed() {
    let _turn = machine::heavy();
    let c = Chain::start().await;

    // Headers and query string intact, control headers gone, marker never on the A–B link.
    let resp = c
        .out(reqwest::Method::GET, &format!("/headers?q={MARKER}&n=1"))
        .header("x-custom", MARKER)
        .header("authorization", format!("Bearer {MARKER}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["path"], "/headers");
    assert_eq!(v["query"], format!("q={MARKER}&n=1"));
    assert_eq!(v["headers"]["x-custom"], MARKER);
    assert_eq!(v["headers"]["authorization"], format!("Bearer {MARKER}"));
    let seen = v["headers"].as_object().unwrap();
    assert!(
        !seen.keys().any(|k| k.starts_with("x-mte-")),
        "control headers reached the upstream: {seen:?}"
    );

    // Bodies from 0 B to 50 MiB, sized and chunked, checked by SHA-256 at upstream B.
    for len in [0usize, 1, 1024, 65535, 65536, 65537, 300_000, 5 << 20] {
        let body = pattern(len);
        let want = sha256_hex(&body);
        let v = upload_sized(&c, body).await;
        assert_eq!(v["size"], len as u64, "sized {len}");
        assert_eq!(v["sha256"], want, "sized {len}");
        let v = upload_chunked(&c, len).await;
        assert_eq!(v["size"], len as u64, "chunked {len}");
        assert_eq!(v["sha256"], want, "chunked {len}");
    }
    let big = 50usize << 20;
    let body = pattern(big);
    let want = sha256_hex(&body);
    let v = upload_sized(&c, body).await;
    assert_eq!(
        (v["size"].as_u64(), v["sha256"].as_str()),
        (Some(big as u64), Some(want.as_str()))
    );
    let v = upload_chunked(&c, big).await;
    assert_eq!(
        (v["size"].as_u64(), v["sha256"].as_str()),
        (Some(big as u64), Some(want.as_str()))
    );
    let hwm = vm_hwm_kib(c.a.proc.pid());
    eprintln!("relay A peak RSS after 50 MiB uploads: {hwm} KiB");
    assert!(hwm < 48 * 1024, "relay A buffered a body: VmHWM {hwm} KiB");

    // A marker body, then look at the wire.
    let body = format!("{MARKER}{MARKER}").repeat(100);
    let resp = c
        .out(reqwest::Method::POST, "/upload")
        .header("content-type", "text/plain")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (up, down) = c.wire();
    assert!(up.len() > 100 << 20, "the tap saw the uploads");
    assert!(
        !contains(&up, MARKER.as_bytes()),
        "plaintext on the A→B link"
    );
    assert!(!contains(&up, b"/headers"), "plain path on the A→B link");
    assert!(!contains(&up, b"/upload"), "plain path on the A→B link");
    assert!(
        !contains(&up, b"x-custom"),
        "plain header name on the A→B link"
    );
    assert!(
        !contains(&up, b"x-mte-outbound-token"),
        "control header on the link"
    );
    assert!(
        !contains(&up, TOKEN.as_bytes()),
        "the outbound token on the link"
    );
    assert!(
        !contains(&down, MARKER.as_bytes()),
        "plaintext on the B→A link"
    );
    assert!(
        !contains(&down, b"sha256"),
        "plain upstream answer on the B→A link"
    );

    // The vendor's options: a plain URL when asked; headers stay sealed whatever
    // x-mte-encode-headers says (a version-2 relay drops plain headers).
    let resp = c
        .out(reqwest::Method::GET, "/headers?visible=yes")
        .header("x-mte-encode-url", "false")
        .header("x-mte-encode-headers", "authorization")
        .header("authorization", "Bearer sealed-one")
        .header("x-plain-visible", "seen-in-clear")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["headers"]["x-plain-visible"], "seen-in-clear");
    assert_eq!(v["headers"]["authorization"], "Bearer sealed-one");
    let (up, _) = c.wire();
    assert!(contains(&up, b"/headers?visible=yes"), "encode-url false");
    assert!(
        !contains(&up, b"seen-in-clear"),
        "unlisted header sealed too"
    );
    assert!(!contains(&up, b"sealed-one"), "listed header sealed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_refuses_bad_tokens_missing_and_unlisted_upstreams() {
    let c = Chain::start().await;
    let a = &c.a;
    let resp = client()
        .get(a.url("/headers"))
        .header("x-mte-upstream", c.tap.url())
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "outbound_unauthorized").await;
    let resp = client()
        .get(a.url("/headers"))
        .header("x-mte-outbound-token", "wrong")
        .header("x-mte-upstream", c.tap.url())
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "outbound_unauthorized").await;
    let resp = client()
        .get(a.url("/headers"))
        .header("x-mte-outbound-token", TOKEN)
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "outbound_upstream_missing").await;
    for unlisted in [
        "http://127.0.0.1:2".to_owned(),
        format!("http://127.0.0.1:{}", c.b_port), // B itself, but not through the listed tap
        "https://example.com".to_owned(),
    ] {
        let resp = client()
            .get(a.url("/headers"))
            .header("x-mte-outbound-token", TOKEN)
            .header("x-mte-upstream", &unlisted)
            .send()
            .await
            .unwrap();
        expect_error(resp, 403, "outbound_upstream_forbidden").await;
    }
    let resp = c
        .out(reqwest::Method::GET, "/headers")
        .header("x-mte-encode-url", "perhaps")
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "bad_request").await;
    // Listed but down: a clear 502.
    let resp = client()
        .get(a.url("/headers"))
        .header("x-mte-outbound-token", TOKEN)
        .header("x-mte-upstream", "http://127.0.0.1:1")
        .send()
        .await
        .unwrap();
    expect_error(resp, 502, "outbound_failed").await;
    // Nothing reached B, and the token never shows in A's log.
    assert!(c.wire().0.is_empty(), "refused requests reached relay B");
    assert!(!a.proc.log_text().contains(TOKEN), "token in the log");
    // Without the control headers relay A is an ordinary relay.
    let resp = client().head(a.url("/api/mte-relay")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_repairs_on_its_own_after_the_remote_relay_restarts() {
    let mut c = Chain::start().await;
    for i in 0..8 {
        let resp = c
            .out(reqwest::Method::GET, &format!("/headers?before={i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    // Restart B (memory state: every pair is gone).
    let upstream = c._upstream.url();
    // Stop the old B (by its pid) before the new one takes its port.
    let pid = c.b.proc.pid().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status();
    while !c.b.proc.exited() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.b = Relay::start_on(c.b_port, &upstream, &[], &[]);
    // A first replayable request goes through (re-pairing its pair; A's kept-alive connection
    // to the old B fails and is retried). Then a streamed body (over the 64 KiB replay buffer)
    // meets another stale pair: B refuses it (A reads the refusal, or B closes the connection
    // mid-body first); it cannot be replayed, so the app gets a clear 502 saying so, and the
    // pool is renewed: the next streamed request pairs afresh and succeeds.
    let resp = c
        .out(reqwest::Method::GET, "/headers?first=1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> = pattern(300_000)
        .chunks(40_000)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let resp = c
        .out(reqwest::Method::POST, "/upload")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(pieces)))
        .send()
        .await
        .unwrap();
    let v = expect_error(resp, 502, "outbound_failed").await;
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("pair state")
            && message.contains("cannot be replayed")
            && message.contains("send the request again"),
        "{message}"
    );
    let v = upload_chunked(&c, 300_000).await;
    assert_eq!(
        v["sha256"],
        sha256_hex(&pattern(300_000)),
        "the next streamed request"
    );
    for i in 0..12 {
        let resp = c
            .out(reqwest::Method::GET, &format!("/headers?after={i}"))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        assert_eq!(status, 200, "{i}: {}", resp.text().await.unwrap());
        let body = pattern(10_000);
        let want = sha256_hex(&body);
        let v = upload_sized(&c, body).await;
        assert_eq!(v["sha256"], want);
    }
}

/// The text of B's metrics.
async fn metrics(port: &str) -> String {
    client()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// B's metrics: the value of one series (0 when absent).
async fn metric(port: &str, series: &str) -> f64 {
    metrics(port)
        .await
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// An outbound 1 KiB-ish upload through the relay at `a` (base URL) to `remote`, checked by
/// SHA-256.
async fn upload_via(a: String, remote: String, i: usize) {
    let body = pattern(1000 + i);
    let want = sha256_hex(&body);
    let resp = client()
        .post(format!("{a}/upload?i={i}"))
        .header("x-mte-outbound-token", TOKEN)
        .header("x-mte-upstream", &remote)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "request {i}: {text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["sha256"], want, "request {i}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_relays_sharing_redis_use_one_client_id_and_pool() {
    let redis = RedisServer::start();
    let upstream = Upstream::start();
    let metrics_port = free_port().to_string();
    let b = Relay::start(&upstream.url(), &[("METRICS_PORT", &metrics_port)]);
    b.proc.wait_log("metrics at");
    let remote = b.url("").trim_end_matches('/').to_owned();
    let url = redis.url();
    let env = [
        ("OUTBOUND_TOKEN", TOKEN),
        ("OUTBOUND_UPSTREAMS", remote.as_str()),
        ("REDIS_URL", url.as_str()),
    ];
    let a1 = Relay::start(&upstream.url(), &env);
    let a2 = Relay::start(&upstream.url(), &env);
    let base = |a: &Relay| a.url("").trim_end_matches('/').to_owned();
    let (a1, a2) = (base(&a1), base(&a2));
    let pairings = "pqrelay_pairings_total";

    // A1 discovers and pairs once; A2 then uses the stored client id and pairs: no pairing.
    upload_via(a1.clone(), remote.clone(), 0).await;
    assert_eq!(metric(&metrics_port, pairings).await, 1.0);
    for i in 1..10 {
        upload_via(a2.clone(), remote.clone(), i).await;
    }
    assert_eq!(
        metric(&metrics_port, pairings).await,
        1.0,
        "relay A2 paired instead of using the stored pairs"
    );

    // Alternating, then concurrent through both: every request succeeds, B never sees a
    // counter used twice (564) nor any other relay error.
    let via = |i: usize| if i % 2 == 0 { a1.clone() } else { a2.clone() };
    for i in 0..40 {
        upload_via(via(i), remote.clone(), 100 + i).await;
    }
    let mut tasks = Vec::new();
    for i in 0..48 {
        tasks.push(tokio::spawn(upload_via(via(i), remote.clone(), 200 + i)));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // B counts a request after answering it: wait until all 98 exchanges show.
    let ok = r#"pqrelay_requests_total{route="mte",status="200"}"#;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while metric(&metrics_port, ok).await < 98.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "B counted fewer than 98 exchanges"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = metrics(&metrics_port).await;
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("pqrelay_requests_total{") && l.contains("status=\"56"))
        .collect();
    assert!(errors.is_empty(), "relay errors at B: {errors:?}");
    // The store holds the shared session and pool.
    let out = std::process::Command::new("redis-cli")
        .args(["-u", &url, "--scan", "--pattern", "pqrelay:1:out:*"])
        .output()
        .unwrap();
    let keys = String::from_utf8_lossy(&out.stdout);
    assert!(
        keys.contains(":session") && keys.contains(":pairs:"),
        "{keys}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_with_its_redis_down_answers_503_with_a_reason() {
    let upstream = Upstream::start();
    let b = Relay::start(&upstream.url(), &[]);
    let remote = b.url("").trim_end_matches('/').to_owned();
    // Nothing listens on this port: the shared outbound state cannot be read.
    let redis = format!("redis://127.0.0.1:{}", free_port());
    let a = Relay::start(
        &upstream.url(),
        &[
            ("OUTBOUND_TOKEN", TOKEN),
            ("OUTBOUND_UPSTREAMS", remote.as_str()),
            ("REDIS_URL", redis.as_str()),
        ],
    );
    let resp = client()
        .get(a.url("/headers"))
        .header("x-mte-outbound-token", TOKEN)
        .header("x-mte-upstream", &remote)
        .send()
        .await
        .unwrap();
    let v = expect_error(resp, 503, "state_store_unavailable").await;
    assert!(v["message"].as_str().unwrap().contains("outbound"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_gives_up_connecting_after_the_upstream_connect_timeout() {
    // A listed remote relay whose loopback listener never completes a handshake: its accept
    // queue is full (one connection queued, never accepted), so the kernel drops relay A's
    // SYNs and only UPSTREAM_CONNECT_TIMEOUT_MS ends the wait. No traffic leaves the machine.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(([127, 0, 0, 1], 0).into()).unwrap();
    let _listener = socket.listen(0).unwrap();
    let addr = _listener.local_addr().unwrap();
    let _queued = std::net::TcpStream::connect(addr).unwrap();
    let remote = format!("http://{addr}");
    let upstream = Upstream::start();
    let a = Relay::start(
        &upstream.url(),
        &[
            ("OUTBOUND_TOKEN", TOKEN),
            ("OUTBOUND_UPSTREAMS", remote.as_str()),
            ("UPSTREAM_CONNECT_TIMEOUT_MS", "300"),
        ],
    );
    // POST: not retried after a transport error, so one connect attempt is timed.
    let started = std::time::Instant::now();
    let resp = client()
        .post(a.url("/upload"))
        .header("x-mte-outbound-token", TOKEN)
        .header("x-mte-upstream", &remote)
        .body("x")
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    expect_error(resp, 502, "outbound_failed").await;
    // The former hard-coded connect timeout was 5 s.
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
}
