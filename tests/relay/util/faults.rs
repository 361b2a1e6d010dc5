//! Helpers for the fault tests (the `faults_*` modules): a round-robin TCP balancer that fails
//! over on a refused connection, load loops of the Rust client that sort failures by kind, a
//! counting upstream that tells complete requests from aborted ones, and the resident memory and
//! log of a relay (open descriptors: `pqrelay_testkit::fd_count`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use pqrelay_client::RelayClient;
use pqrelay_testkit::{pattern, proc_status_kib, sha256_hex};
use sha2::Digest as _;
use tokio::net::{TcpListener, TcpStream};

/// A request slower than this counts as a failure of kind `timeout` (nothing in these tests
/// should take more than a fraction of it).
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(20);

/// The resident set size (`VmRSS`) of `pid` in KiB (0 if unreadable).
pub fn vm_rss_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmRSS").unwrap_or(0)
}

/// Panics if a relay log shows a panic.
pub fn assert_no_panic(log: &str) {
    assert!(
        !log.contains("panicked"),
        "the relay panicked:\n{}",
        super::fuzz::tail(log, 4000)
    );
}

/// Polls `cond` every 50 ms until it holds or `limit` passes; returns whether it held.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A TCP balancer on loopback in front of `backends`: each accepted connection goes to the
/// next backend in turn; a backend that refuses the connection is skipped (fail-over). The
/// bytes are copied both ways; when either side fails, both are closed.
pub struct Balancer {
    pub port: u16,
    /// Connections handed to each backend.
    pub accepted: Arc<Vec<AtomicU64>>,
    /// Connections open to each backend now.
    pub open: Arc<Vec<AtomicI64>>,
    /// Connection attempts a backend refused.
    pub refused: Arc<AtomicU64>,
}

impl Balancer {
    pub async fn start(backends: Vec<u16>) -> Balancer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let n = backends.len();
        let accepted: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
        let open: Arc<Vec<AtomicI64>> = Arc::new((0..n).map(|_| AtomicI64::new(0)).collect());
        let refused = Arc::new(AtomicU64::new(0));
        let (acc, opn, refs) = (accepted.clone(), open.clone(), refused.clone());
        let backends = Arc::new(backends);
        tokio::spawn(async move {
            let mut next = 0usize;
            while let Ok((inbound, _)) = listener.accept().await {
                let first = next;
                next = (next + 1) % n;
                let (backends, acc, opn, refs) =
                    (backends.clone(), acc.clone(), opn.clone(), refs.clone());
                tokio::spawn(async move {
                    let mut inbound = inbound;
                    for k in 0..n {
                        let i = (first + k) % n;
                        match TcpStream::connect(("127.0.0.1", backends[i])).await {
                            Ok(mut outbound) => {
                                acc[i].fetch_add(1, Ordering::SeqCst);
                                opn[i].fetch_add(1, Ordering::SeqCst);
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound)
                                    .await;
                                opn[i].fetch_sub(1, Ordering::SeqCst);
                                return;
                            }
                            Err(_) => {
                                refs.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                    // Every backend refused: the client's connection is closed.
                });
            }
        });
        Balancer {
            port,
            accepted,
            open,
            refused,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// What load loops saw: successes, and failures by kind (`503 state_store_unavailable`,
/// `transport (sending the request)`, ...), each with when it happened.
#[derive(Default)]
pub struct Tally {
    pub ok: AtomicU64,
    pub failures: Mutex<Vec<(Instant, String, String)>>,
}

impl Tally {
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::SeqCst)
    }

    /// Failures so far, by kind.
    pub fn by_kind(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for (_, kind, _) in self.failures.lock().unwrap().iter() {
            *m.entry(kind.clone()).or_default() += 1;
        }
        m
    }

    /// Every failure so far: kind and detail.
    pub fn all(&self) -> Vec<(String, String)> {
        self.failures
            .lock()
            .unwrap()
            .iter()
            .map(|(_, k, d)| (k.clone(), d.clone()))
            .collect()
    }

    /// Failures of requests that started at or after `since`.
    pub fn failures_since(&self, since: Instant) -> Vec<(String, String)> {
        self.failures
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _, _)| *t >= since)
            .map(|(_, k, d)| (k.clone(), d.clone()))
            .collect()
    }

