//! docs/SECURITY.md §2: every limit has a configuration key, a default, a clear error, and
//! is proven here against the real binary.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::exchange::HandPair;
use crate::util::machine;
use crate::util::strict::{exchange_raw, statuses, Strict};
use crate::util::{client, discover, expect_error, Relay};

const IDLE: Duration = Duration::from_millis(700);

#[tokio::test]
async fn url_and_header_sizes_are_limited_with_414_and_431() {
    let up = Strict::start(Duration::ZERO).await;
    let relay = Relay::start(&up.url(), &[("PASS_THROUGH_ROUTES", "/pt/*")]);
    // Defaults: 12 KiB request-target, 32 KiB of header fields.
    let long = format!("/pt/{}", "a".repeat(12 * 1024));
    let v = expect_error(crate::util::get(&relay, &long).await, 414, "uri_too_long").await;
    assert!(
        v["message"].as_str().unwrap().contains("MAX_URL_BYTES"),
        "{v}"
    );
    let ok = format!("/pt/{}", "a".repeat(11 * 1024));
    assert_eq!(crate::util::get(&relay, &ok).await.status(), 200);
    let resp = client()
        .get(relay.url("/pt/a"))
        .header("x-big", "b".repeat(33 * 1024))
        .send()
        .await
        .unwrap();
    let v = expect_error(resp, 431, "headers_too_large").await;
    assert!(
        v["message"].as_str().unwrap().contains("MAX_HEADER_BYTES"),
        "{v}"
    );
    // Many small headers count together.
    let mut req = client().get(relay.url("/pt/a"));
    for i in 0..120 {
        req = req.header(format!("x-h{i}"), "v".repeat(300));
    }
    expect_error(req.send().await.unwrap(), 431, "headers_too_large").await;
    // The relay's own routes and MTE routes are limited the same way.
    let v = expect_error(
        crate::util::get(&relay, &format!("/api/{}", "a".repeat(13 * 1024))).await,
        414,
        "uri_too_long",
    )
    .await;
    assert!(v["message"].is_string());
    let seen = up.well_formed("sizes");
    assert_eq!(
        seen.len(),
        1,
        "only the request under the limits went upstream"
    );

    // Configurable.
    let small = Relay::start(
        &up.url(),
        &[
            ("PASS_THROUGH_ROUTES", "/pt/*"),
            ("MAX_URL_BYTES", "1024"),
            ("MAX_HEADER_BYTES", "2048"),
        ],
    );
    let url = format!("/pt/{}", "a".repeat(1100));
    expect_error(crate::util::get(&small, &url).await, 414, "uri_too_long").await;
    let resp = client()
        .get(small.url("/pt/a"))
        .header("x-big", "b".repeat(2100))
        .send()
        .await
        .unwrap();
    expect_error(resp, 431, "headers_too_large").await;
}

#[tokio::test]
async fn a_sealed_header_block_over_16_kib_is_431() {
    let up = Strict::start(Duration::ZERO).await;
    let relay = Relay::start(&up.url(), &[]);
    let mut p = HandPair::new(&relay, None).await;
    let big = "v".repeat(17 * 1024);
    let s = crate::util::exchange::seal_request(&mut p, "GET", "/x", &[("x-big", &big)], None);
    let resp = crate::util::exchange::send_sealed(&relay, &s).await;
    expect_error(resp, 431, "headers_too_large").await;
    assert!(up.take().is_empty());
}

