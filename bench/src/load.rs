//! The load generator: `conns` workers, each one request at a time on its own keep-alive
//! connection, either as fast as possible (closed loop) or on a fixed schedule (open loop).
//!
//! Plain and relay traffic go through the same hyper client ([`pqrelay_client::http_client`]);
//! relay traffic adds the client's sealing on top, which is what a relay user pays too.
//!
//! Open loop: worker `i` of `n` sends at `start + (i/n + k) · n/rate` for k = 0, 1, …; when it
//! falls behind it sends at once, and latency is measured from the *intended* send time, so a
//! stalled server is charged for every request it delayed (no coordinated omission).
//!
//! Requests whose (intended) start lies in the measured window count, however late they end;
//! every worker stops by itself at the end of the window (plus one request timeout at most).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::header::CONTENT_TYPE;
use http::{Method, Request, Uri};
use http_body_util::BodyExt as _;
use pqrelay_client::{full_body, HttpClient, RelayClient};
use pqrelay_protocol::kem::SEED_SIZE;
use pqrelay_protocol::{
    ClientId, ClientPairing, DecapsulationSeed, PairId, PairingResponse, RelayKeyConfig, RelayKeys,
};

/// What the workers send.
pub(crate) enum Target {
    /// Plain HTTP `POST` of the body to `uri`.
    Plain {
        /// The shared hyper client.
        http: HttpClient,
        /// Full URL.
        uri: Uri,
    },
    /// Sealed `POST` of the body to `path` through the relay; one client (one pair) per worker.
    Relay {
        /// One per worker, all on one hyper client.
        clients: Vec<RelayClient>,
        /// Origin-form path.
        path: String,
    },
    /// `POST /api/mte-pair` of `pairs` fresh pairs; one client id per worker.
    Pairing {
        /// The shared hyper client.
        http: HttpClient,
        /// `http://relay/api/mte-pair`.
        uri: Uri,
        /// One token per worker.
        tokens: Vec<String>,
        /// Pairs per request.
        pairs: usize,
        /// Encapsulation keys to draw from.
        keys: Arc<KeyPool>,
    },
}

/// How to load a target.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    /// Concurrent workers (= connections).
    pub(crate) conns: usize,
    /// Time before the measured window (connections, pairs and caches warm up).
    pub(crate) warmup: Duration,
    /// The measured window.
    pub(crate) duration: Duration,
    /// Requests per second over all workers (open loop); `None`: closed loop.
    pub(crate) rate: Option<f64>,
    /// The request body.
    pub(crate) body: Bytes,
    /// The expected response body length, checked when set.
    pub(crate) expect_len: Option<usize>,
    /// A request slower than this is an error.
    pub(crate) timeout: Duration,
}

/// What a run measured.
pub(crate) struct Outcome {
    /// Successful requests in the window.
    pub(crate) ok: u64,
    /// Requests completed during the whole run, warm-up included (for CPU per request).
    pub(crate) sent: u64,
    /// Failed requests (status, length, transport, timeout) in the window.
    pub(crate) errors: u64,
    /// The first failure seen, if any.
    pub(crate) first_error: Option<String>,
    /// The measured window.
    pub(crate) window: Duration,
    /// Latency of the successful requests, in microseconds.
    pub(crate) hist: Histogram<u64>,
}

impl Outcome {
    /// Successful requests per second.
    pub(crate) fn rps(&self) -> f64 {
        self.ok as f64 / self.window.as_secs_f64()
    }

    /// Adds `other`'s requests (another window of the same load) to this one.
    pub(crate) fn merge(&mut self, other: &Outcome) {
        self.ok += other.ok;
        self.sent += other.sent;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error.clone();
        }
        self.window += other.window;
        let _ = self.hist.add(&other.hist);
    }

    /// Latency quantile `q` (0..1) in milliseconds.
    pub(crate) fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    /// Mean latency in milliseconds.
    pub(crate) fn mean_ms(&self) -> f64 {
        self.hist.mean() / 1000.0
    }

    /// One line: rate, latency quantiles, errors.
    pub(crate) fn summary(&self) -> String {
        let mut s = format!(
            "{:>9.0} req/s  p50 {:>7.2} ms  p90 {:>7.2}  p99 {:>7.2}  p99.9 {:>7.2}  max {:>8.2}",
            self.rps(),
            self.ms(0.5),
            self.ms(0.9),
            self.ms(0.99),
            self.ms(0.999),
            self.hist.max() as f64 / 1000.0
        );
        if self.errors > 0 {
            s.push_str(&format!(
                "  ERRORS {} (first: {})",
                self.errors,
                self.first_error.as_deref().unwrap_or("?")
            ));
        }
        s
    }
}