    pub fn count(&self) -> usize {
        self.failures.lock().unwrap().len()
    }
}

/// A failed request: its kind (for counting) and the full error.
#[derive(Debug)]
pub struct Failure {
    pub kind: String,
    pub detail: String,
}

impl Failure {
    fn new(kind: impl Into<String>, detail: impl Into<String>) -> Failure {
        Failure {
            kind: kind.into(),
            detail: detail.into(),
        }
    }

    /// Sorts a client error: a relay answer by status and code, a transport error by step.
    pub fn of(e: &pqrelay_client::Error) -> Failure {
        let kind = match e {
            pqrelay_client::Error::Relay { status, code, .. }
            | pqrelay_client::Error::ErrorUnauthenticated { status, code, .. } => {
                format!("{status} {code}")
            }
            pqrelay_client::Error::Http { context, .. } => format!("transport ({context})"),
            other => format!("other ({other})"),
        };
        Failure::new(kind, e.to_string())
    }
}

/// One sealed `POST /upload` of a small body to the demo upstream; checks the status and the
/// size and digest the upstream saw. It carries an `idempotency-key`, so the client may send it
/// again after a fault like a GET (PROTOCOL.md §12): these loads measure recovery, not the
/// outcome-unknown rule of non-idempotent requests (tests/relay/protocol2.rs and the client's
/// tests prove that one).
pub async fn small_upload(c: &RelayClient, n: u64) -> Result<(), Failure> {
    let body = pattern(1024 + (n as usize % 512));
    let want = sha256_hex(&body);
    let len = body.len();
    let resp = c
        .post("/upload")
        .header("content-type", "application/octet-stream")
        .header("idempotency-key", format!("upload-{n}"))
        .body(body)
        .send()
        .await
        .map_err(|e| Failure::of(&e))?;
    if resp.status() != 200 {
        return Err(Failure::new(
            format!("status {}", resp.status()),
            "upstream status",
        ));
    }
    let v: serde_json::Value = resp.json().await.map_err(|e| Failure::of(&e))?;
    if v["size"] != len || v["sha256"] != want.as_str() {
        return Err(Failure::new("wrong answer", v.to_string()));
    }
    Ok(())
}

/// Load loops: `tasks` tasks each sending [`small_upload`]s one after the other until stopped.
pub struct Load {
    pub tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// A client of `tasks + 1` pairs against `base`, warmed up by one request, and `tasks`
    /// loops through it.
    pub async fn start(base: &str, tasks: usize) -> (RelayClient, Load) {
        let c = RelayClient::builder(base)
            .pairs(tasks + 1)
            .build()
            .expect("client");
        small_upload(&c, 0).await.expect("warm-up request");
        let load = Load::spawn(&c, tasks);
        (c, load)
    }

