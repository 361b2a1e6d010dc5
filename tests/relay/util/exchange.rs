//! Helpers for the exchange tests: the Rust client against a real relay, hand-made exchanges
//! with the protocol crate (for tampering), a recording upstream that never answers, raw
//! upstreams, and relay memory readings (the recording TCP tap, `redis-server` processes, test
//! bodies and digests: `pqrelay_testkit`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pqrelay_client::{Method, RelayClient};
use pqrelay_protocol::{
    seal_headers, seal_url, ClientId, ClientIdToken, ClientPair, ClientPairing, DecapsulationSeed,
    ExchangeHeader, ExchangeKeys, Flags, KeyId, MessageContext, PairId, PairingResponse,
    RelayKeyConfig, RelayKeys, StreamEncoder,
};
use pqrelay_testkit::{pattern, proc_status_kib};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{client, Relay};

/// A client with a small pool against `relay` (or any base URL).
pub fn relay_client(base: &str) -> RelayClient {
    RelayClient::builder(base).pairs(2).build().expect("client")
}

/// The peak resident set size (`VmHWM`) of a process, in KiB (0 if unreadable).
pub fn vm_hwm_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmHWM").unwrap_or(0)
}

/// A pair made by hand: discovery and pairing over plain HTTP, then exchanges sealed with the
/// protocol crate, so tests can tamper with any byte.
pub struct HandPair {
    pub token: ClientIdToken,
    pub pid: PairId,
    pub pair: Option<ClientPair>,
    /// The relay key the pair was made with.
    pub key: KeyId,
}

impl HandPair {
    /// Discovers (with `token` if given) and pairs one pair with the relay's current key.
    pub async fn new(relay: &Relay, token: Option<&str>) -> HandPair {
        Self::with_pins(relay, token, &[]).await
    }

    /// [`HandPair::new`] with the relay keys the client trusts (`&[]`: the first offered).
    pub async fn with_pins(relay: &Relay, token: Option<&str>, pins: &[KeyId]) -> HandPair {
        Self::with_secrets(relay, token, pins, random(), random())
            .await
            .0
    }

    /// [`HandPair::with_pins`] with given randomness (the ephemeral key's seed, the
    /// encapsulation to the relay key); also returns the pairing answer (with them, a test can
    /// derive every secret of the pairing).
    pub async fn with_secrets(
        relay: &Relay,
        token: Option<&str>,
        pins: &[KeyId],
        seed_e: [u8; 32],
        eseed_r: [u8; 64],
    ) -> (HandPair, PairingAnswer) {
        let (token, offered) = discovered(relay, token).await;
        let key = offered.choose(pins).expect("a trusted key").clone();
        let pid = PairId(random());
        let seed = DecapsulationSeed::from_bytes(seed_e);
        let pending = ClientPairing::new(token.id(), &key, &eseed_r, &seed, vec![pid])
            .expect("pairing request");
        let resp = send_pairing(relay, &token, &pending).await;
        assert_eq!(resp.status(), 200, "pairing");
        let body = resp.bytes().await.unwrap();
        let answer = PairingAnswer {
            response: PairingResponse::parse(&body).expect("pairing answer"),
            relay_key: key.clone(),
        };
        let mut confirmed = pending.complete(&body).expect("confirmed by the relay key");
        let (pid, pair) = confirmed.pairs.remove(0);
        let pair = HandPair {
            token,
            pid,
            pair: Some(pair),
            key: key.id(),
        };
        (pair, answer)
    }

    /// The next exchange's keys (the pair moves on).
    pub fn next(&mut self) -> ExchangeKeys {
        let (keys, pair) = self.pair.take().unwrap().next_exchange().unwrap();
        self.pair = Some(pair);
        keys
    }

    pub fn client_id(&self) -> ClientId {
        self.token.id()
    }
}

/// What a hand-made pairing was answered, and the relay key it used.
pub struct PairingAnswer {
    /// The parsed answer (`ct_E`, the relay's key ids, `confirm`).
    pub response: PairingResponse,
    /// The relay key configuration the client encapsulated to.
    pub relay_key: RelayKeyConfig,
}

/// A hand-sealed request: method, wire target, headers and wire body.
pub struct Sealed {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub keys: ExchangeKeys,
    pub context: MessageContext,
}

