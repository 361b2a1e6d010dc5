//! docs/SECURITY.md §1: the relay only ever sends the upstream well-formed, origin-form
//! requests it parsed itself. Raw TCP against the real binary, with a strict raw upstream
//! ([`crate::util::strict`]) that records and checks every request it receives.

use std::time::Duration;

use pqrelay_protocol::seal;

use crate::util::exchange::{seal_request, HandPair};
use crate::util::strict::{exchange_raw, statuses, Strict};
use crate::util::Relay;

const IDLE: Duration = Duration::from_millis(700);

/// `(name, raw request)` on the pass-through route `/pt/*`.
fn pass_through_cases() -> Vec<(&'static str, String)> {
    let h = "Host: relay.example\r\n";
    vec![
        ("cl_te", format!("POST /pt/a HTTP/1.1\r\n{h}Content-Length: 35\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /pt/smuggled HTTP/1.1\r\n\r\n")),
        ("te_cl", format!("POST /pt/a HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n2a\r\nGET /pt/smuggled HTTP/1.1\r\nHost: x\r\nX: GET\r\n0\r\n\r\n")),
        ("duplicate_cl", format!("POST /pt/a HTTP/1.1\r\n{h}Content-Length: 5\r\nContent-Length: 30\r\n\r\nhelloGET /pt/smuggled HTTP/1.1\r\n\r\n")),
        ("cl_list", format!("POST /pt/a HTTP/1.1\r\n{h}Content-Length: 5, 30\r\n\r\nhelloGET /pt/smuggled HTTP/1.1\r\n\r\n")),
        ("cl_plus", format!("POST /pt/a HTTP/1.1\r\n{h}Content-Length: +5\r\n\r\nhello")),
        ("cl_negative", format!("POST /pt/a HTTP/1.1\r\n{h}Content-Length: -1\r\n\r\nhello")),
        ("obs_fold_te", format!("POST /pt/a HTTP/1.1\r\n{h}Transfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\nhello")),
        ("obs_fold_header", format!("GET /pt/a HTTP/1.1\r\n{h}X-A: a\r\n b\r\n\r\n")),
        ("bare_lf", "POST /pt/a HTTP/1.1\nHost: relay.example\nContent-Length: 5\n\nhello".to_owned()),
        ("bare_cr", format!("GET /pt/a HTTP/1.1\r\n{h}X-A: a\rX-B: b\r\n\r\n")),
        ("xchunked", format!("POST /pt/a HTTP/1.1\r\n{h}Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\nhello")),
        ("chunked_identity", format!("POST /pt/a HTTP/1.1\r\n{h}Transfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n")),
        ("te_space_before_colon", format!("POST /pt/a HTTP/1.1\r\n{h}Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello")),
        ("te_http10", format!("POST /pt/a HTTP/1.0\r\n{h}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")),
        ("chunk_size_overflow", format!("POST /pt/a HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nhello\r\n0\r\n\r\n")),
        ("chunk_size_0x", format!("POST /pt/a HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n")),
        ("chunk_bare_lf", format!("POST /pt/a HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n")),
        ("nul_in_header", format!("GET /pt/a HTTP/1.1\r\n{h}X-A: a\0b\r\n\r\n")),
        ("absolute_form", "GET http://evil.example/pt/a HTTP/1.1\r\nHost: evil.example\r\n\r\n".to_owned()),
        ("absolute_form_same_host", "GET http://relay.example/pt/a HTTP/1.1\r\nHost: relay.example\r\n\r\n".to_owned()),
        ("authority_form", format!("CONNECT evil.example:443 HTTP/1.1\r\n{h}\r\n")),
        ("asterisk_form", format!("OPTIONS * HTTP/1.1\r\n{h}\r\n")),
        ("double_slash", format!("GET //evil.example/pt/a HTTP/1.1\r\n{h}\r\n")),
        ("backslash", format!("GET /pt\\..\\admin HTTP/1.1\r\n{h}\r\n")),
        ("encoded_slashes", format!("GET /pt/%2F%2Fevil HTTP/1.1\r\n{h}\r\n")),
        ("dotdot_encoded_slash", format!("GET /pt/..%2fadmin HTTP/1.1\r\n{h}\r\n")),
        ("dotdot", format!("GET /pt/../admin HTTP/1.1\r\n{h}\r\n")),
        ("dotdot_encoded", format!("GET /pt/%2e%2E/admin HTTP/1.1\r\n{h}\r\n")),
        ("dotdot_matrix", format!("GET /pt/..;x/admin HTTP/1.1\r\n{h}\r\n")),
        ("two_hosts", "GET /pt/a HTTP/1.1\r\nHost: a.example\r\nHost: evil.example\r\n\r\n".to_owned()),
        ("host_evil", "GET /pt/a HTTP/1.1\r\nHost: evil.example\r\n\r\n".to_owned()),
        ("hop_by_hop", format!("GET /pt/a HTTP/1.1\r\n{h}Connection: keep-alive, x-hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: x\r\n\r\n")),
        ("upgrade", format!("GET /pt/a HTTP/1.1\r\n{h}Connection: upgrade\r\nUpgrade: h2c\r\n\r\n")),
        ("pipelined", format!("GET /pt/one HTTP/1.1\r\n{h}\r\nPOST /pt/two HTTP/1.1\r\n{h}Content-Length: 5\r\n\r\nhelloGET /pt/three HTTP/1.1\r\n{h}Connection: close\r\n\r\n")),
        ("space_in_target", format!("GET /pt/a b HTTP/1.1\r\n{h}\r\n")),
        ("no_host_http11", "GET /pt/a HTTP/1.1\r\n\r\n".to_owned()),
        ("mte_route_cl_te", format!("POST /api/x HTTP/1.1\r\n{h}Content-Length: 35\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /pt/smuggled HTTP/1.1\r\n\r\n")),
    ]
}