    fn spawn(c: &RelayClient, tasks: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let handles = (0..tasks as u64)
            .map(|t| {
                let (c, stop, tally) = (c.clone(), stop.clone(), tally.clone());
                tokio::spawn(async move {
                    let mut n = t;
                    while !stop.load(Ordering::SeqCst) {
                        let started = Instant::now();
                        let r = tokio::time::timeout(REQUEST_DEADLINE, small_upload(&c, n))
                            .await
                            .unwrap_or_else(|_| Err(Failure::new("timeout", "no answer in time")));
                        match r {
                            Ok(()) => {
                                tally.ok.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(f) => {
                                tally
                                    .failures
                                    .lock()
                                    .unwrap()
                                    .push((started, f.kind, f.detail));
                                // A failing dependency must not turn the loop into a busy spin.
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                        n += tasks as u64;
                    }
                })
            })
            .collect();
        Load {
            tally,
            stop,
            tasks: handles,
        }
    }

    /// Stops the loops and waits for them.
    pub async fn stop(self) -> Arc<Tally> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.expect("load task");
        }
        self.tally
    }
}

/// What the [`Sink`] upstream saw.
#[derive(Default)]
pub struct SinkCounts {
    /// `POST /upload` requests whose head arrived.
    pub uploads_started: AtomicU64,
    /// `POST /upload` requests whose body arrived whole.
    pub uploads_complete: AtomicU64,
    /// `POST /upload` requests whose body ended early (the relay aborted them).
    pub uploads_aborted: AtomicU64,
    /// `GET /download/<n>` responses sent whole.
    pub downloads_complete: AtomicU64,
    /// `GET /download/<n>` responses dropped before their end (the relay went away).
    pub downloads_cut: AtomicU64,
    /// Connections open now.
    pub open: AtomicI64,
}

/// An upstream (hyper) that streams big bodies both ways without keeping them:
/// `POST /upload` answers `{"size","sha256"}` of the body; `GET /download/<n>` sends `n` bytes
/// of [`pattern`] in 64 KiB frames (`content-length: n`). It counts complete and aborted
/// uploads, whole and cut downloads, and open connections.
pub struct Sink {
    pub port: u16,
    pub counts: Arc<SinkCounts>,
}

type SinkBody = BoxBody<Bytes, std::io::Error>;

impl Sink {
    pub async fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let counts = Arc::new(SinkCounts::default());
        let c = counts.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let c = c.clone();
                tokio::spawn(async move {
                    c.open.fetch_add(1, Ordering::SeqCst);
                    let svc = hyper::service::service_fn({
                        let c = c.clone();
                        move |req| sink_handle(req, c.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                    c.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Sink { port, counts }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

async fn sink_handle(
    req: hyper::Request<Incoming>,
    counts: Arc<SinkCounts>,
) -> Result<hyper::Response<SinkBody>, std::convert::Infallible> {
    let path = req.uri().path().to_owned();
    if let Some(n) = path.strip_prefix("/download/") {
        let n: usize = n.parse().unwrap_or(0);
        let mut resp = hyper::Response::new(download_body(n, counts));
        resp.headers_mut()
            .insert(hyper::header::CONTENT_LENGTH, n.into());
        return Ok(resp);
    }
    counts.uploads_started.fetch_add(1, Ordering::SeqCst);
    let mut body = req.into_body();
    let mut size = 0usize;
    let mut hash = sha2::Sha256::new();
    let whole = loop {
        match body.frame().await {
            None => break true,
            Some(Err(_)) => break false,
            Some(Ok(frame)) => {
                if let Some(d) = frame.data_ref() {
                    size += d.len();
                    hash.update(d);
                }
            }
        }
    };
    let counter = if whole {
        &counts.uploads_complete
    } else {
        &counts.uploads_aborted
    };
    counter.fetch_add(1, Ordering::SeqCst);
    let hex: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let text = serde_json::json!({"size": size, "sha256": hex}).to_string();
    Ok(hyper::Response::new(
        Full::new(Bytes::from(text))
            .map_err(|never| match never {})
            .boxed(),
    ))
}

/// Counts a download as whole (its last frame was handed to hyper) or cut when its body is
/// dropped.
struct DownloadGuard {
    counts: Arc<SinkCounts>,
    done: bool,
}

impl Drop for DownloadGuard {
    fn drop(&mut self) {
        let counter = if self.done {
            &self.counts.downloads_complete
        } else {
            &self.counts.downloads_cut
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

fn download_body(n: usize, counts: Arc<SinkCounts>) -> SinkBody {
    let guard = DownloadGuard {
        counts,
        done: false,
    };
    let frames = futures::stream::unfold((0usize, guard), move |(at, mut guard)| async move {
        if at >= n {
            return None;
        }
        let end = (at + 65536).min(n);
        // Hyper may stop polling once `content-length` bytes were handed over.
        guard.done = end == n;
        let data: Vec<u8> = (at..end).map(|i| (i % 251) as u8).collect();
        Some((
            Ok::<_, std::io::Error>(Frame::data(Bytes::from(data))),
            (end, guard),
        ))
    });
    StreamBody::new(frames).boxed()
}