/// Discovery (with `token` if given): the client id token the relay issued and the relay keys
/// it offers.
pub async fn discovered(relay: &Relay, token: Option<&str>) -> (ClientIdToken, RelayKeys) {
    let sent = token.map(|t| format!("2.{t}"));
    let resp = discovery(relay, sent.as_deref()).await;
    let value = resp.headers()["x-mte-relay"].to_str().unwrap().to_owned();
    let token = ClientIdToken::parse(value.trim_start_matches("2.")).expect("token");
    let keys = resp.headers()["x-mte-relay-keys"].to_str().unwrap();
    (token, RelayKeys::parse(keys).expect("relay keys"))
}

/// Sends `pending`'s pairing request under `token`.
pub async fn send_pairing(
    relay: &Relay,
    token: &ClientIdToken,
    pending: &ClientPairing,
) -> reqwest::Response {
    client()
        .post(relay.url("/api/mte-pair"))
        .header("x-mte-relay", format!("2.{}", token.encode()))
        .header("content-type", "application/json")
        .body(pending.request_body().to_vec())
        .send()
        .await
        .expect("pairing")
}

/// Random bytes from the OS.
pub fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).unwrap();
    b
}

/// A discovery answer (`sent`: the `x-mte-relay` value to send).
pub async fn discovery(relay: &Relay, sent: Option<&str>) -> reqwest::Response {
    let mut req = client().head(relay.url("/api/mte-relay"));
    if let Some(v) = sent {
        req = req.header("x-mte-relay", v);
    }
    let resp = req.send().await.expect("discovery");
    assert_eq!(resp.status(), 200);
    resp
}

/// Seals `method path` with `headers` and an optional sized `body`, URL sealed.
pub fn seal_request(
    p: &mut HandPair,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Sealed {
    seal_request_flags(p, method, path, headers, body, Flags::empty())
}

/// [`seal_request`] with `extra` flags (e.g. [`Flags::RETRY`]).
pub fn seal_request_flags(
    p: &mut HandPair,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    extra: Flags,
) -> Sealed {
    let keys = p.next();
    let mut flags = Flags::URL | Flags::HEADERS | extra;
    if body.is_some() {
        flags = flags | Flags::BODY;
    }
    let ctx =
        MessageContext::request(p.client_id(), p.pid, keys.counter, flags, method, "").unwrap();
    let target = seal_url(&keys.request, &ctx, path).unwrap();
    let eh = seal_headers(&keys.request, &ctx, headers.iter().copied());
    let relay = ExchangeHeader {
        token: p.token.clone(),
        pair_id: p.pid,
        counter: keys.counter,
        flags,
    }
    .encode();
    let wire_body = body.map(|b| {
        let mut out = Vec::new();
        let mut enc = StreamEncoder::new(&keys.request, &ctx, Some(b.len() as u64));
        enc.push(b, &mut out).unwrap();
        enc.finish(&mut out).unwrap();
        out
    });
    let mut wire_headers = vec![
        ("x-mte-relay".to_owned(), relay),
        ("x-mte-relay-eh".to_owned(), eh),
    ];
    if wire_body.is_some() {
        wire_headers.push(("content-type".into(), "application/octet-stream".into()));
    }
    Sealed {
        method: method.into(),
        target,
        headers: wire_headers,
        body: wire_body,
        keys,
        context: ctx,
    }
}

/// Sends a hand-sealed request with reqwest (sized body).
pub async fn send_sealed(relay: &Relay, s: &Sealed) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(s.method.as_bytes()).unwrap();
    let mut req = client().request(method, relay.url(&s.target));
    for (k, v) in &s.headers {
        req = req.header(k, v);
    }
    if let Some(b) = &s.body {
        req = req.body(b.clone());
    }
    req.send().await.expect("request")
}

/// Opens the sealed answer to `s`: status, decoded headers and plain body.
pub async fn open_answer(
    s: &Sealed,
    resp: reqwest::Response,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let status = resp.status().as_u16();
    let value = resp.headers()["x-mte-relay"].to_str().unwrap().to_owned();
    let h = pqrelay_protocol::RelayHeader::parse_response(&value)
        .unwrap()
        .into_exchange()
        .unwrap();
    let rctx = s.context.response(status, h.flags);
    let eh = resp.headers()["x-mte-relay-eh"]
        .to_str()
        .unwrap()
        .to_owned();
    let headers = pqrelay_protocol::open_headers(&s.keys.response, &rctx, &eh).unwrap();
    let wire = resp.bytes().await.unwrap();
    let mut body = Vec::new();
    if h.flags.contains(Flags::BODY) {
        let mut dec = pqrelay_protocol::StreamDecoder::new(&s.keys.response, &rctx, None);
        dec.push(&wire, &mut body).unwrap();
        dec.finish().unwrap();
    }
    (status, headers, body)
}

