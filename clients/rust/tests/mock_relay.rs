//! The client against a mock relay on loopback built from the protocol crate's relay side:
//! discovery, pairing, exchanges, recovery from 564, pool bounds under concurrency, token
//! rotation. (End-to-end tests against the real relay live in the root `tests/`.)

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use pqrelay_client::{Body, Error, Method, RelayClient, WireEvent};
use pqrelay_protocol::{
    client_id, encoded_len, open_headers, open_url, plain_len, seal_headers, ClientId,
    ClientIdToken, ExchangeHeader, Flags, MessageContext, PairId, PairingRequest, PairingResponse,
    RelayHeader, ServerPair, StreamDecoder, StreamEncoder, MAX_SKIP,
};

#[derive(Default)]
struct Relay {
    pairs: Mutex<HashMap<(ClientId, PairId), ServerPair>>,
    next_id: AtomicU8,
    fail_next: AtomicU32,
    rejected: AtomicU32,
    /// 0: sign with "old"; 1: sign with "new" and accept "old".
    rotated: AtomicU8,
}

type Resp = Response<Full<Bytes>>;

impl Relay {
    fn secrets(&self) -> Vec<&'static [u8]> {
        if self.rotated.load(Ordering::SeqCst) == 1 {
            vec![b"new", b"old"]
        } else {
            vec![b"old"]
        }
    }

    fn verify(&self, token: &ClientIdToken) -> Option<client_id::VerifiedClientId> {
        client_id::verify(&self.secrets(), token).ok()
    }

    fn error(status: u16, code: &str) -> Resp {
        Response::builder()
            .status(status)
            .header("x-mte-relay-error", code)
            .body(Full::new(Bytes::from(format!(
                r#"{{"status":{status},"error":"{code}","message":"mock"}}"#
            ))))
            .unwrap()
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Resp, Infallible> {
        let (parts, body) = req.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        let relay = parts
            .headers
            .get("x-mte-relay")
            .and_then(|v| v.to_str().ok());
        let parsed = relay.and_then(|v| RelayHeader::parse(v).ok());
        Ok(match (parts.method.as_str(), parts.uri.path()) {
            ("HEAD", "/api/mte-relay") => {
                let token = match parsed {
                    Some(RelayHeader::Discovery { token }) => self.verify(&token).map(|v| v.token),
                    _ => None,
                };
                let token = token.unwrap_or_else(|| {
                    let n = self.next_id.fetch_add(1, Ordering::SeqCst);
                    client_id::issue(self.secrets()[0], ClientId([n; 16]))
                });
                Response::builder()
                    .header("x-mte-relay", format!("1.{token}"))
                    .header(
                        "x-mte-relay-info",
                        "versions=1;max-pairs=10;chunk-size=65536;max-skip=16",
                    )
                    .body(Full::default())
                    .unwrap()
            }
            ("POST", "/api/mte-pair") => {
                let Some(RelayHeader::Discovery { token }) = parsed else {
                    return Ok(Self::error(560, "client_id_missing"));
                };
                let Some(v) = self.verify(&token) else {
                    return Ok(Self::error(566, "invalid_client_id"));
                };
                let request = PairingRequest::parse(&body, 10).unwrap();
                let mut out = Vec::new();
                for (pid, ek) in &request.pairs {
                    let (ct, state) = ServerPair::pair(&v.id, pid, ek, &[pid.0[0]; 64]);
                    self.pairs.lock().unwrap().insert((v.id, *pid), state);
                    out.push((*pid, ct));
                }
                Response::builder()
                    .header("x-mte-relay", format!("1.{}", v.token))
                    .body(Full::new(PairingResponse { pairs: out }.encode().into()))
                    .unwrap()
            }
            _ => {
                let Some(RelayHeader::Exchange(h)) = parsed else {
                    return Ok(Self::error(561, "relay_header_invalid"));
                };
                let Some(v) = self.verify(&h.token) else {
                    return Ok(Self::error(566, "invalid_client_id"));
                };
                if self.fail_next.load(Ordering::SeqCst) > 0 {
                    self.fail_next.fetch_sub(1, Ordering::SeqCst);
                    return Ok(Self::error(564, "counter_rejected"));
                }
                let Some(state) = self.pairs.lock().unwrap().remove(&(v.id, h.pair_id)) else {
                    return Ok(Self::error(563, "state_not_found"));
                };
                let Ok((keys, next)) = state.accept(h.counter, MAX_SKIP) else {
                    self.rejected.fetch_add(1, Ordering::SeqCst);
                    return Ok(Self::error(564, "counter_rejected"));
                };
                self.pairs.lock().unwrap().insert((v.id, h.pair_id), next);
                let target = parts.uri.path_and_query().unwrap().as_str();
                let method = parts.method.as_str();
                let ctx =
                    MessageContext::request(v.id, h.pair_id, h.counter, h.flags, method, target)
                        .unwrap();
                let url = if h.flags.contains(Flags::URL) {
                    open_url(&keys.request, &ctx, target).unwrap()
                } else {
                    target.to_owned()
                };
                let eh = parts.headers["x-mte-relay-eh"].to_str().unwrap();
                let headers = open_headers(&keys.request, &ctx, eh).unwrap();
                let mut plain = Vec::new();
                if h.flags.contains(Flags::BODY) {
                    let expected = parts
                        .headers
                        .get("content-length")
                        .map(|v| plain_len(v.to_str().unwrap().parse().unwrap()).unwrap());
                    let mut dec = StreamDecoder::new(&keys.request, &ctx, expected);
                    dec.push(&body, &mut plain).unwrap();
                    dec.finish().unwrap();
                }
                let echo = serde_json::json!({
                    "method": method, "url": url, "headers": headers, "body_len": plain.len(),
                    "streaming": h.flags.contains(Flags::STREAMING),
                })
                .to_string();
                let mut flags = Flags::HEADERS | Flags::BODY;
                if h.flags.contains(Flags::URL) {
                    flags = flags | Flags::URL;
                }
                let rctx = ctx.response(200, flags);
                let reh = seal_headers(
                    &keys.response,
                    &rctx,
                    [("content-type", "application/json")],
                );
                let mut wire = Vec::new();
                let mut enc = StreamEncoder::new(&keys.response, &rctx, Some(echo.len() as u64));
                enc.push(echo.as_bytes(), &mut wire).unwrap();
                enc.finish(&mut wire).unwrap();
                assert_eq!(Some(wire.len() as u64), encoded_len(echo.len() as u64));
                let token = v.token.clone();
                let relay = ExchangeHeader {
                    token,
                    pair_id: h.pair_id,
                    counter: h.counter,
                    flags,
                };
                Response::builder()
                    .header("x-mte-relay", relay.encode())
                    .header("x-mte-relay-eh", HeaderValue::from_str(&reh).unwrap())
                    .header("content-type", "application/octet-stream")
                    .body(Full::new(wire.into()))
                    .unwrap()
            }
        })
    }
}