#[tokio::test]
async fn pairing_is_rate_limited_per_ip_and_per_client_id() {
    let _turn = machine::timed();
    let up = Strict::start(Duration::ZERO).await;
    let relay = Relay::start(
        &up.url(),
        &[("PAIR_RATE_PER_IP", "5"), ("PAIR_RATE_PER_CLIENT", "0")],
    );
    let token = discover(&relay, None).await;
    let pair = |t: String| {
        client()
            .post(relay.url("/api/mte-pair"))
            .header("x-mte-relay", t)
            .body("{}")
            .send()
    };
    // Wait for the start of a fresh one-second window so the burst falls in one window.
    let mut limited = None;
    for _ in 0..12 {
        let resp = pair(token.clone()).await.unwrap();
        if resp.status() == 429 {
            limited = Some(resp);
            break;
        }
        assert_eq!(resp.status(), 400, "an invalid body, counted first");
    }
    let resp = limited.expect("a burst of 12 pairing requests was never limited at 5/s");
    assert_eq!(resp.headers()["retry-after"], "1");
    let v = expect_error(resp, 429, "rate_limited").await;
    assert!(
        v["message"].as_str().unwrap().contains("PAIR_RATE_PER_IP"),
        "{v}"
    );
    // After the window, the same IP may pair again.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(pair(token.clone()).await.unwrap().status(), 400);
    // Other routes are not limited.
    for _ in 0..20 {
        assert_eq!(
            crate::util::get(&relay, "/api/mte-errors").await.status(),
            200
        );
    }

    let relay = Relay::start(
        &up.url(),
        &[("PAIR_RATE_PER_IP", "0"), ("PAIR_RATE_PER_CLIENT", "2")],
    );
    let a = discover(&relay, None).await;
    let b = discover(&relay, None).await;
    let post = |t: String| {
        client()
            .post(relay.url("/api/mte-pair"))
            .header("x-mte-relay", t)
            .body("{}")
            .send()
    };
    let mut statuses_a = Vec::new();
    for _ in 0..6 {
        statuses_a.push(post(a.clone()).await.unwrap().status().as_u16());
    }
    assert!(statuses_a.contains(&429), "{statuses_a:?}");
    let resp = post(b.clone()).await.unwrap();
    assert_eq!(resp.status(), 400, "another client id is not limited");
    let resp = loop {
        let r = post(a.clone()).await.unwrap();
        if r.status() == 429 {
            break r;
        }
    };
    let v = expect_error(resp, 429, "rate_limited").await;
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("PAIR_RATE_PER_CLIENT"),
        "{v}"
    );
}

/// Reads until the peer closes; the time it took, or `None` if still open after `limit`.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((start + limit).into(), s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn a_client_trickling_its_head_is_cut_after_header_timeout() {
    let _turn = machine::timed();
    let up = Strict::start(Duration::ZERO).await;
    let relay = Relay::start(
        &up.url(),
        &[
            ("PASS_THROUGH_ROUTES", "/pt/*"),
            ("HEADER_TIMEOUT_MS", "1500"),
        ],
    );
    // Slowloris: one byte every 100 ms, never finishing the head.
    let mut s = TcpStream::connect(("127.0.0.1", relay.port)).await.unwrap();
    let cut = trickle_until_cut(&mut s, b"GET /pt/a HTTP/1.1\r\nHost: x\r\nX-A: ").await;
    let cut = cut.expect("the trickling client was not cut within 6 s");
    assert!(cut >= Duration::from_millis(1400), "cut too early: {cut:?}");
    assert!(cut < Duration::from_millis(3000), "cut late: {cut:?}");
    // A silent connection is closed too.
    let mut idle = TcpStream::connect(("127.0.0.1", relay.port)).await.unwrap();
    let t = closed_within(&mut idle, Duration::from_secs(5)).await;
    assert!(t.is_some(), "a silent connection stayed open");
    // A normal client is unaffected, also for a slow body under CLIENT_TIMEOUT_MS.
    let got = exchange_raw(
        relay.port,
        b"GET /pt/ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        IDLE,
    )
    .await;
    assert_eq!(statuses(&got), [200], "{got}");
    assert!(up
        .well_formed("slowloris")
        .iter()
        .all(|s| s.target() == "/pt/ok"));
}

/// A connection to the relay on `port` whose first request (`GET /pt/first`) was answered 200,
/// kept alive.
async fn answered_once(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(b"GET /pt/first HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(IDLE, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "first answered"
    );
    s
}

