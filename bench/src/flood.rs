//! `pqrelay-bench flood`: what a pairing flood costs paired clients.
//!
//! Starts the fast upstream and a relay (memory state, pairing rate limits off, Pingora's
//! default threads), then for each flood size of `--floods` (e.g. `0,64,256`) pairs `--clients`
//! Rust clients (one pair each, one after the other, on a thread and runtime of their own so
//! that the flood's tasks never delay them) and runs for `--secs`: every paired client sends sealed
//! `POST /json/1024` exchanges one at a time while `N` flooding connections (each its own
//! connection, its own client id) send pairing requests of `--pairs` pairs as fast as they are
//! answered. Prints, per flood size, the exchanges' median, p99 and max latency and what the
//! flood got (200s, 503 `pairing_busy`, other failures).
//!
//! Pairing bodies come from a [`KeyPool`] (made once, fresh pair ids each time): the relay does
//! its whole key exchange for every request, the load generator almost none.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Request, Uri};
use http_body_util::BodyExt as _;
use pqrelay_client::{full_body, RelayClient};
use pqrelay_testkit::{clean_command, free_port, Proc, Signal, TempDir};

use crate::load::{self, KeyPool};
use crate::procs::READY_TIMEOUT;
use crate::suite::{http_ok, plain_client, sealed_post_json};

const SECRET: &str = "pqrelay-bench-flood-secret-0123456789";
/// Exchange body and answer size.
const SIZE: usize = 1024;
/// Untimed exchanges per client before each flood size.
const WARMUP: usize = 20;

/// What `flood` measures.
pub(crate) struct Options {
    /// Measured seconds per flood size.
    pub secs: f64,
    /// Flooding connections, one run each.
    pub floods: Vec<usize>,
    /// Pairs per flood pairing request.
    pub pairs: usize,
    /// Paired clients sending exchanges.
    pub clients: usize,
    /// `PAIRING_CONCURRENCY` for the relay (its default when `None`).
    pub pairing_concurrency: Option<usize>,
    /// The relay binary.
    pub relay_bin: PathBuf,
}

/// What the flood got.
#[derive(Default)]
struct FloodCount {
    ok: AtomicU64,
    busy: AtomicU64,
    failed: AtomicU64,
}

/// One flooding connection: pairing requests until `stop`.
async fn flood_worker(
    uri: Uri,
    token: String,
    keys: Arc<KeyPool>,
    pairs: usize,
    stop: Arc<AtomicBool>,
    count: Arc<FloodCount>,
) {
    let Ok(http) = plain_client(1) else { return };
    while !stop.load(Ordering::Relaxed) {
        let Ok((body, _)) = keys.body(pairs) else {
            return;
        };
        let req = Request::post(uri.clone())
            .header("x-mte-relay", format!("2.{token}"))
            .header(CONTENT_TYPE, "application/json")
            .body(full_body(body));
        let Ok(req) = req else { return };
        let status = match http.request(req).await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let busy = resp
                    .headers()
                    .get("x-mte-relay-error")
                    .is_some_and(|v| v == "pairing_busy");
                let _ = resp.into_body().collect().await;
                (status, busy)
            }
            Err(_) => (0, false),
        };
        let counter = match status {
            (200, _) => &count.ok,
            (503, true) => &count.busy,
            _ => &count.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if status.0 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// One paired client: sequential exchanges until `stop`; their latencies (after `WARMUP`).
async fn exchanges(client: RelayClient, stop: Arc<AtomicBool>) -> anyhow::Result<Vec<Duration>> {
    let body = Bytes::from(vec![b'x'; SIZE]);
    let mut times = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        sealed_post_json(&client, &body).await.context("exchange")?;
        if i >= WARMUP {
            times.push(t.elapsed());
        }
        i += 1;
    }
    Ok(times)
}

/// The paired clients, on a thread and runtime of their own (so the flood's tasks in this
/// process never delay them): pairs `clients` clients one after the other, says so on
/// `ready`, then sends exchanges until `stop`; all their latencies.
fn probes(
    base: String,
    clients: usize,
    ready: std::sync::mpsc::Sender<()>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<anyhow::Result<Vec<Duration>>> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let http = plain_client(clients)?;
            let mut paired = Vec::with_capacity(clients);
            for _ in 0..clients.max(1) {
                let c = RelayClient::builder(&base)
                    .http_client(http.clone())
                    .pairs(1)
                    .max_pairs(1)
                    .build()?;
                c.connect().await?;
                paired.push(c);
            }
            let _ = ready.send(());
            let runs = paired.into_iter().map(|c| exchanges(c, stop.clone()));
            let mut times = Vec::new();
            for r in futures_util::future::join_all(runs).await {
                times.extend(r?);
            }
            Ok(times)
        })
    })
}

