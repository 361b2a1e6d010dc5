//! docs/SECURITY.md "Client addresses": who the client is behind load balancers
//! (`TRUSTED_PROXIES`, `PROXY_PROTOCOL`), what the upstream's `X-Forwarded-*` say
//! (`PUBLIC_HOSTS`), and that a client cannot choose its own address. Against the real binary,
//! a strict upstream recording what it received.

use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::exchange::{seal_request, send_sealed, HandPair};
use crate::util::machine;
use crate::util::strict::{exchange_raw, statuses, Strict};
use crate::util::{client, discover, expect_error, Relay, ORIGIN};

const PASS: (&str, &str) = ("PASS_THROUGH_ROUTES", "/pt/*");

/// `POST /api/mte-pair` with an empty JSON body (400, counted against the rates first),
/// claiming `X-Forwarded-For: xff`.
async fn pair_from(relay: &Relay, token: &str, xff: &str) -> reqwest::Response {
    client()
        .post(relay.url("/api/mte-pair"))
        .header("x-mte-relay", token)
        .header("x-forwarded-for", xff)
        .body("{}")
        .send()
        .await
        .unwrap()
}

/// `GET /pt/a` with these extra headers; the one request the upstream saw, as `(name, values)`
/// lookups.
async fn upstream_saw(relay: &Relay, up: &Strict, headers: &[(&str, &str)]) -> Vec<String> {
    let mut req = client().get(relay.url("/pt/a"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    assert_eq!(req.send().await.unwrap().status(), 200);
    let seen = up.well_formed("forwarding headers");
    assert_eq!(seen.len(), 1);
    seen[0].head.lines().map(str::to_owned).collect()
}

/// The values of header `name` in a recorded head.
fn header(head: &[String], name: &str) -> Vec<String> {
    head.iter()
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_owned())
        .collect()
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_rate_limit_counts_each_forwarded_client() {
    let _turn = machine::timed();
    let up = Strict::start(Duration::ZERO).await;
    let relay = Relay::start(
        &up.url(),
        &[
            ("TRUSTED_PROXIES", "127.0.0.1/32"),
            ("PAIR_RATE_PER_IP", "5"),
            ("PAIR_RATE_PER_CLIENT", "0"),
        ],
    );
    let token = discover(&relay, None).await;
    let mut limited = None;
    for _ in 0..12 {
        let resp = pair_from(&relay, &token, "198.51.100.1").await;
        if resp.status() == 429 {
            limited = Some(resp);
            break;
        }
        assert_eq!(resp.status(), 400, "an invalid body, counted first");
    }
    let resp = limited.expect("12 pairing requests from one forwarded client were never limited");
    let v = expect_error(resp, 429, "rate_limited").await;
    assert!(v["message"].as_str().unwrap().contains("PAIR_RATE_PER_IP"));
    // Through the same balancer (the same TCP peer), another client pairs.
    for _ in 0..3 {
        let resp = pair_from(&relay, &token, "198.51.100.2").await;
        assert_eq!(
            resp.status(),
            400,
            "another forwarded client is not limited"
        );
    }
    // The access log names the forwarded client.
    let log = relay
        .proc
        .wait_log("198.51.100.1 \"POST /api/mte-pair\" 429");
    assert!(
        log.contains("198.51.100.1 \"POST /api/mte-pair\" 429"),
        "{log}"
    );
    assert!(
        log.contains("198.51.100.2 \"POST /api/mte-pair\" 400"),
        "{log}"
    );
}

#[tokio::test]
async fn an_untrusted_peer_cannot_choose_its_address() {
    let _turn = machine::timed();
    let up = Strict::start(Duration::ZERO).await;
    let relay = Relay::start(
        &up.url(),
        &[
            PASS,
            ("PAIR_RATE_PER_IP", "5"),
            ("PAIR_RATE_PER_CLIENT", "0"),
        ],
    );
    let token = discover(&relay, None).await;
    // A new forged address on every request: all of them count against the peer.
    let mut statuses = Vec::new();
    for i in 0..12 {
        let resp = pair_from(&relay, &token, &format!("203.0.113.{i}")).await;
        statuses.push(resp.status().as_u16());
        if resp.status() == 429 {
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    // The upstream sees only the peer, the relay's own scheme and no client-chosen host.
    let head = upstream_saw(
        &relay,
        &up,
        &[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
        ],
    )
    .await;
    assert_eq!(header(&head, "x-forwarded-for"), ["127.0.0.1"], "{head:?}");
    assert_eq!(header(&head, "x-forwarded-proto"), ["http"], "{head:?}");
    assert!(header(&head, "x-forwarded-host").is_empty(), "{head:?}");
    let log = relay.proc.wait_log("\"GET /pt/a\" 200");
    let line = log.lines().find(|l| l.contains("\"GET /pt/a\" 200"));
    assert!(
        line.is_some_and(|l| l.contains("access: 127.0.0.1:")),
        "the access line names the peer: {log}"
    );
    assert!(
        !log.contains("6.6.6.6") && !log.contains("203.0.113."),
        "{log}"
    );
}

#[tokio::test]
async fn a_trusted_chain_reaches_the_upstream_as_client_hops_peer() {
    let up = Strict::start(Duration::ZERO).await;
    let relay = Relay::start(
        &up.url(),
        &[PASS, ("TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8")],
    );
    // Left of the first untrusted address is the client's own writing: dropped.
    let head = upstream_saw(
        &relay,
        &up,
        &[
            ("x-forwarded-for", "6.6.6.6, 198.51.100.7"),
            ("x-forwarded-for", "10.1.2.3"),
            ("x-forwarded-proto", "https"),
        ],
    )
    .await;
    assert_eq!(
        header(&head, "x-forwarded-for"),
        ["198.51.100.7, 10.1.2.3, 127.0.0.1"],
        "{head:?}"
    );
    assert_eq!(header(&head, "x-forwarded-proto"), ["https"], "{head:?}");
    // Every hop trusted: the leftmost is the client.
    let head = upstream_saw(&relay, &up, &[("x-forwarded-for", "10.9.9.9, 10.1.1.1")]).await;
    assert_eq!(
        header(&head, "x-forwarded-for"),
        ["10.9.9.9, 10.1.1.1, 127.0.0.1"]
    );
    assert_eq!(
        header(&head, "x-forwarded-proto"),
        ["http"],
        "the relay's own"
    );
    // A hop that is no address ends the walk.
    let head = upstream_saw(
        &relay,
        &up,
        &[("x-forwarded-for", "1.1.1.1, junk, 10.2.2.2")],
    )
    .await;
    assert_eq!(header(&head, "x-forwarded-for"), ["10.2.2.2, 127.0.0.1"]);

    // On an MTE route too: the balancer's plain X-Forwarded-For is read, never forwarded as
    // the client's header.
    let mut p = HandPair::new(&relay, None).await;
    let mut s = seal_request(&mut p, "GET", "/x", &[], None);
    s.headers
        .push(("x-forwarded-for".into(), "6.6.6.6, 198.51.100.8".into()));
    assert_eq!(send_sealed(&relay, &s).await.status(), 200);
    let seen = up.well_formed("mte");
    let mte = seen.last().expect("the MTE request went upstream");
    assert_eq!(
        mte.header("x-forwarded-for"),
        ["198.51.100.8, 127.0.0.1"],
        "{}",
        mte.head
    );
}

#[tokio::test]
async fn x_forwarded_host_only_for_public_hosts_and_sites() {
    let up = Strict::start(Duration::ZERO).await;
    let relay = Relay::start(&up.url(), &[PASS, ("PUBLIC_HOSTS", "api.example.com")]);
    let port = relay.port;
    let public = format!("api.example.com:{port}");
    let head = upstream_saw(&relay, &up, &[("host", &public)]).await;
    assert_eq!(header(&head, "x-forwarded-host"), [public.as_str()]);
    assert_eq!(header(&head, "host"), [format!("127.0.0.1:{}", up.port)]);
    for other in ["127.0.0.1", "evil.example"] {
        let host = format!("{other}:{port}");
        let head = upstream_saw(
            &relay,
            &up,
            &[("host", &host), ("x-forwarded-host", "api.example.com")],
        )
        .await;
        assert!(header(&head, "x-forwarded-host").is_empty(), "{head:?}");
    }

    // A DOMAIN_MAP site is public.
    let map = format!(
        r#"{{"shop.example": {{"upstream": "{}", "corsOrigins": "{ORIGIN}",
            "clientIdSecret": "shop-secret-0123456789abcdefghijkl", "passThroughRoutes": ["/pt/*"]}}}}"#,
        up.url()
    );
    let sites = Relay::start(&up.url(), &[("DOMAIN_MAP", &map)]);
    let host = format!("shop.example:{}", sites.port);
    let head = upstream_saw(&sites, &up, &[("host", &host)]).await;
    assert_eq!(header(&head, "x-forwarded-host"), [host.as_str()]);
}