/// A pool of pairing request heads (the relay key, an encapsulation to it and an ephemeral
/// X-Wing key, base64), made once; pairing loads reuse them under fresh pair ids, so the load
/// generator spends its time on requests, not on key exchanges (the relay does all of its work
/// for every request: it cannot tell a reused head).
pub(crate) struct KeyPool {
    heads: Vec<String>,
}

impl KeyPool {
    /// `n` request heads to the relay key `key`.
    pub(crate) fn new(n: usize, key: &RelayKeyConfig) -> anyhow::Result<Self> {
        let heads = (0..n.max(1))
            .map(|_| {
                let seed = DecapsulationSeed::from_bytes(random::<SEED_SIZE>()?);
                let pids = vec![PairId(random::<16>()?)];
                let pairing = ClientPairing::new(ClientId([0; 16]), key, &random()?, &seed, pids)
                    .map_err(|e| anyhow::anyhow!("pairing request: {e}"))?;
                let body = std::str::from_utf8(pairing.request_body())?;
                let head = body.split(",\"pairs\":").next().context("a pairing body")?;
                Ok(head.to_owned())
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { heads })
    }

    /// A pairing body of `n` fresh pair ids, and those ids.
    pub(crate) fn body(&self, n: usize) -> anyhow::Result<(String, Vec<PairId>)> {
        let start = u32::from_le_bytes(random::<4>()?) as usize;
        let mut ids = Vec::with_capacity(n);
        let head = &self.heads[start % self.heads.len()];
        let mut s = String::with_capacity(head.len() + 16 + n * 25);
        s.push_str(head);
        s.push_str(",\"pairs\":[");
        for j in 0..n {
            let pid = PairId(random::<16>()?);
            if j > 0 {
                s.push(',');
            }
            s.push('"');
            s.push_str(&pid.to_b64());
            s.push('"');
            ids.push(pid);
        }
        s.push_str("]}");
        Ok((s, ids))
    }
}

/// `HEAD /api/mte-relay`: the relay's current key.
pub(crate) async fn relay_key(http: &HttpClient, base: &str) -> anyhow::Result<RelayKeyConfig> {
    let req = Request::head(format!("{base}/api/mte-relay"))
        .body(pqrelay_client::empty_body())
        .context("building the discovery request")?;
    let resp = http.request(req).await.context("discovery")?;
    let keys = resp
        .headers()
        .get("x-mte-relay-keys")
        .and_then(|v| v.to_str().ok())
        .context("discovery answered no x-mte-relay-keys header")?;
    let keys = RelayKeys::parse(keys).map_err(|e| anyhow::anyhow!("x-mte-relay-keys: {e}"))?;
    let key = keys
        .choose(&[])
        .map_err(|e| anyhow::anyhow!("x-mte-relay-keys: {e}"))?;
    Ok(key.clone())
}

/// `N` random bytes.
pub(crate) fn random<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).map_err(|e| anyhow::anyhow!("reading OS randomness: {e}"))?;
    Ok(b)
}

/// `HEAD /api/mte-relay`: a fresh client id token from the relay at `base`.
pub(crate) async fn discover(http: &HttpClient, base: &str) -> anyhow::Result<String> {
    let req = Request::head(format!("{base}/api/mte-relay"))
        .body(pqrelay_client::empty_body())
        .context("building the discovery request")?;
    let resp = http.request(req).await.context("discovery")?;
    let value = resp
        .headers()
        .get("x-mte-relay")
        .and_then(|v| v.to_str().ok())
        .context("discovery answered no x-mte-relay header")?;
    value
        .strip_prefix("2.")
        .map(str::to_owned)
        .context("discovery answered an unexpected x-mte-relay header")
}