/// Starts the mock relay (or, with `not_relay`, a server answering 404) on loopback.
async fn start(relay: Arc<Relay>, not_relay: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let relay = relay.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let relay = relay.clone();
                    async move {
                        if not_relay {
                            let mut r = Response::new(Full::default());
                            *r.status_mut() = StatusCode::NOT_FOUND;
                            return Ok::<_, Infallible>(r);
                        }
                        relay.handle(req).await
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

fn events(log: &Arc<Mutex<Vec<WireEvent>>>) -> impl Fn(&WireEvent) + Send + Sync + 'static {
    let log = log.clone();
    move |e| log.lock().unwrap().push(e.clone())
}

#[tokio::test]
async fn mock_round_trip_seals_everything() {
    let relay = Arc::new(Relay::default());
    let url = start(relay.clone(), false).await;
    let log = Arc::new(Mutex::new(Vec::new()));
    let client = RelayClient::builder(url)
        .observer(events(&log))
        .build()
        .unwrap();
    let resp = client
        .request(Method::POST, "/api/x?y=1")
        .header("content-type", "application/json")
        .header("authorization", "Bearer secret")
        .body(r#"{"a":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let echo: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(echo["url"], "/api/x?y=1");
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["body_len"], 7);
    assert_eq!(echo["headers"][1][1], "Bearer secret");

    let stats = client.stats();
    assert_eq!(
        (
            stats.discoveries,
            stats.pool.pairings,
            stats.pool.pairs_created
        ),
        (1, 1, 5)
    );
    assert_eq!(
        (stats.pool.in_use, stats.pool.idle),
        (0, 5),
        "the pair came back"
    );
    let log = log.lock().unwrap();
    let sent = log.iter().find_map(|e| match e {
        WireEvent::Request {
            target,
            relay_header,
            sealed_headers,
            ..
        } => Some((target.clone(), relay_header.clone(), sealed_headers.clone())),
        _ => None,
    });
    let (target, relay_header, sealed) = sent.unwrap();
    for wire in [&target, &relay_header, &sealed] {
        assert!(
            !wire.contains("api/x") && !wire.contains("Bearer"),
            "{wire}"
        );
    }
    assert!(log
        .iter()
        .any(|e| matches!(e, WireEvent::ResponseBody { plain_len, .. } if *plain_len > 0)));
}

#[tokio::test]
async fn mock_recovers_from_564_by_repairing_and_retrying_once() {
    let relay = Arc::new(Relay::default());
    let url = start(relay.clone(), false).await;
    let client = RelayClient::builder(url).pairs(2).build().unwrap();
    client.connect().await.unwrap();
    relay.fail_next.store(1, Ordering::SeqCst);
    let resp = client.get("/a").send().await.unwrap();
    assert!(!resp.bytes().await.unwrap().is_empty());
    let stats = client.stats();
    assert_eq!(stats.retries, 1);
    assert_eq!(stats.pool.pairs_discarded, 1);

    // Twice in a row: retried once, then the error comes back.
    relay.fail_next.store(2, Ordering::SeqCst);
    let err = client.get("/a").send().await.unwrap_err();
    assert!(matches!(err, Error::Relay { status: 564, .. }), "{err}");

    // A streamed body cannot be replayed: no retry.
    relay.fail_next.store(1, Ordering::SeqCst);
    let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"abc"))]);
    let err = client
        .post("/s")
        .body(Body::stream(stream))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.relay_status(), Some(564));
    assert_eq!(client.stats().retries, 2);
}

