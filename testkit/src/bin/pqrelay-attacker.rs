//! `pqrelay-attacker`: an active attacker on the wire between a pqrelay client and a relay (a
//! TLS-terminating middlebox that sees and changes everything), for the tests that prove what
//! PROTOCOL.md §16 rules out.
//!
//! ```text
//! pqrelay-attacker --listen 127.0.0.1:PORT --relay http://127.0.0.1:RELAY_PORT --mode MODE [--times N]
//! ```
//!
//! Prints `attacker listening at http://127.0.0.1:PORT` once it listens. Modes:
//!
//! - `pass`: forwards everything unchanged.
//! - `substitute-key`: discovery answers carry the attacker's own relay key instead of the
//!   relay's; a pairing request to that key is answered by the attacker (it holds the key), so a
//!   client that trusts whatever it is shown pairs with the attacker.
//! - `answer-pairing`: discovery passes; the attacker answers pairing requests itself, with its
//!   own `ct` and a `confirm` it cannot make right (it lacks the relay key).
//! - `forge-error`: forwards the first N exchange requests to the relay (the upstream runs
//!   them), drops the sealed answers and answers each with a forged plain `562 decode_failed`.
//! - `cut`: forwards the first N exchange requests, reads the relay's answers, then closes the
//!   client's connection without an answer.
//! - `add-headers`: adds plain `x-http-method-override: DELETE`, `x-original-url: /admin`,
//!   `x-forwarded-for: 6.6.6.6` and `x-attacker: 1` to every request.
//!
//! An exchange request is one whose `x-mte-relay` has five fields. Loopback only.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use pqrelay_protocol::names::{KEYS_HEADER, PAIRING_PATH, RELAY_HEADER};
use pqrelay_protocol::{
    answer_pairing, ClientId, DecapsulationSeed, PairingRequest, PairingResponse, RelayKey,
    RelayKeySet,
};

/// What the attacker does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pass,
    SubstituteKey,
    AnswerPairing,
    ForgeError,
    Cut,
    AddHeaders,
}

/// The attacker's state, shared by every connection.
struct Attacker {
    mode: Mode,
    relay: String,
    times: usize,
    exchanges: AtomicUsize,
    key: RelayKeySet,
    http: Client<HttpConnector, Full<Bytes>>,
}

type Reply = Response<Full<Bytes>>;

/// Bodies are read whole (tests send small ones).
const MAX_BODY: usize = 64 * 1024 * 1024;

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).expect("OS randomness");
    b
}