/// Trickles `prefix` then one byte every 100 ms; when the relay cut the connection (within 6 s).
async fn trickle_until_cut(s: &mut TcpStream, prefix: &[u8]) -> Option<Duration> {
    let started = Instant::now();
    s.write_all(prefix).await.ok()?;
    while started.elapsed() < Duration::from_secs(6) {
        if s.write_all(b"a").await.is_err() {
            return Some(started.elapsed());
        }
        let mut buf = [0u8; 4096];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await
        {
            return Some(started.elapsed());
        }
    }
    None
}

#[tokio::test]
async fn empty_lines_before_a_head_and_a_second_head_do_not_escape_the_deadline() {
    let _turn = machine::timed();
    let up = Strict::start(Duration::ZERO).await;
    let relay = Relay::start(
        &up.url(),
        &[
            ("PASS_THROUGH_ROUTES", "/pt/*"),
            ("HEADER_TIMEOUT_MS", "1500"),
        ],
    );
    // `\r\n\r\n` before the request line is no head: the trickled head is still cut.
    let mut s = TcpStream::connect(("127.0.0.1", relay.port)).await.unwrap();
    let cut = trickle_until_cut(&mut s, b"\r\n\r\nGET /pt/a HTTP/1.1\r\nHost: x\r\nX-A: ").await;
    let cut = cut.expect("a head trickled after empty lines was not cut within 6 s");
    assert!(cut < Duration::from_millis(3000), "cut late: {cut:?}");
    // The second head on a kept-alive connection has a deadline of its own.
    let mut s = answered_once(relay.port).await;
    let cut = trickle_until_cut(&mut s, b"GET /pt/second HTTP/1.1\r\nHost: x\r\nX-A: ").await;
    let cut = cut.expect("a slow second head was not cut within 6 s");
    assert!(cut >= Duration::from_millis(1400), "cut too early: {cut:?}");
    assert!(cut < Duration::from_millis(3000), "cut late: {cut:?}");
    assert!(up
        .well_formed("second head")
        .iter()
        .all(|s| s.target() != "/pt/second"));
}

#[tokio::test]
async fn a_kept_alive_connection_idle_past_client_timeout_is_closed() {
    let _turn = machine::timed();
    let up = Strict::start(Duration::ZERO).await;
    let relay = Relay::start(
        &up.url(),
        &[
            ("PASS_THROUGH_ROUTES", "/pt/*"),
            ("CLIENT_TIMEOUT_MS", "1000"),
        ],
    );
    let mut s = answered_once(relay.port).await;
    // Nothing more is sent: the connection may wait CLIENT_TIMEOUT_MS for its next head.
    let t = closed_within(&mut s, Duration::from_secs(5))
        .await
        .expect("an idle kept-alive connection was not closed within 5 s");
    assert!(t >= Duration::from_millis(900), "closed too early: {t:?}");
    assert!(t < Duration::from_millis(2500), "closed late: {t:?}");
}

