//! docs/SECURITY.md §4: with `DEBUG=true`, the relay's whole output (stdout and stderr) after
//! every route, error path and mode holds no secret, no key or pair state (in hex, base64 or
//! `Debug` form), no plaintext body, no sealed header name or value and no sealed URL.
//!
//! Real processes: `redis-server` with a password, the relay, the demo upstream, and in outbound
//! mode a second relay. Keys come from hand-made pairs (the test derives the same chain keys,
//! exchange keys and stored states as the relay) and from the blobs the relay stored in Redis.

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use pqrelay_client::{Body, Bytes, RelayClient};
use pqrelay_protocol::{seal, DecapsulationSeed, ServerPair};
use pqrelay_testkit::redis::RedisServer;

use crate::util::exchange::{random, relay_client, seal_request, send_sealed, HandPair, Sealed};
use crate::util::{client, discover, expect_error, free_port, Relay, Upstream};

const REDIS_PASSWORD: &str = "redispw-LEAKCHECK-6c0f1e93a2d8";
const CLIENT_ID_SECRET: &str = "cidsecret-LEAKCHECK-0a9b8c7d6e5f4a3b";
const PREVIOUS_SECRET: &str = "oldsecret-LEAKCHECK-1f2e3d4c5b6a7988";
const STATE_SECRET: &str = "statesecret-LEAKCHECK-9e8d7c6b5a4f3e2d";
const OUTBOUND_TOKEN: &str = "outboundtok-LEAKCHECK-3b5d7f9a1c2e4f60";

/// Plaintext of sealed requests and responses.
const PATH_MARK: &str = "pathmark-q7Wz2";
const QUERY_MARK: &str = "querymark-K3v9x";
const HEADER_NAME: &str = "x-hdrname-r4t8y";
const HEADER_VALUE: &str = "hdrvalue-P6m1n";
const BODY_MARK: &str = "bodymark-Z5n0b";
const USER_MARK: &str = "usermark-H2j8c";

/// What must never appear in a log, each with a label for the failure message.
#[derive(Default)]
struct Needles(Vec<(String, String)>);

impl Needles {
    fn text(&mut self, label: &str, s: &str) {
        self.0.push((label.to_owned(), s.to_owned()));
        self.bytes(label, s.as_bytes());
    }

    /// Lowercase and uppercase hex, standard and URL-safe base64 at every 3-byte alignment
    /// (so the bytes are found inside a longer encoded blob too), and `Debug` of a byte slice.
    fn bytes(&mut self, label: &str, b: &[u8]) {
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        self.0.push((format!("{label} (hex)"), hex.clone()));
        self.0
            .push((format!("{label} (HEX)"), hex.to_ascii_uppercase()));
        for skip in 0..3 {
            let rest = &b[skip.min(b.len())..];
            let whole = &rest[..rest.len() / 3 * 3];
            if whole.len() >= 12 {
                for engine in [STANDARD_NO_PAD, URL_SAFE_NO_PAD] {
                    self.0
                        .push((format!("{label} (base64+{skip})"), engine.encode(whole)));
                }
            }
        }
        self.0
            .push((format!("{label} (padded base64)"), STANDARD.encode(b)));
        self.0
            .push((format!("{label} (padded base64url)"), URL_SAFE.encode(b)));
        let debug: Vec<String> = b.iter().take(12).map(u8::to_string).collect();
        self.0.push((format!("{label} (Debug)"), debug.join(", ")));
    }

    fn plaintext(&mut self) {
        for m in [
            PATH_MARK,
            QUERY_MARK,
            HEADER_NAME,
            HEADER_VALUE,
            BODY_MARK,
            USER_MARK,
        ] {
            self.0.push(("plaintext marker".into(), m.into()));
        }
    }

    fn any_in(&self, text: &str) -> bool {
        self.0.iter().any(|(_, n)| text.contains(n.as_str()))
    }

    /// Panics naming every needle found in `log`.
    fn assert_absent(&self, log: &str, who: &str) {
        let found: Vec<&str> = self
            .0
            .iter()
            .filter(|(_, n)| log.contains(n.as_str()))
            .map(|(l, _)| l.as_str())
            .collect();
        assert!(
            found.is_empty(),
            "{who}'s log shows {found:?}:\n{}",
            tail(log)
        );
    }
}