/// Every case: the upstream sees only well-formed requests, never more than the responses the
/// client got from it, never a smuggled or off-route path, and always its own Host.
#[tokio::test]
async fn pass_through_never_forwards_a_malformed_or_smuggled_request() {
    let up = Strict::start(Duration::ZERO).await;
    let relay = Relay::start(&up.url(), &[("PASS_THROUGH_ROUTES", "/pt/*")]);
    let mut report = Vec::new();
    for (name, raw) in pass_through_cases() {
        let got = exchange_raw(relay.port, raw.as_bytes(), IDLE).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let all = up.well_formed(name);
        // A body the relay could not parse reaches the upstream as an aborted chunked request
        // (never completed, so never acted on); every complete one got its answer through.
        let aborted = all.iter().filter(|s| !s.complete).count();
        assert!(aborted <= 1, "{name}: {all:#?}");
        let seen: Vec<_> = all.into_iter().filter(|s| s.complete).collect();
        let answered_by_upstream = got.to_ascii_lowercase().matches("x-up: 1").count();
        assert_eq!(
            seen.len(),
            answered_by_upstream,
            "{name}: the upstream saw {} request(s) but the client got {answered_by_upstream} upstream answer(s):\n{got}\n{seen:#?}",
            seen.len()
        );
        for s in &seen {
            let target = s.target();
            assert!(target.starts_with("/pt/"), "{name}: upstream saw {target}");
            assert!(!target.contains("smuggled"), "{name}: smuggled {target}");
            assert!(!target.contains("admin"), "{name}: off-route {target}");
            assert_eq!(
                s.header("host"),
                [format!("127.0.0.1:{}", up.port)],
                "{name}: Host"
            );
        }
        report.push(format!(
            "{name}: {:?} upstream={} aborted={aborted}",
            statuses(&got),
            seen.len()
        ));
    }
    eprintln!("{}", report.join("\n"));
    assert!(
        !relay.proc.log_text().contains("panicked"),
        "relay panicked"
    );
}