/// Sends raw bytes on a new connection and returns what came back until the relay closed or
/// `wait` passed.
pub async fn send_raw(port: u16, bytes: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// An upstream that records what it receives and never answers: any byte it sees came from
/// the relay, and a request it sees cannot have been answered.
pub struct Recorder {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<u8>>>,
    pub connections: Arc<Mutex<usize>>,
}

impl Recorder {
    pub async fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let (r, c) = (received.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                *c.lock().unwrap() += 1;
                let r = r.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        r.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                });
            }
        });
        Recorder {
            addr,
            received,
            connections,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// `GET /headers` through the client: what the upstream saw.
pub async fn upstream_view(c: &RelayClient, path: &str) -> serde_json::Value {
    let resp = c.request(Method::GET, path).send().await.expect("send");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json")
}

/// Pairs one pair by hand with the client id in `relay_value` (`1.<token>`), then sends one
/// sealed `GET path` carrying exactly that token; returns the response.
pub async fn sealed_get_with_token(
    relay: &Relay,
    relay_value: &str,
    path: &str,
) -> reqwest::Response {
    let token = relay_value.trim_start_matches("2.");
    let mut p = HandPair::new(relay, Some(token)).await;
    p.token = ClientIdToken::parse(token).expect("token");
    let s = seal_request(&mut p, "GET", path, &[], None);
    send_sealed(relay, &s).await
}

/// Serves every connection of a loopback listener with `handle`; returns the base URL.
async fn serve_raw<F, Fut>(handle: F) -> String
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(handle(s));
        }
    });
    format!("http://{addr}")
}

/// Reads until the end of a request head (`\r\n\r\n`) into `seen`; `false` on EOF or error.
async fn read_head(s: &mut TcpStream, seen: &mut Vec<u8>) -> bool {
    let mut buf = vec![0u8; 65536];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    true
}

/// An upstream that answers every request with the same raw response (after reading the
/// request head), keeping the connection open.
pub async fn fixed_upstream(response: &'static [u8]) -> String {
    serve_raw(move |mut s| async move {
        let mut seen = Vec::new();
        while read_head(&mut s, &mut seen).await {
            let end = seen.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0);
            seen.drain(..end + 4);
            if s.write_all(response).await.is_err() {
                return;
            }
        }
    })
    .await
}

/// An upstream that answers every request with `len` bytes of [`pattern`]-like data, sent in
/// 64 KiB writes, with `content-length` (sized) or chunked (`sized = false`).
pub async fn big_upstream(len: u64, sized: bool) -> String {
    serve_raw(move |mut s| async move {
        if !read_head(&mut s, &mut Vec::new()).await {
            return;
        }
        let head = if sized {
            format!("HTTP/1.1 200 OK\r\ncontent-type: application/x-big\r\ncontent-length: {len}\r\n\r\n")
        } else {
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-big\r\ntransfer-encoding: chunked\r\n\r\n".to_owned()
        };
        if s.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let piece = pattern(65536);
        let mut left = len;
        while left > 0 {
            let n = left.min(65536) as usize;
            let mut out = Vec::with_capacity(n + 16);
            if !sized {
                out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
            }
            out.extend_from_slice(&piece[..n]);
            if !sized {
                out.extend_from_slice(b"\r\n");
            }
            if s.write_all(&out).await.is_err() {
                return;
            }
            left -= n as u64;
        }
        if !sized {
            let _ = s.write_all(b"0\r\n\r\n").await;
        }
        let _ = s.flush().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    })
    .await
}

/// `POST /upload` of `body` through the client; checks 200 and returns the upstream's
/// `{"size","sha256"}` answer.
pub async fn upload(c: &RelayClient, body: Vec<u8>) -> serde_json::Value {
    let len = body.len();
    let resp = c
        .post("/upload")
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{len}: {e}"));
    assert_eq!(resp.status(), 200, "{len}");
    resp.json().await.unwrap()
}
