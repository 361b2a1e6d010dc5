//! `soak`: a long run of mixed, verified traffic through one relay with Redis state, with
//! Redis killed and restarted empty (a third of the way in) and a zero-downtime relay upgrade
//! (`-u` + SIGQUIT, two thirds in).
//!
//! Workers, each with its own client (one pair pool) on one shared HTTP pool, loop over:
//! sealed `GET /echo` (the JSON answer compared byte for byte), sealed `POST /login` with a
//! JSON body (answer compared), sealed uploads of 1 KiB to 2 MiB, sometimes 8 MiB, of random
//! bytes (size and SHA-256 checked by the demo upstream), Server-Sent Events (`/events`: five
//! events in order) and new pairings (a fresh client: discovery, pairing, one checked echo).
//!
//! Each failure is counted by kind and by phase: `steady`, `redis outage` (from the kill until
//! the relay is ready again plus one second) or `upgrade` (from starting the new process until
//! the old one exited plus one second). The relay's RSS is sampled every 5 s. The run fails if
//! any request failed in a steady phase or any answer was wrong.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use pqrelay_client::{HttpClient, RelayClient};
use pqrelay_testkit::{clean_command, free_port, proc_status_kib, tcp_open, Proc, Signal, TempDir};
use sha2::Digest as _;

use crate::procs::{start_redis, READY_TIMEOUT};
use crate::suite::{http_ok, plain_client};

/// The client id secret of the soak relay.
const SECRET: &str = "pqrelay-soak-client-id-secret-0123456789";
/// The state secret (pairs in Redis are sealed with it).
const STATE_SECRET: &str = "pqrelay-soak-state-secret-0123456789abcd";
/// A single operation slower than this is a failure (`timeout`).
const OP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long Redis stays down.
const OUTAGE: Duration = Duration::from_secs(3);
/// How often the relay's RSS is read.
const RSS_EVERY: Duration = Duration::from_secs(5);

/// Options of `soak`.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    /// Length of the run.
    pub(crate) duration: Duration,
    /// Concurrent workers.
    pub(crate) workers: usize,
    /// The relay binary (it also runs the demo upstream).
    pub(crate) relay_bin: PathBuf,
}

/// Phases a failure is counted in.
const PHASES: [&str; 3] = ["steady", "redis outage", "upgrade"];
const STEADY: u8 = 0;
const REDIS_OUTAGE: u8 = 1;
const UPGRADE: u8 = 2;

/// One kind of request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Echo,
    Login,
    Upload,
    Events,
    NewPairing,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Echo => "echo (GET, JSON)",
            Op::Login => "login (POST JSON)",
            Op::Upload => "upload",
            Op::Events => "SSE /events",
            Op::NewPairing => "new pairing + echo",
        }
    }

    /// The mix: 35 % echo, 20 % login, 25 % upload, 10 % SSE, 10 % new pairings.
    fn pick(r: u64) -> Op {
        match r % 100 {
            0..35 => Op::Echo,
            35..55 => Op::Login,
            55..80 => Op::Upload,
            80..90 => Op::Events,
            _ => Op::NewPairing,
        }
    }
}

/// What the workers saw.
#[derive(Default)]
struct Tally {
    ok: Mutex<BTreeMap<Op, u64>>,
    failures: Mutex<BTreeMap<(u8, String), u64>>,
    examples: Mutex<BTreeMap<String, Vec<String>>>,
    uploaded: AtomicU64,
}

impl Tally {
    fn record(&self, op: Op, phase: u8, r: Result<u64, String>) {
        match r {
            Ok(bytes) => {
                *self
                    .ok
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(op)
                    .or_default() += 1;
                self.uploaded.fetch_add(bytes, Ordering::Relaxed);
            }
            Err(e) => {
                let kind = e.split(" :: ").next().unwrap_or_default().to_owned();
                *self
                    .failures
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry((phase, kind.clone()))
                    .or_default() += 1;
                let mut ex = self.examples.lock().unwrap_or_else(|e| e.into_inner());
                let of_kind = ex.entry(kind).or_default();
                if of_kind.len() < 2 {
                    of_kind.push(format!("[{}] {}: {e}", PHASES[phase as usize], op.name()));
                }
            }
        }
    }
}