/// Cases that must not reach the upstream at all, and the status the relay answers.
#[tokio::test]
async fn off_route_and_ambiguous_targets_are_refused_with_400() {
    let up = Strict::start(Duration::ZERO).await;
    let relay = Relay::start(&up.url(), &[("PASS_THROUGH_ROUTES", "/pt/*")]);
    for name in [
        "absolute_form",
        "double_slash",
        "backslash",
        "encoded_slashes",
        "dotdot_encoded_slash",
        "dotdot",
        "dotdot_encoded",
        "dotdot_matrix",
        "duplicate_cl",
        "xchunked",
        "chunked_identity",
        "te_http10",
        "nul_in_header",
    ] {
        let raw = pass_through_cases()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1;
        let got = exchange_raw(relay.port, raw.as_bytes(), IDLE).await;
        let st = statuses(&got);
        assert!(
            st.first().is_none_or(|s| *s == 400),
            "{name}: expected 400 or a closed connection, got {got}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(up.take().is_empty(), "{name}: reached the upstream");
    }
    // The relay's own reason for the target checks.
    let got = exchange_raw(
        relay.port,
        b"GET /pt/../admin HTTP/1.1\r\nHost: x\r\n\r\n",
        IDLE,
    )
    .await;
    assert!(
        got.contains("invalid_url") && got.contains("dot segment"),
        "{got}"
    );
}

/// Sealed requests whose decoded URL or headers would leave origin-form or set framing,
/// routing or hop-by-hop headers: 400, and nothing reaches the upstream.
#[tokio::test]
async fn mte_requests_cannot_smuggle_through_sealed_urls_or_headers() {
    let up = Strict::start(Duration::ZERO).await;
    // One pair per case (a refused request burns a counter); pairing unlimited for the test.
    let relay = Relay::start(&up.url(), &[("PAIR_RATE_PER_IP", "0")]);
    let urls = [
        "http://evil.example/x",
        "//evil.example/x",
        "/a\\b",
        "/%2F%2Fevil",
        "/..%2fadmin",
        "/a/../admin",
        "/%2e%2e/admin",
        "/a b",
        "/a\r\nHost: evil",
        "*",
    ];
    for url in urls {
        let mut p = HandPair::new(&relay, None).await;
        // Sealed without the client's origin-form check (seal_url would refuse most).
        let mut s = seal_request(&mut p, "GET", "/x", &[], None);
        let item = seal::seal_item(&s.keys.request, &s.context, seal::Part::Url, url.as_bytes());
        s.target = format!("/{}", pqrelay_protocol::codec::b64_encode(&item));
        let got = exchange_raw(relay.port, &wire(&s), IDLE).await;
        assert_eq!(statuses(&got).first(), Some(&400), "{url:?}: {got}");
        assert!(got.contains("invalid_url"), "{url:?}: {got}");
    }
    let headers: &[(&str, &str)] = &[
        ("host", "evil.example"),
        ("content-length", "0"),
        ("transfer-encoding", "chunked"),
        ("connection", "close"),
        ("keep-alive", "5"),
        ("proxy-connection", "x"),
        ("te", "trailers"),
        ("trailer", "x"),
        ("upgrade", "h2c"),
        ("x-mte-relay", "2.x"),
        ("x-a", "a\r\nHost: evil"),
        ("x-a", "a\nb"),
        ("x-a", "a\0b"),
        ("X-Upper", "a"),
        ("bad name", "a"),
    ];
    for (n, v) in headers {
        let mut p = HandPair::new(&relay, None).await;
        let s = seal_request(&mut p, "GET", "/x", &[(n, v)], None);
        let got = exchange_raw(relay.port, &wire(&s), IDLE).await;
        assert_eq!(statuses(&got).first(), Some(&400), "{n}: {got}");
        assert!(got.contains("forbidden_header"), "{n}: {got}");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        up.take().is_empty(),
        "a refused MTE request reached the upstream"
    );

    let mut p = HandPair::new(&relay, None).await;
    // A valid sealed POST with both Content-Length and Transfer-Encoding on the wire: the
    // upstream sees one well-formed request (Pingora drops the Content-Length).
    let s = seal_request(
        &mut p,
        "POST",
        "/ok",
        &[("content-type", "text/plain")],
        Some(b"hi"),
    );
    let mut raw = wire_head(&s, "transfer-encoding: chunked\r\ncontent-length: 3\r\n");
    let body = s.body.clone().unwrap();
    raw.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
    raw.extend_from_slice(&body);
    raw.extend_from_slice(b"\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n");
    let got = exchange_raw(relay.port, &raw, IDLE).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let seen = up.well_formed("mte_cl_te");
    assert_eq!(statuses(&got).first(), Some(&200), "{got}");
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0].target(), "/ok");
    assert_eq!(seen[0].body, b"hi");
}

/// The raw bytes of a hand-sealed request (sized body).
fn wire(s: &crate::util::exchange::Sealed) -> Vec<u8> {
    let len = s.body.as_ref().map_or(0, Vec::len);
    let mut raw = wire_head(s, &format!("content-length: {len}\r\n"));
    if let Some(b) = &s.body {
        raw.extend_from_slice(b);
    }
    raw
}

fn wire_head(s: &crate::util::exchange::Sealed, framing: &str) -> Vec<u8> {
    let mut head = format!(
        "{} {} HTTP/1.1\r\nhost: relay.example\r\n",
        s.method, s.target
    );
    for (k, v) in &s.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(framing);
    head.push_str("connection: close\r\n\r\n");
    head.into_bytes()
}