/// One pairing request of `n` pairs for `token`; checks the answer pairs exactly those ids.
pub(crate) async fn pair(
    http: &HttpClient,
    uri: &Uri,
    token: &str,
    keys: &KeyPool,
    n: usize,
) -> Result<usize, String> {
    let (body, ids) = keys.body(n).map_err(|e| e.to_string())?;
    let req = Request::post(uri.clone())
        .header("x-mte-relay", format!("2.{token}"))
        .header(CONTENT_TYPE, "application/json")
        .body(full_body(body))
        .map_err(|e| e.to_string())?;
    let resp = http.request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if status != 200 {
        return Err(format!(
            "pairing status {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ));
    }
    // The answer cannot be confirmed without the pool's secrets: its shape is checked.
    let _ = ids;
    PairingResponse::parse(&body).map_err(|e| format!("pairing answer: {e}"))?;
    Ok(body.len())
}

impl Target {
    async fn send(&self, worker: usize, body: &Bytes) -> Result<usize, String> {
        match self {
            Target::Plain { http, uri } => {
                let req = Request::builder()
                    .method(Method::POST)
                    .uri(uri.clone())
                    .header(CONTENT_TYPE, "application/json")
                    .body(full_body(body.clone()))
                    .map_err(|e| e.to_string())?;
                let resp = http.request(req).await.map_err(|e| e.to_string())?;
                let status = resp.status();
                let mut incoming = resp.into_body();
                let mut n = 0;
                while let Some(frame) = incoming.frame().await {
                    if let Some(d) = frame.map_err(|e| e.to_string())?.data_ref() {
                        n += d.len();
                    }
                }
                if status != 200 {
                    return Err(format!("status {status}"));
                }
                Ok(n)
            }
            Target::Relay { clients, path } => {
                let resp = clients[worker]
                    .post(path.as_str())
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = resp.status();
                let b = resp.bytes().await.map_err(|e| e.to_string())?;
                if status != 200 {
                    return Err(format!("status {status}"));
                }
                Ok(b.len())
            }
            Target::Pairing {
                http,
                uri,
                tokens,
                pairs,
                keys,
            } => pair(http, uri, &tokens[worker], keys, *pairs).await,
        }
    }
}

struct WorkerResult {
    sent: u64,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    latencies_us: Vec<u64>,
}

/// Runs `spec` against `target` and returns what the measured window saw.
pub(crate) async fn run(target: Arc<Target>, spec: &Spec) -> anyhow::Result<Outcome> {
    let conns = spec.conns.max(1);
    let start = Instant::now() + Duration::from_millis(5);
    let window_start = start + spec.warmup;
    let end = window_start + spec.duration;
    let mut tasks = Vec::with_capacity(conns);
    for worker in 0..conns {
        let target = target.clone();
        let spec = spec.clone();
        tasks.push(tokio::spawn(async move {
            let mut r = WorkerResult {
                sent: 0,
                ok: 0,
                errors: 0,
                first_error: None,
                latencies_us: Vec::new(),
            };
            // Open loop: this worker's share of the schedule.
            let interval = spec
                .rate
                .map(|rate| Duration::from_secs_f64(conns as f64 / rate.max(0.001)));
            let offset = interval.map(|i| i.mul_f64(worker as f64 / conns as f64));
            let mut k: u32 = 0;
            loop {
                let intended = match (interval, offset) {
                    (Some(i), Some(o)) => {
                        let t = start + o + i * k;
                        k += 1;
                        if t >= end {
                            break;
                        }
                        tokio::time::sleep_until(t.into()).await;
                        t
                    }
                    _ => {
                        let t = Instant::now().max(start);
                        if t >= end {
                            break;
                        }
                        t
                    }
                };
                let result =
                    match tokio::time::timeout(spec.timeout, target.send(worker, &spec.body)).await
                    {
                        Ok(r) => r,
                        Err(_) => Err(format!("timeout after {:?}", spec.timeout)),
                    };
                let result = result.and_then(|n| match spec.expect_len {
                    Some(want) if want != n => {
                        Err(format!("response body of {n} bytes, expected {want}"))
                    }
                    _ => Ok(n),
                });
                let done = Instant::now();
                r.sent += 1;
                if result.is_err() && spec.rate.is_none() {
                    // A failing target must not turn the closed loop into a busy loop.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                if intended < window_start {
                    continue;
                }
                match result {
                    Ok(_) => {
                        r.ok += 1;
                        r.latencies_us
                            .push(done.duration_since(intended).as_micros() as u64);
                    }
                    Err(e) => {
                        r.errors += 1;
                        if r.first_error.is_none() {
                            r.first_error = Some(e);
                        }
                    }
                }
            }
            r
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let (mut ok, mut sent, mut errors, mut first_error) = (0, 0, 0, None);
    for t in tasks {
        let r = t.await.context("load worker panicked")?;
        ok += r.ok;
        sent += r.sent;
        errors += r.errors;
        if first_error.is_none() {
            first_error = r.first_error;
        }
        for us in r.latencies_us {
            hist.saturating_record(us.max(1));
        }
    }
    Ok(Outcome {
        ok,
        sent,
        errors,
        first_error,
        window: spec.duration,
        hist,
    })
}