/// A small xorshift generator (traffic shapes, not secrets).
struct Rng(u64);

impl Rng {
    fn new() -> anyhow::Result<Self> {
        let mut b = [0u8; 8];
        getrandom::getrandom(&mut b).map_err(|e| anyhow::anyhow!("OS randomness: {e}"))?;
        Ok(Self(u64::from_le_bytes(b) | 1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

/// A client error as `kind :: detail`: relay answers by status and code, transport errors
/// by step.
fn client_error(e: &pqrelay_client::Error) -> String {
    let kind = match e {
        pqrelay_client::Error::Relay { status, code, .. } => format!("{status} {code}"),
        pqrelay_client::Error::Http { context, .. } => format!("transport ({context})"),
        _ => "client error".to_owned(),
    };
    format!("{kind} :: {e}")
}

fn wrong(what: &str, detail: impl std::fmt::Display) -> String {
    format!("WRONG ANSWER ({what}) :: {detail}")
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

async fn echo(c: &RelayClient, rng: &mut Rng) -> Result<u64, String> {
    let msg = format!("m{:x}", rng.next());
    let resp = c
        .get(format!("/echo?msg={msg}"))
        .send()
        .await
        .map_err(|e| client_error(&e))?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| client_error(&e))?;
    let want = format!(r#"{{"echo":"{msg}","method":"GET"}}"#);
    if status != 200 || body != want.as_bytes() {
        return Err(wrong("echo", format!("{status} {body:?}")));
    }
    Ok(0)
}

async fn login(c: &RelayClient, rng: &mut Rng) -> Result<u64, String> {
    let user = format!("u{:x}", rng.next() % 100_000);
    let resp = c
        .post("/login")
        .header("content-type", "application/json")
        .body(format!(r#"{{"username":"{user}","password":"pw"}}"#))
        .send()
        .await
        .map_err(|e| client_error(&e))?;
    let status = resp.status().as_u16();
    let cookies = resp.headers().get_all("set-cookie").iter().count();
    let body = resp.bytes().await.map_err(|e| client_error(&e))?;
    let want = format!(r#"{{"message":"Welcome, {user}!","user":"{user}"}}"#);
    if status != 200 || body != want.as_bytes() || cookies != 2 {
        return Err(wrong(
            "login",
            format!("{status} {cookies} cookies {body:?}"),
        ));
    }
    Ok(0)
}

async fn upload(c: &RelayClient, rng: &mut Rng) -> Result<u64, String> {
    let r = rng.next();
    let len = match r % 100 {
        0..80 => 1024 + (r >> 8) as usize % (63 * 1024),
        80..99 => 64 * 1024 + (r >> 8) as usize % (2 * 1024 * 1024),
        _ => 8 * 1024 * 1024,
    };
    let body = rng.bytes(len);
    let want = format!(
        r#"{{"size":{len},"sha256":"{}"}}"#,
        hex(&sha2::Sha256::digest(&body))
    );
    let resp = c
        .post("/upload")
        .header("content-type", "application/octet-stream")
        .body(Bytes::from(body))
        .send()
        .await
        .map_err(|e| client_error(&e))?;
    let status = resp.status().as_u16();
    let got = resp.bytes().await.map_err(|e| client_error(&e))?;
    if status != 200 || got != want.as_bytes() {
        return Err(wrong("upload", format!("{status} {got:?}, wanted {want}")));
    }
    Ok(len as u64)
}

async fn events(c: &RelayClient) -> Result<u64, String> {
    let resp = c
        .get("/events")
        .send()
        .await
        .map_err(|e| client_error(&e))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| client_error(&e))?;
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    let in_order = events.len() == 5
        && events
            .iter()
            .enumerate()
            .all(|(i, e)| e.starts_with(&format!("id: {i}\nevent: tick\ndata: {{\"n\":{i},")));
    if status != 200 || !in_order {
        return Err(wrong("events", format!("{status} {text:?}")));
    }
    Ok(0)
}

async fn new_pairing(http: &HttpClient, base: &str, rng: &mut Rng) -> Result<u64, String> {
    let c = RelayClient::builder(base)
        .http_client(http.clone())
        .pairs(1)
        .max_pairs(1)
        .build()
        .map_err(|e| client_error(&e))?;
    echo(&c, rng).await
}

/// The run's processes and the relay's settings (the upgrade starts the same relay again).
struct Lab {
    dir: TempDir,
    relay_bin: PathBuf,
    redis_port: u16,
    relay_port: u16,
    env: Vec<(String, String)>,
    redis: Option<Proc>,
    _upstream: Proc,
    relay: Proc,
    generation: u32,
}

impl Lab {
    async fn start(o: &Options) -> anyhow::Result<Lab> {
        let dir = TempDir::new("pqrelay-bench")?;
        let redis_port = free_port();
        // SIGKILL when dropped: stopping it is a crash, not a shutdown.
        let redis = start_redis(&dir, redis_port, "redis-0.log", Signal::SIGKILL).await?;
        let upstream_port = free_port();
        let mut upstream = Proc::spawn_group(
            "demo-upstream",
            Command::new(&o.relay_bin).args([
                "demo-upstream",
                "--port",
                &upstream_port.to_string(),
            ]),
            dir.path().join("upstream.log"),
            Signal::SIGTERM,
        )?;
        let addr = ([127, 0, 0, 1], upstream_port).into();
        upstream
            .wait_ready(READY_TIMEOUT, || tcp_open(addr))
            .await?;
        let relay_port = free_port();
        let d = dir.path().display().to_string();
        let env: Vec<(String, String)> = [
            ("UPSTREAM", format!("http://127.0.0.1:{upstream_port}")),
            ("CLIENT_ID_SECRET", SECRET.into()),
            ("CORS_ORIGINS", "http://localhost".into()),
            ("HOST", "127.0.0.1".into()),
            ("PORT", relay_port.to_string()),
            ("REDIS_URL", format!("redis://127.0.0.1:{redis_port}")),
            ("STATE_SECRET", STATE_SECRET.into()),
            ("PID_FILE", format!("{d}/relay.pid")),
            ("UPGRADE_SOCK", format!("{d}/upgrade.sock")),
            // Every soak client comes from 127.0.0.1.
            ("PAIR_RATE_PER_IP", "0".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut lab = Lab {
            relay: spawn_relay(&o.relay_bin, &env, dir.path().join("relay-0.log"), false)?,
            dir,
            relay_bin: o.relay_bin.clone(),
            redis_port,
            relay_port,
            env,
            redis: Some(redis),
            _upstream: upstream,
            generation: 0,
        };
        lab.wait_relay_ready().await?;
        Ok(lab)
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.relay_port)
    }

    async fn wait_relay_ready(&mut self) -> anyhow::Result<()> {
        let http = plain_client(2)?;
        let url = format!("{}/api/mte-ready", self.base());
        self.relay
            .wait_ready(READY_TIMEOUT, || http_ok(&http, &url))
            .await?;
        Ok(())
    }

    /// Kills Redis (SIGKILL: its data is gone), keeps it down for [`OUTAGE`], starts it
    /// again on the same port, and waits until the relay is ready. Returns the outage.
    async fn restart_redis(&mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        if let Some(mut r) = self.redis.take() {
            r.stop();
        }
        tokio::time::sleep(OUTAGE).await;
        self.redis =
            Some(start_redis(&self.dir, self.redis_port, "redis-1.log", Signal::SIGKILL).await?);
        self.wait_relay_ready().await?;
        Ok(started.elapsed())
    }

    /// A new relay process takes the listening socket over (`-u`), the old one gets SIGQUIT;
    /// returns once the old one exited, with the time that took.
    async fn upgrade(&mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let sock = self.dir.path().join("upgrade.sock");
        let _ = std::fs::remove_file(&sock);
        self.generation += 1;
        let log = self
            .dir
            .path()
            .join(format!("relay-{}.log", self.generation));
        let mut new = spawn_relay(&self.relay_bin, &self.env, log, true)?;
        while !sock.exists() {
            new.check_alive()?;
            if started.elapsed() > Duration::from_secs(30) {
                bail!("the new relay never opened {}", sock.display());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut old = std::mem::replace(&mut self.relay, new);
        old.signal(Signal::SIGQUIT)?;
        while old.check_alive().is_ok() {
            if started.elapsed() > Duration::from_secs(60) {
                bail!("the old relay did not exit within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.relay.check_alive()?;
        Ok(started.elapsed())
    }
}

fn spawn_relay(
    bin: &Path,
    env: &[(String, String)],
    log: PathBuf,
    upgrade: bool,
) -> anyhow::Result<Proc> {
    let mut cmd = clean_command(bin);
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if upgrade {
        cmd.arg("-u");
    }
    Ok(Proc::spawn_group("relay", &mut cmd, log, Signal::SIGINT)?)
}

/// One worker: its own client, operations until `end`.
async fn worker(
    http: HttpClient,
    base: String,
    end: Instant,
    phase: Arc<AtomicU8>,
    tally: Arc<Tally>,
) -> anyhow::Result<()> {
    let mut rng = Rng::new()?;
    let c = RelayClient::builder(&base)
        .http_client(http.clone())
        .pairs(2)
        .build()?;
    while Instant::now() < end {
        let op = Op::pick(rng.next());
        let before = phase.load(Ordering::SeqCst);
        let run = async {
            match op {
                Op::Echo => echo(&c, &mut rng).await,
                Op::Login => login(&c, &mut rng).await,
                Op::Upload => upload(&c, &mut rng).await,
                Op::Events => events(&c).await,
                Op::NewPairing => new_pairing(&http, &base, &mut rng).await,
            }
        };
        let r = tokio::time::timeout(OP_TIMEOUT, run)
            .await
            .unwrap_or_else(|_| Err("timeout :: no answer in time".into()));
        let failed = r.is_err();
        tally.record(op, before.max(phase.load(Ordering::SeqCst)), r);
        if failed {
            // A dependency that is down must not turn the loop into a busy spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// Samples the RSS of every relay process in `pids` every [`RSS_EVERY`] until `end`:
/// (seconds since `t0`, pid, KiB).
async fn sample_rss(pids: Arc<Mutex<Vec<u32>>>, end: Instant, t0: Instant) -> Vec<(f64, u32, u64)> {
    let mut out = Vec::new();
    while Instant::now() < end {
        let now: Vec<u32> = pids.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for p in now {
            if let Some(kib) = proc_status_kib(p, "VmRSS") {
                out.push((t0.elapsed().as_secs_f64(), p, kib));
            }
        }
        tokio::time::sleep(RSS_EVERY).await;
    }
    out
}

/// Runs the soak and prints its report; fails if a steady-phase request failed or any
/// answer was wrong.
pub(crate) async fn run(o: &Options) -> anyhow::Result<()> {
    let mut lab = Lab::start(o).await?;
    let http = plain_client(o.workers * 2)?;
    let base = lab.base();
    let t0 = Instant::now();
    let end = t0 + o.duration;
    let phase = Arc::new(AtomicU8::new(STEADY));
    let tally = Arc::new(Tally::default());
    let pids = Arc::new(Mutex::new(vec![lab.relay.pid()]));
    eprintln!(
        "[soak] {} s, {} workers, relay {} (pid {})",
        o.duration.as_secs(),
        o.workers,
        o.relay_bin.display(),
        lab.relay.pid()
    );
    let workers: Vec<_> = (0..o.workers)
        .map(|_| {
            tokio::spawn(worker(
                http.clone(),
                base.clone(),
                end,
                phase.clone(),
                tally.clone(),
            ))
        })
        .collect();
    let sampler = tokio::spawn(sample_rss(pids.clone(), end, t0));

    tokio::time::sleep_until((t0 + o.duration / 3).into()).await;
    eprintln!("[soak] {:.0} s: killing Redis", t0.elapsed().as_secs_f64());
    phase.store(REDIS_OUTAGE, Ordering::SeqCst);
    let outage = lab.restart_redis().await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    phase.store(STEADY, Ordering::SeqCst);
    eprintln!("[soak] Redis back, relay ready after {outage:.1?}");

    tokio::time::sleep_until((t0 + o.duration * 2 / 3).into()).await;
    let old_pid = lab.relay.pid();
    let upgrade_at = t0.elapsed().as_secs_f64();
    eprintln!(
        "[soak] {:.0} s: upgrading the relay",
        t0.elapsed().as_secs_f64()
    );
    phase.store(UPGRADE, Ordering::SeqCst);
    let upgrade = lab.upgrade().await?;
    pids.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(lab.relay.pid());
    tokio::time::sleep(Duration::from_secs(1)).await;
    phase.store(STEADY, Ordering::SeqCst);
    eprintln!(
        "[soak] upgraded: pid {old_pid} → {}, old exited after {upgrade:.1?}",
        lab.relay.pid()
    );

    for w in workers {
        w.await.context("worker")??;
    }
    let rss = sampler.await.context("sampler")?;
    lab.relay.check_alive()?;
    let relays = Relays {
        outage,
        upgrade,
        upgrade_at,
        old_pid,
        new_pid: lab.relay.pid(),
    };
    print_report(o, &tally, &rss, &relays);

    let failures = tally.failures.lock().unwrap_or_else(|e| e.into_inner());
    let steady: u64 = failures
        .iter()
        .filter(|((p, _), _)| *p == STEADY)
        .map(|(_, n)| n)
        .sum();
    let wrong: u64 = failures
        .iter()
        .filter(|((_, k), _)| k.starts_with("WRONG"))
        .map(|(_, n)| n)
        .sum();
    if steady > 0 || wrong > 0 {
        bail!("{steady} failures in steady phases, {wrong} wrong answers");
    }
    Ok(())
}

/// What happened to Redis and the relay processes during the run.
struct Relays {
    /// Kill → relay ready again.
    outage: Duration,
    /// New process started → old process exited.
    upgrade: Duration,
    /// When the upgrade started (seconds into the run).
    upgrade_at: f64,
    old_pid: u32,
    new_pid: u32,
}

fn print_report(o: &Options, tally: &Tally, rss: &[(f64, u32, u64)], r: &Relays) {
    let ok = tally.ok.lock().unwrap_or_else(|e| e.into_inner());
    let failures = tally.failures.lock().unwrap_or_else(|e| e.into_inner());
    let ok_total: u64 = ok.values().sum();
    let failed_total: u64 = failures.values().sum();
    println!(
        "soak: {} s, {} workers; {} requests, {ok_total} ok, {failed_total} failed",
        o.duration.as_secs(),
        o.workers,
        ok_total + failed_total
    );
    for (op, n) in ok.iter() {
        println!("  ok  {:<22} {n}", op.name());
    }
    println!(
        "  uploaded and verified: {:.1} MiB",
        tally.uploaded.load(Ordering::Relaxed) as f64 / (1 << 20) as f64
    );
    for (name, p) in PHASES.iter().zip(0u8..) {
        let kinds: Vec<String> = failures
            .iter()
            .filter(|((ph, _), _)| *ph == p)
            .map(|((_, k), n)| format!("{k}: {n}"))
            .collect();
        println!(
            "  failures, {name}: {}",
            if kinds.is_empty() {
                "none".to_owned()
            } else {
                kinds.join(", ")
            }
        );
    }
    for e in tally
        .examples
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .flatten()
    {
        println!("    e.g. {e}");
    }
    println!("  Redis outage (kill → relay ready): {:.1?}", r.outage);
    println!(
        "  upgrade (new process → old exited): {:.1?}, pid {} → {}",
        r.upgrade, r.old_pid, r.new_pid
    );
    // The old process from the end of its warm-up (a tenth of the run, at most 30 s) to the
    // upgrade; the new one from the end of the upgrade.
    let warm = (o.duration.as_secs_f64() / 10.0).min(30.0);
    for (label, pid, from, to) in [
        ("old", r.old_pid, warm, r.upgrade_at),
        ("new", r.new_pid, 0.0, f64::MAX),
    ] {
        let s: Vec<_> = rss
            .iter()
            .filter(|x| x.1 == pid && x.0 >= from && x.0 <= to)
            .collect();
        if let (Some(first), Some(last)) = (s.first(), s.last()) {
            let max = s.iter().map(|x| x.2).max().unwrap_or(0);
            println!(
                "  relay RSS, {label} process: {} KiB at {:.0} s, {} KiB at {:.0} s, max {max} KiB",
                first.2, first.0, last.2, last.0
            );
        }
    }
}