#[tokio::test]
async fn a_stalled_request_body_is_cut_after_client_timeout() {
    let up = Strict::start(Duration::ZERO).await;
    let relay = Relay::start(
        &up.url(),
        &[
            ("PASS_THROUGH_ROUTES", "/pt/*"),
            ("CLIENT_TIMEOUT_MS", "1000"),
        ],
    );
    let mut s = TcpStream::connect(("127.0.0.1", relay.port)).await.unwrap();
    s.write_all(b"POST /pt/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let t = closed_within(&mut s, Duration::from_secs(5))
        .await
        .expect("a stalled body was not cut within 5 s");
    assert!(t >= Duration::from_millis(900), "{t:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let seen = up.well_formed("stalled body");
    assert!(
        seen.iter().all(|s| !s.complete),
        "the upstream must not see the stalled request as complete: {seen:#?}"
    );
}

#[tokio::test]
async fn upstream_down_is_502_and_slow_is_504_with_reasons() {
    let _turn = machine::timed();
    let dead = format!("http://127.0.0.1:{}", crate::util::free_port());
    let relay = Relay::start(&dead, &[("PASS_THROUGH_ROUTES", "/pt/*")]);
    let v = expect_error(
        crate::util::get(&relay, "/pt/a").await,
        502,
        "upstream_unavailable",
    )
    .await;
    assert!(v["message"].as_str().unwrap().contains("upstream"), "{v}");

    let slow = Strict::start(Duration::from_secs(4)).await;
    let relay = Relay::start(
        &slow.url(),
        &[
            ("PASS_THROUGH_ROUTES", "/pt/*"),
            ("UPSTREAM_READ_TIMEOUT_MS", "1000"),
        ],
    );
    let started = Instant::now();
    let v = expect_error(
        crate::util::get(&relay, "/pt/a").await,
        504,
        "upstream_timeout",
    )
    .await;
    let took = started.elapsed();
    assert!(v["message"].as_str().unwrap().contains("in time"), "{v}");
    assert!(took < Duration::from_millis(3500), "{took:?}");
    // MTE requests get the same answers (plain JSON: the relay's own error).
    let c = crate::util::exchange::relay_client(&relay.url(""));
    match c.get("/slow").send().await {
        Ok(resp) => assert_eq!(resp.status(), 504),
        Err(e) => assert!(e.to_string().contains("upstream_timeout"), "{e}"),
    }
}

#[tokio::test]
async fn heads_past_pingoras_own_limits_are_refused_and_never_reach_the_upstream() {
    let up = Strict::start(Duration::ZERO).await;
    let relay = Relay::start(&up.url(), &[("PASS_THROUGH_ROUTES", "/pt/*")]);
    // More than 256 fields (small enough in bytes to pass MAX_HEADER_BYTES), then a head
    // over 1 MiB: Pingora refuses both before the relay's own checks run.
    let mut many = String::from("GET /pt/many HTTP/1.1\r\nhost: x\r\n");
    for i in 0..300 {
        many.push_str(&format!("x-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let huge = format!(
        "GET /pt/huge HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "b".repeat(1100 * 1024)
    );
    for head in [many, huge] {
        let got = exchange_raw(relay.port, head.as_bytes(), IDLE).await;
        let codes = statuses(&got);
        assert!(
            codes.iter().all(|c| (400..500).contains(c)),
            "only a 4xx or a closed connection: {codes:?}"
        );
    }
    assert!(up.well_formed("heads past the limits").is_empty());
    assert_eq!(crate::util::get(&relay, "/pt/after").await.status(), 200);
}

/// Writes a whole `POST` of 8 MiB before reading anything (as simple clients do) and returns
/// what came back, or the transport error.
fn post_then_read(port: u16, path: &str, extra: &str) -> Result<String, std::io::Error> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = vec![b'x'; 8 << 20];
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n{extra}\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(&body)?;
    let mut got = vec![0u8; 65536];
    let n = s.read(&mut got)?;
    Ok(String::from_utf8_lossy(&got[..n]).into_owned())
}

#[tokio::test]
async fn an_error_before_the_body_was_read_reaches_a_client_still_writing_it() {
    // Upstream down (502, connection closed after it) and a forged client id on an MTE route
    // (566): both answered before the 8 MiB body was read; the relay reads and drops the rest
    // instead of resetting the connection under the client.
    let dead = crate::util::free_port();
    let relay = Relay::start(
        &format!("http://127.0.0.1:{dead}"),
        &[("PASS_THROUGH_ROUTES", "/pt/*")],
    );
    let port = relay.port;
    for (path, extra, status) in [
        ("/pt/upload", "", "502"),
        ("/upload", "x-mte-relay: 1.forged.AAAA\r\n", "56"),
    ] {
        for round in 0..3 {
            let got = tokio::task::spawn_blocking(move || post_then_read(port, path, extra))
                .await
                .unwrap();
            let got = got.unwrap_or_else(|e| panic!("{path} round {round}: {e}"));
            assert!(
                got.starts_with(&format!("HTTP/1.1 {status}")),
                "{path}: {got}"
            );
        }
    }
}