/// Sends a last request, then waits until the log shows its line and every one of `lines`
/// (access lines are written after the response) and returns the whole log.
async fn wait_all(relay: &Relay, lines: &[&str]) -> String {
    let resp = client()
        .get(relay.url("/api/mte-echo/end-of-test"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
    let mut log = relay.proc.wait_log("/api/mte-echo/end-of-test");
    for line in lines {
        log = relay.proc.wait_log(line);
        assert!(log.contains(line), "log lacks {line:?}:\n{}", tail(&log));
    }
    log
}

fn tail(log: &str) -> &str {
    crate::util::fuzz::tail(log, 20_000)
}

/// A hand-made pair, recording the ephemeral decapsulation seed, both shared secrets and
/// `ck_0`.
async fn keyed_pair(relay: &Relay, token: Option<&str>, needles: &mut Needles) -> HandPair {
    let (seed_e, eseed_r) = (random::<32>(), random::<64>());
    needles.bytes("decapsulation seed", &seed_e);
    needles.bytes("encapsulation randomness", &eseed_r);
    let (p, answer) = HandPair::with_secrets(relay, token, &[], seed_e, eseed_r).await;
    let ss_e = DecapsulationSeed::from_bytes(seed_e)
        .expand()
        .decapsulate(&answer.response.ct)
        .expect("decapsulate");
    needles.bytes("shared secret (ephemeral)", ss_e.as_bytes());
    let (_, ss_r) = answer.relay_key.public_key().encapsulate(&eseed_r);
    needles.bytes("shared secret (relay key)", ss_r.as_bytes());
    needles.bytes("ck_0", p.pair.as_ref().unwrap().chain_key().as_bytes());
    p
}

/// [`seal_request`], recording the exchange keys, the next chain key and the state the relay
/// stores after accepting the exchange.
fn sealed(
    p: &mut HandPair,
    needles: &mut Needles,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Sealed {
    let s = seal_request(p, method, path, headers, body);
    needles.bytes("request key", s.keys.request.as_bytes());
    needles.bytes("response key", s.keys.response.as_bytes());
    needles.bytes("error tag key", s.keys.error.as_bytes());
    let ck = p.pair.as_ref().unwrap().chain_key().clone();
    needles.bytes("chain key", ck.as_bytes());
    let state = ServerPair::from_parts(s.keys.counter + 1, ck, p.key.kid()).to_bytes();
    needles.bytes("server pair state", &state[..]);
    s
}

/// Every stored blob in Redis (sealed pair states).
fn redis_blobs(port: u16, needles: &mut Needles) -> usize {
    let url = format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{port}/");
    let mut con = redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
        .expect("redis connection");
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg("pqrelay:*")
        .query(&mut con)
        .expect("KEYS");
    for key in &keys {
        let kind: String = redis::cmd("TYPE").arg(key).query(&mut con).expect("TYPE");
        let blob: Vec<u8> = match kind.as_str() {
            "string" => redis::cmd("GET").arg(key).query(&mut con).expect("GET"),
            // A client's index of its pairs: pair ids (public on the wire) and their scores.
            "zset" => redis::cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .query::<Vec<Vec<u8>>>(&mut con)
                .expect("ZRANGE")
                .concat(),
            "list" => redis::cmd("LRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .query::<Vec<Vec<u8>>>(&mut con)
                .expect("LRANGE")
                .concat(),
            other => panic!("unexpected Redis type {other} at {key:?}"),
        };
        needles.bytes("stored blob", &blob);
    }
    keys.len()
}

fn header_pairs() -> [(&'static str, &'static str); 3] {
    [
        (HEADER_NAME, HEADER_VALUE),
        ("authorization", "Bearer hdrvalue-P6m1n-auth"),
        ("content-type", "text/x-leakcheck"),
    ]
}

/// Sealed traffic through the Rust client: small and big, sized and streamed bodies, SSE.
async fn client_traffic(c: &RelayClient) {
    let resp = c
        .get(format!("/echo?msg={QUERY_MARK}"))
        .header(HEADER_NAME, HEADER_VALUE)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains(QUERY_MARK));
    let resp = c
        .get(format!("/headers?{QUERY_MARK}=1"))
        .header(HEADER_NAME, HEADER_VALUE)
        .header("cookie", "session=hdrvalue-P6m1n-cookie")
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["headers"][HEADER_NAME], HEADER_VALUE);
    let resp = c
        .post("/login")
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"username":"{USER_MARK}","password":"{BODY_MARK}"}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains(USER_MARK));
    // Sized uploads below and above one record, and a streamed (chunked) upload.
    for len in [100usize, 200_000] {
        let body = BODY_MARK.repeat(len / BODY_MARK.len());
        let resp = c
            .post(format!("/upload?{QUERY_MARK}"))
            .header(HEADER_NAME, HEADER_VALUE)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
    let pieces: Vec<Result<Bytes, std::io::Error>> = (0..6)
        .map(|_| Ok(Bytes::from(BODY_MARK.repeat(3000))))
        .collect();
    let resp = c
        .post("/upload")
        .body(Body::stream(futures::stream::iter(pieces)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
    // Streamed download (Server-Sent Events) and an upstream 404 on a marked path.
    let mut resp = c.get("/events").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    while resp.chunk().await.unwrap().is_some() {}
    let resp = c
        .get(format!("/{PATH_MARK}/x?{QUERY_MARK}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

/// Hand-sealed exchanges (keys recorded) and every error path of an MTE request.
async fn hand_traffic(relay: &Relay, needles: &mut Needles) {
    let old = pqrelay_protocol::client_id::issue(
        PREVIOUS_SECRET.as_bytes(),
        pqrelay_protocol::ClientId([9; 16]),
    );
    let mut p = keyed_pair(relay, Some(&old.encode()), needles).await;
    let path = format!("/upload?{QUERY_MARK}=2");
    let body = BODY_MARK.repeat(50);
    let s = sealed(
        &mut p,
        needles,
        "POST",
        &path,
        &header_pairs(),
        Some(body.as_bytes()),
    );
    let resp = send_sealed(relay, &s).await;
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
    // Replayed.
    expect_error(send_sealed(relay, &s).await, 564, "counter_rejected").await;
    // Tampered sealed URL, header block and body.
    let mut s = sealed(&mut p, needles, "GET", &path, &header_pairs(), None);
    let c = if s.target.as_bytes()[5] == b'x' {
        "y"
    } else {
        "x"
    };
    s.target.replace_range(5..6, c);
    expect_error(send_sealed(relay, &s).await, 562, "decode_failed").await;
    let mut s = sealed(&mut p, needles, "GET", &path, &header_pairs(), None);
    let eh = &mut s.headers[1].1;
    let c = if eh.ends_with('A') { 'B' } else { 'A' };
    eh.pop();
    eh.push(c);
    expect_error(send_sealed(relay, &s).await, 562, "decode_failed").await;
    let mut s = sealed(
        &mut p,
        needles,
        "POST",
        &path,
        &header_pairs(),
        Some(body.as_bytes()),
    );
    if let Some(b) = s.body.as_mut() {
        b[40] ^= 1;
    }
    let method = reqwest::Method::POST;
    let mut req = client().request(method, relay.url(&s.target));
    for (k, v) in &s.headers {
        req = req.header(k, v);
    }
    if let Ok(resp) = req.body(s.body.clone().unwrap()).send().await {
        assert_ne!(resp.status(), 200, "a tampered body was accepted");
        let _ = resp.bytes().await;
    }
    // Forbidden sealed header and a sealed URL out of origin-form, carrying markers.
    let s = sealed(
        &mut p,
        needles,
        "GET",
        "/echo",
        &[("host", HEADER_VALUE)],
        None,
    );
    expect_error(send_sealed(relay, &s).await, 400, "forbidden_header").await;
    // (Sealed without the client's origin-form check, which would refuse it.)
    let mut s = sealed(&mut p, needles, "GET", "/x", &[], None);
    let url = format!("//{PATH_MARK}/x?{QUERY_MARK}");
    let item = seal::seal_item(&s.keys.request, &s.context, seal::Part::Url, url.as_bytes());
    s.target = format!("/{}", pqrelay_protocol::codec::b64_encode(&item));
    expect_error(send_sealed(relay, &s).await, 400, "invalid_url").await;
    // A valid exchange after the errors still works.
    let s = sealed(
        &mut p,
        needles,
        "GET",
        &format!("/echo?msg={QUERY_MARK}"),
        &header_pairs(),
        None,
    );
    let resp = send_sealed(relay, &s).await;
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
}

/// The relay's own routes, pass-through, CORS, pairing errors and 404s.
async fn plain_traffic(relay: &Relay) {
    let http = client();
    let token = discover(relay, None).await;
    for path in [
        "/api/mte-ready",
        "/api/mte-errors",
        "/public/mte-relay-browser.js",
        "/api/mte-echo/hello",
        "/pt/plain",
        "/demo/",
    ] {
        let resp = http.get(relay.url(path)).send().await.unwrap();
        assert!(resp.status().as_u16() < 500, "{path}: {}", resp.status());
        resp.bytes().await.unwrap();
    }
    let resp = http
        .request(reqwest::Method::OPTIONS, relay.url("/api/mte-pair"))
        .header("origin", crate::util::ORIGIN)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    // Wrong method on an own route, an MTE route without the header, bad client ids.
    let resp = http.get(relay.url("/api/mte-pair")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    let resp = http
        .get(relay.url("/no-relay-header"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 561);
    let resp = http
        .head(relay.url("/api/mte-relay"))
        .header("x-mte-relay", "2.AAAA")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Pairing garbage: not JSON, empty, too large, bad key.
    for body in [
        format!("not json {BODY_MARK}").into_bytes(),
        br#"{"pairs":[]}"#.to_vec(),
        format!(r#"{{"pairs":[{{"id":"{BODY_MARK}","ek":"AAAA"}}]}}"#).into_bytes(),
        vec![b' '; 70_000],
    ] {
        let resp = http
            .post(relay.url("/api/mte-pair"))
            .header("x-mte-relay", &token)
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_client_error(), "{}", resp.status());
        resp.bytes().await.unwrap();
    }
}

/// Every route of a relay with Redis state (password), rotated client-id secrets, extra
/// headers, metrics and the demo pages, all with `DEBUG=true`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_logs_of_every_route_hold_no_secret_key_or_plaintext() {
    let redis = RedisServer::start_with(free_port(), &["--requirepass", REDIS_PASSWORD]);
    let redis_url = format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{}", redis.port);
    let upstream = Upstream::start();
    let metrics_port = free_port().to_string();
    let relay = Relay::start(
        &upstream.url(),
        &[
            ("DEBUG", "true"),
            ("REDIS_URL", &redis_url),
            ("STATE_SECRET", STATE_SECRET),
            ("CLIENT_ID_SECRET", CLIENT_ID_SECRET),
            ("CLIENT_ID_PREVIOUS_SECRETS", PREVIOUS_SECRET),
            ("HEADERS", r#"{"x-service-name":"leakcheck-relay"}"#),
            ("PASS_THROUGH_ROUTES", "/pt/*"),
            ("METRICS_PORT", &metrics_port),
            ("DEMO", "true"),
        ],
    );
    let mut needles = Needles::default();
    for (label, s) in [
        ("Redis password", REDIS_PASSWORD),
        ("CLIENT_ID_SECRET", CLIENT_ID_SECRET),
        ("CLIENT_ID_PREVIOUS_SECRETS", PREVIOUS_SECRET),
        ("STATE_SECRET", STATE_SECRET),
    ] {
        needles.text(label, s);
    }
    needles.text("Redis URL", &redis_url);
    needles.plaintext();

    plain_traffic(&relay).await;
    let c = relay_client(&relay.url(""));
    client_traffic(&c).await;
    hand_traffic(&relay, &mut needles).await;
    let resp = client()
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
    let stored = redis_blobs(redis.port, &mut needles);
    assert!(stored >= 3, "pairs stored in Redis: {stored}");

    // The log is real: access lines of every kind of route and error, and DEBUG lines.
    let log = wait_all(
        &relay,
        &[
            "DEBUG pqrelay",
            "\"HEAD /api/mte-relay\" 200",
            "\"POST /api/mte-pair\" 200",
            "\"GET /api/mte-ready\" 200",
            "\"GET /pt/plain\"",
            "route=mte",
            "error=decode_failed",
            "error=counter_rejected",
            "error=invalid_pairing",
            "error=too_large",
            "error=forbidden_header",
            "error=invalid_url",
            "error=relay_header_invalid",
        ],
    )
    .await;
    for plain in ["/upload", "/echo", "/headers", "/login", "/events"] {
        assert!(!log.contains(plain), "log shows the sealed path {plain}");
    }
    needles.assert_absent(&log, "relay");
}

/// Redis refusing the relay's password: readiness and pairing fail with 503, and the store
/// errors the relay logs (at warn) hold neither the password it sent nor the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_errors_do_not_log_the_redis_url_or_password() {
    let redis = RedisServer::start_with(free_port(), &["--requirepass", REDIS_PASSWORD]);
    let wrong = "wrongpw-LEAKCHECK-8d2c4e6f0a1b";
    let redis_url = format!("redis://user-LEAKCHECK:{wrong}@127.0.0.1:{}/", redis.port);
    let upstream = Upstream::start();
    let relay = Relay::start(
        &upstream.url(),
        &[
            ("DEBUG", "true"),
            ("REDIS_URL", &redis_url),
            ("REDIS_TIMEOUT_MS", "500"),
        ],
    );
    let resp = crate::util::get(&relay, "/api/mte-ready").await;
    assert_eq!(resp.status(), 503);
    let c = relay_client(&relay.url(""));
    let err = c
        .get("/echo")
        .send()
        .await
        .expect_err("no pair without Redis");
    assert_eq!(err.relay_status(), Some(503), "{err}");
    let log = wait_all(&relay, &["\"POST /api/mte-pair\" 503", "readiness: "]).await;
    let mut needles = Needles::default();
    needles.text("Redis password", wrong);
    needles.text("Redis user", "user-LEAKCHECK");
    needles.text("Redis URL", &redis_url);
    needles.assert_absent(&log, "relay");
}

/// Outbound mode: relay A (plain in, `OUTBOUND_TOKEN`) seals to relay B; neither logs the
/// token, a key-bearing value, a body or a sealed header value; B logs no plain path or query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_debug_logs_hold_no_token_or_plaintext() {
    let upstream = Upstream::start();
    let b = Relay::start(
        &upstream.url(),
        &[("DEBUG", "true"), ("CLIENT_ID_SECRET", CLIENT_ID_SECRET)],
    );
    let b_url = b.url("");
    let a = Relay::start(
        &upstream.url(),
        &[
            ("DEBUG", "true"),
            ("OUTBOUND_TOKEN", OUTBOUND_TOKEN),
            ("OUTBOUND_UPSTREAMS", &b_url),
        ],
    );
    let out = |method: reqwest::Method, path: &str| {
        client()
            .request(method, a.url(path))
            .header("x-mte-outbound-token", OUTBOUND_TOKEN)
            .header("x-mte-upstream", &b_url)
            .header(HEADER_NAME, HEADER_VALUE)
    };
    let resp = out(reqwest::Method::GET, &format!("/echo?msg={QUERY_MARK}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains(QUERY_MARK));
    let resp = out(reqwest::Method::POST, &format!("/upload?{QUERY_MARK}"))
        .body(BODY_MARK.repeat(20_000))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
    // A wrong token and a host outside OUTBOUND_UPSTREAMS are refused.
    let resp = client()
        .get(a.url("/echo"))
        .header("x-mte-outbound-token", format!("{OUTBOUND_TOKEN}x"))
        .header("x-mte-upstream", &b_url)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    let resp = client()
        .get(a.url("/echo"))
        .header("x-mte-outbound-token", OUTBOUND_TOKEN)
        .header("x-mte-upstream", "http://127.0.0.1:1")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());

    let mut needles = Needles::default();
    needles.text("OUTBOUND_TOKEN", OUTBOUND_TOKEN);
    needles.text("CLIENT_ID_SECRET", CLIENT_ID_SECRET);
    for m in [HEADER_VALUE, BODY_MARK, QUERY_MARK] {
        needles.0.push(("plaintext marker".into(), m.into()));
    }
    let a_log = wait_all(
        &a,
        &[
            "\"GET /echo\" 200",
            "\"POST /upload\" 200",
            "route=outbound",
        ],
    )
    .await;
    needles.assert_absent(&a_log, "relay A");
    needles.plaintext();
    let b_log = wait_all(&b, &["\"POST /api/mte-pair\" 200", "route=mte"]).await;
    for plain in ["/upload", "/echo"] {
        assert!(!b_log.contains(plain), "relay B's log shows {plain}");
    }
    needles.assert_absent(&b_log, "relay B");
}

/// The needles find a key inside a longer encoded value at any offset (else the tests above
/// could pass while a log held a whole state blob).
#[test]
fn needles_find_a_key_inside_a_longer_encoded_blob() {
    let key: Vec<u8> = (100..132).collect();
    let mut needles = Needles::default();
    needles.bytes("key", &key);
    for offset in 0..6 {
        let mut blob = vec![0xA5u8; offset];
        blob.extend_from_slice(&key);
        blob.extend_from_slice(&[7; 5]);
        for encoded in [
            URL_SAFE_NO_PAD.encode(&blob),
            STANDARD.encode(&blob),
            blob.iter().map(|b| format!("{b:02X}")).collect(),
            format!("{blob:?}"),
        ] {
            assert!(
                needles.any_in(&format!("x={encoded} y")),
                "{offset}: {encoded}"
            );
        }
    }
    assert!(!needles.any_in(&URL_SAFE_NO_PAD.encode([0u8; 40])));
}