/// A PROXY protocol v2 header (PROXY command, TCP over IPv4) from `src`:`port`.
fn proxy_v2(src: [u8; 4], port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n\x21\x11".to_vec();
    let tlv = [0x04u8, 0x00, 0x03, b'a', b'w', b's']; // a NOOP TLV, as balancers add some
    h.extend_from_slice(&(12 + tlv.len() as u16).to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&port.to_be_bytes());
    h.extend_from_slice(&8080u16.to_be_bytes());
    h.extend_from_slice(&tlv);
    h
}

const GET_PT: &[u8] = b"GET /pt/a HTTP/1.1\r\nhost: relay.example\r\nconnection: close\r\n\r\n";

#[tokio::test]
async fn proxy_protocol_v1_and_v2_headers_set_the_client_address() {
    let up = Strict::start(Duration::ZERO).await;
    let relay = Relay::start(&up.url(), &[PASS, ("PROXY_PROTOCOL", "true")]);
    let idle = Duration::from_secs(5);

    // One header per connection: a kept-alive connection's next request has none.
    let mut s = TcpStream::connect(("127.0.0.1", relay.port)).await.unwrap();
    let first = [
        &b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 8080\r\n"[..],
        b"GET /pt/a HTTP/1.1\r\nhost: relay.example\r\n\r\n",
    ]
    .concat();
    s.write_all(&first).await.unwrap();
    let mut out = Vec::new();
    let mut piece = [0u8; 4096];
    while !out.ends_with(b"ok") {
        let n = tokio::time::timeout(idle, s.read(&mut piece))
            .await
            .expect("the first answer")
            .unwrap();
        assert!(n > 0, "closed after the first request: {out:?}");
        out.extend_from_slice(&piece[..n]);
    }
    s.write_all(GET_PT).await.unwrap();
    tokio::time::timeout(idle, s.read_to_end(&mut out))
        .await
        .expect("the second answer")
        .unwrap();
    let raw = String::from_utf8_lossy(&out);
    assert_eq!(raw.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{raw}");
    let seen = up.well_formed("v1");
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(s.header("x-forwarded-for"), ["198.51.100.7"]);
    }

    let v6 = [b"PROXY TCP6 2001:db8::7 ::1 40001 8080\r\n", GET_PT].concat();
    let raw = exchange_raw(relay.port, &v6, idle).await;
    assert_eq!(statuses(&raw), [200], "{raw}");
    assert_eq!(
        up.well_formed("v1 v6")[0].header("x-forwarded-for"),
        ["2001:db8::7"]
    );

    // v2, the header and the request head arriving in pieces.
    let v2 = proxy_v2([203, 0, 113, 9], 40002);
    let mut s = TcpStream::connect(("127.0.0.1", relay.port)).await.unwrap();
    s.write_all(&v2[..7]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.write_all(&[&v2[7..], &GET_PT[..10]].concat())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.write_all(&GET_PT[10..]).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(idle, s.read_to_end(&mut out))
        .await
        .expect("answered")
        .unwrap();
    let raw = String::from_utf8_lossy(&out);
    assert_eq!(statuses(&raw), [200], "{raw}");
    assert_eq!(
        up.well_formed("v2")[0].header("x-forwarded-for"),
        ["203.0.113.9"]
    );

    // A LOCAL header (a balancer's health check) keeps the TCP peer.
    let mut local = proxy_v2([203, 0, 113, 9], 40003);
    local[12] = 0x20;
    let raw = exchange_raw(relay.port, &[&local[..], GET_PT].concat(), idle).await;
    assert_eq!(statuses(&raw), [200], "{raw}");
    assert_eq!(
        up.well_formed("local")[0].header("x-forwarded-for"),
        ["127.0.0.1"]
    );

    let log = relay.proc.wait_log("203.0.113.9:40002 \"GET /pt/a\" 200");
    for line in ["198.51.100.7:40000 \"GET", "203.0.113.9:40002 \"GET"] {
        assert!(
            log.contains(line),
            "{line} missing from the access log:\n{log}"
        );
    }
}

#[tokio::test]
async fn a_missing_garbage_or_slow_proxy_header_closes_the_connection() {
    let _turn = machine::timed();
    let up = Strict::start(Duration::ZERO).await;
    let relay = Relay::start(
        &up.url(),
        &[
            PASS,
            ("PROXY_PROTOCOL", "true"),
            ("HEADER_TIMEOUT_MS", "500"),
        ],
    );
    let idle = Duration::from_secs(5);
    let mut oversized = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x20\x00".to_vec();
    oversized.extend_from_slice(&[0u8; 5000]);
    for (case, bytes) in [
        ("no header", GET_PT.to_vec()),
        ("garbage", [b"PROXY TCP9 what\r\n", GET_PT].concat()),
        (
            "bad address",
            [b"PROXY TCP4 999.0.0.1 127.0.0.1 1 2\r\n", GET_PT].concat(),
        ),
        ("over 4 KiB", oversized),
    ] {
        let started = Instant::now();
        let raw = exchange_raw(relay.port, &bytes, idle).await;
        assert_eq!(raw, "", "{case}: no answer, the connection is closed");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{case}: closed at once"
        );
    }
    // A PROXY header that never ends: closed at HEADER_TIMEOUT_MS.
    let mut s = TcpStream::connect(("127.0.0.1", relay.port)).await.unwrap();
    s.write_all(b"PROXY TCP4 198.51.").await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(idle, s.read(&mut buf)).await;
    let elapsed = started.elapsed();
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "closed, not answered: {read:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed < Duration::from_millis(2500),
        "closed after {elapsed:?}"
    );
    assert!(up.take().is_empty(), "nothing reached the upstream");
    // The relay still serves proper connections.
    let v1 = [b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 8080\r\n", GET_PT].concat();
    assert_eq!(statuses(&exchange_raw(relay.port, &v1, idle).await), [200]);
}

#[tokio::test]
async fn few_addresses_behind_untrusted_peers_log_one_load_balancer_warning() {
    let up = Strict::start(Duration::ZERO).await;
    let relay = Relay::start(&up.url(), &[]);
    let trusted = Relay::start(&up.url(), &[("TRUSTED_PROXIES", "127.0.0.1")]);
    let c = client();
    for r in [&relay, &trusted] {
        let url = r.url("/api/mte-errors");
        let answers: Vec<u16> = futures::stream::iter(0..1000)
            .map(|_| async { c.get(&url).send().await.map_or(0, |r| r.status().as_u16()) })
            .buffer_unordered(8)
            .collect()
            .await;
        assert!(answers.iter().all(|s| *s == 200), "{answers:?}");
    }
    let needle = "set TRUSTED_PROXIES";
    let log = relay.proc.wait_log(needle);
    assert_eq!(log.matches(needle).count(), 1, "{log}");
    assert!(log.contains("WARN"), "{log}");
    let log = trusted.proc.log_text();
    assert!(
        !log.contains(needle),
        "no warning once proxies are trusted: {log}"
    );
}