/// Starts `cmd`, waits for `GET http://127.0.0.1:<port>/health` to answer 200.
async fn start(dir: &TempDir, name: &str, cmd: &mut Command, port: u16) -> anyhow::Result<Proc> {
    let log = dir.path().join(format!("{name}.log"));
    let mut p = Proc::spawn_group(name, cmd, log, Signal::SIGINT)?;
    let http = plain_client(2)?;
    let url = format!("http://127.0.0.1:{port}/health");
    p.wait_ready(READY_TIMEOUT, || http_ok(&http, &url)).await?;
    Ok(p)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Runs the measurement and prints the table.
pub(crate) async fn run(opts: &Options) -> anyhow::Result<()> {
    let dir = TempDir::new("pqrelay-bench-flood")?;
    let (up_port, relay_port) = (free_port(), free_port());
    let upstream = format!("http://127.0.0.1:{up_port}");
    let base = format!("http://127.0.0.1:{relay_port}");
    let mut up_cmd = Command::new(std::env::current_exe()?);
    up_cmd.args(["upstream", "--port", &up_port.to_string(), "--threads", "1"]);
    let _up = start(&dir, "upstream", &mut up_cmd, up_port).await?;
    let mut cmd = clean_command(&opts.relay_bin);
    cmd.env("UPSTREAM", &upstream)
        .env("CLIENT_ID_SECRET", SECRET)
        .env("CORS_ORIGINS", "http://localhost")
        .env("HOST", "127.0.0.1")
        .env("PORT", relay_port.to_string())
        .env("PASS_THROUGH_ROUTES", "/health")
        .env("PAIR_RATE_PER_IP", "0")
        .env("PAIR_RATE_PER_CLIENT", "0")
        .arg("run");
    if let Some(n) = opts.pairing_concurrency {
        cmd.env("PAIRING_CONCURRENCY", n.to_string());
    }
    let mut relay = start(&dir, "relay", &mut cmd, relay_port).await?;

    let http = plain_client(2)?;
    let keys = Arc::new(KeyPool::new(256, &load::relay_key(&http, &base).await?)?);
    let uri: Uri = format!("{base}/api/mte-pair").parse()?;
    let most = opts.floods.iter().copied().max().unwrap_or(0);
    let mut tokens = Vec::with_capacity(most);
    for _ in 0..most {
        tokens.push(load::discover(&http, &base).await?);
    }

    let concurrency = opts
        .pairing_concurrency
        .map_or("default (4 × CPUs)".to_owned(), |n| n.to_string());
    println!(
        "Sealed POST /json/{SIZE} by {} paired clients (one at a time each) during a pairing \
         flood of {} pair(s) per request; PAIRING_CONCURRENCY {concurrency}, {} s per row:",
        opts.clients.max(1),
        opts.pairs,
        opts.secs
    );
    println!("| flood connections | exchanges | median | p99 | max | flood 200 | flood 503 pairing_busy | flood other |");
    println!("|---|---|---|---|---|---|---|---|");
    for &n in &opts.floods {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(FloodCount::default());
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let probe = probes(base.clone(), opts.clients, ready_tx, stop.clone());
        if ready.recv().is_err() {
            // The thread ended before pairing its clients: its error says why.
            return match probe.join() {
                Ok(Err(e)) => Err(e.context("pairing the probe clients")),
                _ => bail!("the probe thread failed"),
            };
        }
        let flooders: Vec<_> = tokens
            .iter()
            .take(n)
            .map(|token| {
                tokio::spawn(flood_worker(
                    uri.clone(),
                    token.clone(),
                    keys.clone(),
                    opts.pairs,
                    stop.clone(),
                    count.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_secs_f64(opts.secs)).await;
        stop.store(true, Ordering::Relaxed);
        let mut times = tokio::task::spawn_blocking(move || probe.join())
            .await?
            .map_err(|_| anyhow::anyhow!("the probe thread panicked"))??;
        for f in flooders {
            f.await?;
        }
        relay.check_alive()?;
        if times.is_empty() {
            bail!("no exchange finished during the {n}-connection flood");
        }
        times.sort();
        let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
        println!(
            "| {n} | {} | {} | {} | {} | {} | {} | {} |",
            times.len(),
            ms(at(0.5)),
            ms(at(0.99)),
            ms(times[times.len() - 1]),
            count.ok.load(Ordering::Relaxed),
            count.busy.load(Ordering::Relaxed),
            count.failed.load(Ordering::Relaxed),
        );
        // Let the relay finish the flood's last key exchanges before the next row.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}