fn reply(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Reply {
    let mut r = Response::builder().status(status);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.body(Full::new(body.into())).unwrap_or_default()
}

impl Attacker {
    /// Forwards a request to the relay and reads the whole answer.
    async fn forward(&self, parts: &hyper::http::request::Parts, body: Bytes) -> Option<Reply> {
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut req = Request::builder()
            .method(parts.method.clone())
            .uri(format!("{}{path}", self.relay));
        for (name, value) in &parts.headers {
            if !matches!(
                name.as_str(),
                "host" | "connection" | "keep-alive" | "transfer-encoding"
            ) {
                req = req.header(name, value);
            }
        }
        if self.mode == Mode::AddHeaders {
            for (k, v) in [
                ("x-http-method-override", "DELETE"),
                ("x-original-url", "/admin"),
                ("x-forwarded-for", "6.6.6.6"),
                ("x-attacker", "1"),
            ] {
                req = req.header(k, v);
            }
        }
        let resp = self
            .http
            .request(req.body(Full::new(body)).ok()?)
            .await
            .ok()?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.ok()?.to_bytes();
        let mut out = Response::from_parts(parts, Full::new(body));
        out.headers_mut().remove("transfer-encoding");
        Some(out)
    }

    /// The attacker's own answer to a pairing request: a pairing with its own key when the
    /// client chose it, else its own `ct` with a `confirm` that cannot verify.
    fn answer_pairing(&self, parts: &hyper::http::request::Parts, body: &[u8]) -> Reply {
        let Ok(request) = PairingRequest::parse(body, 255) else {
            return reply(400, &[], "bad pairing request");
        };
        let token = parts
            .headers
            .get(RELAY_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("2."))
            .and_then(|t| pqrelay_protocol::ClientIdToken::parse(t).ok());
        let id = token.as_ref().map_or(ClientId([0; 16]), |t| t.id());
        let answer = match answer_pairing(&id, &self.key, &request, &random()) {
            Ok(answered) => answered.body,
            Err(_) => {
                let (ct, _) = request.ek.encapsulate(&random());
                let forged = PairingResponse {
                    ct,
                    keys: vec![request.key],
                    confirm: random(),
                };
                forged.encode()
            }
        };
        let relay = parts
            .headers
            .get(RELAY_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        reply(
            200,
            &[("content-type", "application/json"), (RELAY_HEADER, relay)],
            answer,
        )
    }

    async fn handle(&self, req: Request<Incoming>) -> Result<Reply, std::io::Error> {
        let (parts, body) = req.into_parts();
        let body = http_body_util::Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|_| std::io::Error::other("request body"))?
            .to_bytes();
        let exchange = parts
            .headers
            .get(RELAY_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split('.').count() == 5);
        let pairing = parts.uri.path() == PAIRING_PATH;
        let tamper = exchange && self.exchanges.fetch_add(1, Ordering::SeqCst) < self.times;
        match self.mode {
            Mode::AnswerPairing if pairing => return Ok(self.answer_pairing(&parts, &body)),
            Mode::SubstituteKey if pairing => {
                let ours = PairingRequest::parse(&body, 255)
                    .is_ok_and(|r| self.key.find(&r.key).is_some());
                if ours {
                    return Ok(self.answer_pairing(&parts, &body));
                }
            }
            _ => {}
        }
        let mut answer = self
            .forward(&parts, body)
            .await
            .ok_or_else(|| std::io::Error::other("the relay did not answer"))?;
        match self.mode {
            Mode::SubstituteKey if answer.headers().contains_key(KEYS_HEADER) => {
                let keys = self.key.header_value();
                let value = keys.parse().map_err(std::io::Error::other)?;
                answer.headers_mut().insert(KEYS_HEADER, value);
            }
            Mode::ForgeError if tamper => {
                let body = r#"{"status":562,"error":"decode_failed","message":"a sealed item did not open"}"#;
                let headers = [
                    ("content-type", "application/json"),
                    ("x-mte-relay-error", "decode_failed"),
                ];
                answer = reply(562, &headers, body);
            }
            // An error from the service makes hyper close the connection without an answer.
            Mode::Cut if tamper => return Err(std::io::Error::other("cut")),
            _ => {}
        }
        Ok(answer)
    }
}

fn parse_args() -> Result<(String, String, Mode, usize), String> {
    let mut listen = None;
    let mut relay = None;
    let mut mode = None;
    let mut times = 1;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or(format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--listen" => listen = Some(value),
            "--relay" => relay = Some(value.trim_end_matches('/').to_owned()),
            "--times" => times = value.parse().map_err(|_| "--times takes a number")?,
            "--mode" => {
                mode = Some(match value.as_str() {
                    "pass" => Mode::Pass,
                    "substitute-key" => Mode::SubstituteKey,
                    "answer-pairing" => Mode::AnswerPairing,
                    "forge-error" => Mode::ForgeError,
                    "cut" => Mode::Cut,
                    "add-headers" => Mode::AddHeaders,
                    other => return Err(format!("unknown mode {other}")),
                })
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok((
        listen.unwrap_or_else(|| "127.0.0.1:0".into()),
        relay.ok_or("--relay is required")?,
        mode.ok_or("--mode is required")?,
        times,
    ))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (listen, relay, mode, times) = parse_args().unwrap_or_else(|e| {
        eprintln!("pqrelay-attacker: {e}\nusage: pqrelay-attacker --listen ADDR --relay URL --mode MODE [--times N]");
        std::process::exit(2);
    });
    let key = RelayKey::from_seed(&DecapsulationSeed::from_bytes(random()));
    let attacker = Arc::new(Attacker {
        mode,
        relay,
        times,
        exchanges: AtomicUsize::new(0),
        key: RelayKeySet::new(vec![key]).expect("one key"),
        http: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
    });
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .expect("cannot listen");
    let addr = listener.local_addr().expect("a local address");
    println!("attacker listening at http://{addr}");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let attacker = attacker.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let attacker = attacker.clone();
                async move { attacker.handle(req).await }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