#[tokio::test]
async fn mock_streamed_bodies_sized_and_chunked() {
    let relay = Arc::new(Relay::default());
    let url = start(relay, false).await;
    let client = RelayClient::builder(url).build().unwrap();
    let pieces = || {
        futures_util::stream::iter(
            (0..4).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![1u8; 50_000]))),
        )
    };
    for (body, streaming) in [
        (Body::sized_stream(pieces(), 200_000), false),
        (Body::stream(pieces()), true),
    ] {
        let resp = client.post("/u").body(body).send().await.unwrap();
        let echo: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(echo["body_len"].as_u64(), Some(200_000));
        assert_eq!(echo["streaming"].as_bool(), Some(streaming));
    }
}

#[tokio::test]
async fn mock_concurrent_requests_never_share_a_pair_and_respect_the_bound() {
    let relay = Arc::new(Relay::default());
    let url = start(relay.clone(), false).await;
    let client = RelayClient::builder(url)
        .pairs(3)
        .max_pairs(8)
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let resp = client
                    .post(format!("/c/{i}"))
                    .body(vec![0u8; 1000])
                    .send()
                    .await?;
                resp.bytes().await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let stats = client.stats();
    assert_eq!(
        relay.rejected.load(Ordering::SeqCst),
        0,
        "no counter was ever used twice"
    );
    assert_eq!(stats.retries, 0);
    assert!(stats.pool.pairs_created <= 8, "{stats:?}");
    assert_eq!(stats.pool.in_use, 0);
}

#[tokio::test]
async fn mock_token_rotation_is_stored() {
    let relay = Arc::new(Relay::default());
    let url = start(relay.clone(), false).await;
    let client = RelayClient::builder(url).build().unwrap();
    client.get("/").send().await.unwrap().bytes().await.unwrap();
    let before = client.token().unwrap();
    relay.rotated.store(1, Ordering::SeqCst);
    client.get("/").send().await.unwrap().bytes().await.unwrap();
    let after = client.token().unwrap();
    assert_ne!(before, after);
    assert_eq!(
        before[..21],
        after[..21],
        "same client id (the first 21 characters are its 16 bytes)"
    );
    assert_eq!(client.stats().token_updates, 1);
    // The pairs stay valid under the re-signed token.
    client.get("/").send().await.unwrap().bytes().await.unwrap();
    assert_eq!(client.stats().pool.pairings, 1);
}

#[tokio::test]
async fn mock_not_a_relay_is_reported() {
    let url = start(Arc::new(Relay::default()), true).await;
    let client = RelayClient::builder(url).build().unwrap();
    let err = client.get("/").send().await.unwrap_err();
    assert!(matches!(err, Error::NotARelay { status: 404 }), "{err}");
    assert!(err.to_string().contains("not a pqrelay"));
}
