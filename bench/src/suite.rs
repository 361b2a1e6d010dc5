//! `all`: starts the fast upstream, nginx, redis-server and the relays on 127.0.0.1, measures
//! everything in [`crate::report`], writes the report and stops every child.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use futures_util::future::join_all;
use http::Uri;
use pqrelay_client::{http_client, HttpClient, HttpOptions, RelayClient};
use pqrelay_testkit::{clean_command, free_port, proc_status_kib, Proc, Signal, TempDir};

use crate::load::{self, KeyPool, Outcome, Spec, Target};
use crate::procs::{nginx_conf, start_redis, READY_TIMEOUT};
use crate::profiles::{self, Profile, Side};
use crate::report::{
    self, Cpu, MatrixPoint, Memory, Point, Results, RunInfo, StreamRow, BARE, DIRECT, GOAL_CONNS,
    GOAL_SIZE, MTE_MEM, MTE_REDIS, NGINX, PASS, TARGETS,
};
use crate::stream::{self, Via};
use crate::syscalls::{self, Syscalls};
use crate::upstream::json_of_len;

/// The client id secret every bench relay uses.
const SECRET: &str = "pqrelay-bench-client-id-secret-0123456789";
/// Request timeout of every load point.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Idle upstream connections kept by the relays and the bare Pingora proxy.
const KEEPALIVE_POOL: usize = 1024;

/// Options of `all`.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    /// Short runs (about 2 minutes in all).
    pub(crate) quick: bool,
    /// Where the report goes.
    pub(crate) out: PathBuf,
    /// The relay binary.
    pub(crate) relay_bin: PathBuf,
    /// Seconds per measured point (overrides the default of the mode).
    pub(crate) secs: Option<f64>,
}

/// Durations and sizes of one mode.
struct Plan {
    warmup: Duration,
    window: Duration,
    conns: Vec<usize>,
    sizes: Vec<usize>,
    open_rate: f64,
    open_conns: usize,
    open_rounds: usize,
    /// Rounds of the goals' point (300 connections, 1 KiB) in the closed-loop matrix.
    goal_rounds: usize,
    pairing_conns: usize,
    stream_bytes: u64,
    memory_clients: usize,
}

/// The relay's default `PAIRING_CONCURRENCY` per CPU: the pairing points and the memory
/// measurement pair on as many connections as the relay's pairing pool admits at once, so that
/// they measure pairings, not 503 `pairing_busy` answers.
const PAIRINGS_PER_CORE: usize = 4;

impl Plan {
    fn new(o: &Options) -> Self {
        let (warmup, window) = if o.quick { (0.5, 1.5) } else { (1.0, 5.0) };
        let window = o.secs.unwrap_or(window);
        Self {
            warmup: Duration::from_secs_f64(warmup),
            window: Duration::from_secs_f64(window),
            conns: vec![100, 300, 1000],
            sizes: vec![1024, 10 * 1024],
            open_rate: 5000.0,
            open_conns: 300,
            open_rounds: if o.quick { 1 } else { 3 },
            goal_rounds: if o.quick { 1 } else { 3 },
            pairing_conns: PAIRINGS_PER_CORE * cores(),
            stream_bytes: if o.quick { 256 << 20 } else { 1 << 30 },
            memory_clients: if o.quick { 20_000 } else { 100_000 },
        }
    }
}

/// The processes of a run and their addresses.
struct Lab {
    dir: TempDir,
    cores: usize,
    relay_bin: PathBuf,
    upstream_port: u16,
    procs: Vec<(Proc, String)>,
}

impl Lab {
    fn base(&self, name: &str) -> Option<&str> {
        self.procs
            .iter()
            .find(|(p, _)| p.name() == name)
            .map(|(_, b)| b.as_str())
    }

    fn pid(&self, name: &str) -> Option<u32> {
        self.procs
            .iter()
            .find(|(p, _)| p.name() == name)
            .map(|(p, _)| p.pid())
    }

    fn proc_mut(&mut self, name: &str) -> Option<&mut Proc> {
        self.procs
            .iter_mut()
            .find(|(p, _)| p.name() == name)
            .map(|(p, _)| p)
    }

    /// Fails if any started process has exited.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        for (p, _) in &mut self.procs {
            p.check_alive()?;
        }
        Ok(())
    }

    async fn start_upstream(&mut self) -> anyhow::Result<()> {
        let exe = std::env::current_exe()?;
        let port = self.upstream_port;
        let mut cmd = Command::new(exe);
        cmd.args([
            "upstream",
            "--port",
            &port.to_string(),
            "--threads",
            &self.cores.to_string(),
        ]);
        self.launch("upstream", &mut cmd, Signal::SIGTERM, port, "/health")
            .await
    }

    /// Starts `cmd` as `name` (log `<name>.log`), waits until `GET <ready_path>` on `port`
    /// answers 200, and keeps it with its base URL.
    async fn launch(
        &mut self,
        name: &str,
        cmd: &mut Command,
        stop: Signal,
        port: u16,
        ready_path: &str,
    ) -> anyhow::Result<()> {
        let log = self.dir.path().join(format!("{name}.log"));
        let mut p = Proc::spawn_group(name, cmd, log, stop)?;
        let base = format!("http://127.0.0.1:{port}");
        let http = plain_client(4)?;
        let url = format!("{base}{ready_path}");
        p.wait_ready(READY_TIMEOUT, || http_ok(&http, &url)).await?;
        self.procs.push((p, base));
        Ok(())
    }

    /// Starts the bare Pingora proxy (`bare-pingora`, built beside this binary) with the
    /// relay's threads and keep-alive pool.
    async fn start_bare_pingora(&mut self) -> anyhow::Result<()> {
        let exe = std::env::current_exe()?;
        let bin = exe.with_file_name("bare-pingora");
        anyhow::ensure!(
            bin.exists(),
            "{} not found (cargo build --release -p pqrelay-bench builds it)",
            bin.display()
        );
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--upstream")
            .arg(format!("127.0.0.1:{}", self.upstream_port))
            .arg("--threads")
            .arg(self.cores.to_string())
            .arg("--keepalive-pool")
            .arg(KEEPALIVE_POOL.to_string())
            .arg("--dir")
            .arg(self.dir.path());
        self.launch("bare-pingora", &mut cmd, Signal::SIGTERM, port, "/health")
            .await
    }

    async fn start_nginx(&mut self) -> anyhow::Result<()> {
        let port = free_port();
        let dir = self.dir.path().to_owned();
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            nginx_conf(&dir, port, self.upstream_port, self.cores),
        )?;
        let mut cmd = Command::new("nginx");
        cmd.arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("nginx-error.log"));
        self.launch("nginx", &mut cmd, Signal::SIGTERM, port, "/health")
            .await
    }

    async fn start_redis(&mut self) -> anyhow::Result<u16> {
        let port = free_port();
        let p = start_redis(&self.dir, port, "redis.log", Signal::SIGTERM).await?;
        self.procs.push((p, format!("redis://127.0.0.1:{port}")));
        Ok(port)
    }

    /// Starts a relay named `name` (memory state, or Redis on `redis_port`).
    async fn start_relay(&mut self, name: &str, redis_port: Option<u16>) -> anyhow::Result<()> {
        let port = free_port();
        let dir = self.dir.path().to_owned();
        let conf = dir.join(format!("{name}.yaml"));
        std::fs::write(
            &conf,
            format!(
                "pid_file: {d}/{name}.pid\nupgrade_sock: {d}/{name}.sock\n\
                 upstream_keepalive_pool_size: {KEEPALIVE_POOL}\ngrace_period_seconds: 1\n\
                 graceful_shutdown_timeout_seconds: 1\n",
                d = dir.display()
            ),
        )?;
        let mut cmd = clean_command(&self.relay_bin);
        cmd.env(
            "UPSTREAM",
            format!("http://127.0.0.1:{}", self.upstream_port),
        )
        .env("CLIENT_ID_SECRET", SECRET)
        .env("CORS_ORIGINS", "http://localhost")
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("PASS_THROUGH_ROUTES", "/pt/*")
        .env("THREADS", self.cores.to_string())
        // All bench traffic comes from 127.0.0.1 standing in for many clients: the
        // per-IP and per-client pairing rate limits would measure themselves.
        .env("PAIR_RATE_PER_IP", "0")
        .env("PAIR_RATE_PER_CLIENT", "0")
        .arg("run")
        .arg("--config")
        .arg(&conf);
        if let Some(r) = redis_port {
            cmd.env("REDIS_URL", format!("redis://127.0.0.1:{r}"));
        }
        self.launch(name, &mut cmd, Signal::SIGINT, port, "/pt/health")
            .await
    }

    /// Stops and forgets the process `name`.
    fn stop(&mut self, name: &str) {
        if let Some(i) = self.procs.iter().position(|(p, _)| p.name() == name) {
            let (mut p, _) = self.procs.remove(i);
            p.stop();
        }
    }
}

/// A hyper client for plain traffic with room for `conns` idle connections.
pub(crate) fn plain_client(conns: usize) -> anyhow::Result<HttpClient> {
    let mut o = HttpOptions::default();
    o.max_idle_per_host = Some(conns.max(1) * 2);
    o.connect_timeout = Some(Duration::from_secs(5));
    Ok(http_client(&o)?)
}

/// Whether `GET url` answers 200 within 2 s.
pub(crate) async fn http_ok(http: &HttpClient, url: &str) -> bool {
    let Ok(req) = http::Request::get(url).body(pqrelay_client::empty_body()) else {
        return false;
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), http.request(req)).await,
        Ok(Ok(r)) if r.status() == 200
    )
}

/// One sealed `POST /json/<len>` of `body` through `client` (no content type): an error unless
/// the upstream's answer is 200 with as many bytes as were sent.
pub(crate) async fn sealed_post_json(client: &RelayClient, body: &Bytes) -> anyhow::Result<()> {
    let len = body.len();
    let resp = client
        .request(pqrelay_client::Method::POST, format!("/json/{len}"))
        .body(body.clone())
        .send()
        .await?;
    let status = resp.status();
    let got = resp.bytes().await?.len();
    anyhow::ensure!(
        status == 200 && got == len,
        "sealed POST /json/{len}: {status}, {got} bytes"
    );
    Ok(())
}

/// `conns` relay clients (one pair each) on `http`, discovered and paired.
pub(crate) async fn relay_clients(
    http: &HttpClient,
    base: &str,
    conns: usize,
) -> anyhow::Result<Vec<RelayClient>> {
    let clients = (0..conns)
        .map(|_| {
            RelayClient::builder(base)
                .http_client(http.clone())
                .pairs(1)
                .max_pairs(1)
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    for batch in clients.chunks(200) {
        for r in join_all(batch.iter().map(|c| c.connect())).await {
            r.context("discovering and pairing relay clients")?;
        }
    }
    Ok(clients)
}

fn read_info(settings: String) -> RunInfo {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let flags_hint = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags")?.split_once(':'))
        .map(|(_, v)| {
            ["aes", "avx2", "sha_ni"]
                .iter()
                .filter(|f| v.split_whitespace().any(|x| x == **f))
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .map(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .flatten()
        .map(|kib| format!("{:.1} GiB", kib as f64 / 1048576.0))
        .unwrap_or_default();
    let out = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    RunInfo {
        cpu: if flags_hint.is_empty() {
            cpu
        } else {
            format!("{cpu} (flags: {flags_hint})")
        },
        cores: out("nproc", &[]).parse().unwrap_or_else(|_| cores()),
        mem,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned(),
        date: out("date", &["-u", "+%Y-%m-%d %H:%M"]),
        commit: {
            let c = out("git", &["rev-parse", "--short", "HEAD"]);
            let dirty = !out("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
            if dirty {
                format!("{c} (work tree modified)")
            } else {
                c
            }
        },
        settings,
        load_start: loadavg(),
        load_end: String::new(),
    }
}

/// The 1, 5 and 15 minute load averages.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Cores available to this process.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs everything; writes `opts.out`; returns the results.
/// Only the memory measurement (`memory` subcommand): relay RSS growth for `clients` pairs.
pub(crate) async fn memory_only(relay_bin: PathBuf, clients: usize) -> anyhow::Result<Memory> {
    let mut lab = Lab {
        dir: TempDir::new("pqrelay-bench")?,
        cores: cores(),
        relay_bin,
        upstream_port: free_port(),
        procs: Vec::new(),
    };
    lab.start_upstream().await?;
    let mut plan = Plan::new(&Options {
        quick: false,
        out: PathBuf::new(),
        relay_bin: lab.relay_bin.clone(),
        secs: None,
    });
    plan.memory_clients = clients;
    Ok(memory(&mut lab, &plan).await)
}

pub(crate) async fn all(opts: &Options) -> anyhow::Result<Results> {
    let plan = Plan::new(opts);
    let cores = cores();
    anyhow::ensure!(
        opts.relay_bin.exists(),
        "relay binary {} not found (build it: cargo build --release -p pqrelay)",
        opts.relay_bin.display()
    );
    let mut lab = Lab {
        dir: TempDir::new("pqrelay-bench")?,
        cores,
        relay_bin: opts.relay_bin.clone(),
        upstream_port: free_port(),
        procs: Vec::new(),
    };
    let started = Instant::now();
    eprintln!("[bench] work dir {}", lab.dir.path().display());
    lab.start_upstream().await?;
    lab.start_nginx().await?;
    lab.start_bare_pingora().await?;
    let redis_port = lab.start_redis().await?;
    lab.start_relay("relay-memory", None).await?;
    lab.start_relay("relay-redis", Some(redis_port)).await?;
    eprintln!(
        "[bench] upstream, nginx, bare Pingora, redis and two relays ready ({:.1} s)",
        started.elapsed().as_secs_f64()
    );

    let mut results = Results {
        info: read_info(format!(
            "{} mode: warm-up {:?} + {:?} measured per point ({} interleaved rounds at the \
             goals' point, 300 connections, 1 KiB); request timeout {:?}; relay, bare \
             Pingora, nginx and upstream with {cores} threads/workers each",
            if opts.quick { "quick" } else { "full" },
            plan.warmup,
            plan.window,
            plan.goal_rounds,
            TIMEOUT
        )),
        open_rate: plan.open_rate,
        open_conns: plan.open_conns,
        open_rounds: plan.open_rounds,
        stream_bytes: plan.stream_bytes,
        ..Results::default()
    };

    // Does the exchange work at all? If not, the MTE rows are skipped, not failed one by one.
    let probe = async {
        let http = plain_client(2)?;
        let base = lab.base("relay-memory").unwrap_or_default().to_owned();
        let c = RelayClient::builder(base).http_client(http).build()?;
        let body = json_of_len(1024);
        let r = c
            .post("/json/1024")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        let status = r.status();
        let len = r.bytes().await?.len();
        anyhow::ensure!(
            status == 200 && len == 1024,
            "sealed POST answered {status} with {len} bytes"
        );
        anyhow::Ok(())
    };
    if let Err(e) = probe.await {
        eprintln!("[bench] sealed requests do not work, MTE rows skipped: {e:#}");
        results.mte_error = Some(format!("{e:#}"));
    }

    eprintln!("[bench] the client's cryptography for one sealed 1 KiB exchange");
    match crate::crypto::client_exchange_us() {
        Ok(us) => {
            eprintln!("  {us:.2} µs");
            results.client_crypto_us = Some(us);
        }
        Err(e) => {
            eprintln!("  FAILED: {e}");
            results.client_crypto_error = Some(e);
        }
    }
    eprintln!("[bench] the relay's cryptography for the same exchange");
    match crate::crypto::relay_exchange_us() {
        Ok(us) => {
            eprintln!("  {us:.2} µs");
            results.relay_crypto_us = Some(us);
        }
        Err(e) => eprintln!("  FAILED: {e}"),
    }

    matrix(&mut lab, &plan, &mut results).await?;
    open_loop(&mut lab, &plan, &mut results).await?;
    pairing(&mut lab, &plan, &mut results).await?;
    syscall_points(&mut lab, &mut results).await?;
    profile_points(&mut lab, &mut results).await?;
    results.load_hwm_kib = ["relay-memory", "relay-redis"]
        .iter()
        .filter_map(|n| Some((*n, proc_status_kib(lab.pid(n)?, "VmHWM")?)))
        .collect();
    lab.stop("relay-memory");
    lab.stop("relay-redis");
    lab.stop("redis");
    lab.stop("bare-pingora");
    streams(&mut lab, &plan, &mut results).await?;
    results.memory = Some(memory(&mut lab, &plan).await);
    eprintln!("[bench] done in {:.0} s", started.elapsed().as_secs_f64());
    results.info.load_end = loadavg();
    report::write(&opts.out, &results)?;
    Ok(results)
}

/// The load target `name` for `size`-byte JSON on `conns` connections.
async fn target(
    lab: &Lab,
    name: &str,
    size: usize,
    conns: usize,
) -> anyhow::Result<(Target, HttpClient)> {
    let http = plain_client(conns)?;
    let plain = |base: &str, prefix: &str| -> anyhow::Result<Target> {
        Ok(Target::Plain {
            http: http.clone(),
            uri: format!("{base}{prefix}/json/{size}").parse::<Uri>()?,
        })
    };
    let t = match name {
        DIRECT => plain(lab.base("upstream").context("no upstream")?, "")?,
        NGINX => plain(lab.base("nginx").context("no nginx")?, "")?,
        BARE => plain(lab.base("bare-pingora").context("no bare Pingora")?, "")?,
        PASS => plain(lab.base("relay-memory").context("no relay")?, "/pt")?,
        MTE_MEM | MTE_REDIS => {
            let relay = if name == MTE_MEM {
                "relay-memory"
            } else {
                "relay-redis"
            };
            let base = lab.base(relay).context("no relay")?;
            Target::Relay {
                clients: relay_clients(&http, base, conns).await?,
                path: format!("/json/{size}"),
            }
        }
        _ => anyhow::bail!("unknown target {name}"),
    };
    Ok((t, http))
}

/// The proxy processes of a target: none for "direct", nginx with its workers, the relay (plus
/// redis-server for Redis).
fn proxy_procs(name: &str) -> &'static [&'static str] {
    match name {
        NGINX => &["nginx"],
        BARE => &["bare-pingora"],
        PASS | MTE_MEM => &["relay-memory"],
        MTE_REDIS => &["relay-redis", "redis"],
        _ => &[],
    }
}

/// CPU seconds used so far by the proxy, this process (the load generator) and the upstream.
fn cpu_now(lab: &Lab, name: &str) -> [Option<f64>; 3] {
    let procs = proxy_procs(name);
    let proxy = (!procs.is_empty())
        .then(|| {
            procs
                .iter()
                .map(|p| lab.pid(p).and_then(crate::procs::cpu_secs_with_children))
                .sum::<Option<f64>>()
        })
        .flatten();
    let upstream = lab
        .pid("upstream")
        .and_then(crate::procs::cpu_secs_with_children);
    [proxy, crate::procs::own_cpu_secs(), upstream]
}

/// CPU µs per request between two [`cpu_now`] samples over `sent` requests.
fn cpu_per_request(before: [Option<f64>; 3], after: [Option<f64>; 3], sent: u64) -> Cpu {
    let per = |i: usize| match (before[i], after[i]) {
        (Some(a), Some(b)) if sent > 0 => Some((b - a) * 1e6 / sent as f64),
        _ => None,
    };
    Cpu {
        proxy: per(0),
        generator: per(1),
        upstream: per(2),
    }
}

/// One load run of `name`: the outcome and its CPU µs per request.
async fn measure(
    lab: &mut Lab,
    results: &Results,
    name: &'static str,
    size: usize,
    spec: &Spec,
) -> Result<(Outcome, Cpu), String> {
    if matches!(name, MTE_MEM | MTE_REDIS) {
        if let Some(e) = &results.mte_error {
            return Err(format!("skipped: {e}"));
        }
    }
    let run = async {
        let (t, _http) = target(lab, name, size, spec.conns).await?;
        let before = cpu_now(lab, name);
        let o = load::run(Arc::new(t), spec).await?;
        let cpu = cpu_per_request(before, cpu_now(lab, name), o.sent);
        anyhow::Ok((o, cpu))
    };
    let r = run.await.map_err(|e| format!("{e:#}"));
    match &r {
        Ok((o, cpu)) => eprintln!(
            "  {name:<22} {}  cpu µs/req proxy / gen / upstream: {}",
            o.summary(),
            cpu.cell()
        ),
        Err(e) => eprintln!("  {name:<22} FAILED: {e}"),
    }
    lab.check_alive().map_err(|e| format!("{e:#}"))?;
    // Let the closed connections drain before the next point.
    tokio::time::sleep(Duration::from_millis(300)).await;
    r
}

fn to_point(r: Result<(Outcome, Cpu), String>) -> Point {
    match r {
        Ok((o, cpu)) => {
            let mut p = Point::from(&o);
            p.cpu = cpu;
            p
        }
        Err(e) => Point::failed(e),
    }
}

async fn matrix(lab: &mut Lab, plan: &Plan, results: &mut Results) -> anyhow::Result<()> {
    for &conns in &plan.conns {
        for &size in &plan.sizes {
            eprintln!(
                "[bench] closed loop: {conns} connections, {} KiB",
                size / 1024
            );
            let spec = Spec {
                conns,
                warmup: plan.warmup,
                duration: plan.window,
                rate: None,
                body: json_of_len(size),
                expect_len: Some(size),
                timeout: TIMEOUT,
            };
            let rounds = if (conns, size) == (GOAL_CONNS, GOAL_SIZE) {
                plan.goal_rounds
            } else {
                1
            };
            let points = interleaved(lab, results, size, &spec, rounds).await;
            for (target, r) in TARGETS.into_iter().zip(points) {
                results.matrix.push(MatrixPoint {
                    conns,
                    size,
                    target,
                    point: to_point(r),
                });
            }
        }
    }
    Ok(())
}

async fn open_loop(lab: &mut Lab, plan: &Plan, results: &mut Results) -> anyhow::Result<()> {
    eprintln!(
        "[bench] open loop: {} req/s over {} connections, 1 KiB",
        plan.open_rate, plan.open_conns
    );
    let spec = Spec {
        conns: plan.open_conns,
        warmup: plan.warmup,
        duration: plan.window,
        rate: Some(plan.open_rate),
        body: json_of_len(1024),
        expect_len: Some(1024),
        timeout: TIMEOUT,
    };
    let pooled = interleaved(lab, results, 1024, &spec, plan.open_rounds).await;
    for (name, r) in TARGETS.into_iter().zip(pooled) {
        if let Ok((o, _)) = &r {
            eprintln!("  {name:<22} pooled: {}", o.summary());
        }
        results.open.push((name, to_point(r)));
    }
    Ok(())
}

/// Every target's load point, `rounds` times: rounds interleave the targets so that a passing
/// disturbance on this shared machine does not land on one target only. Each target's
/// outcomes are pooled and its CPU per request is the median of its rounds'.
async fn interleaved(
    lab: &mut Lab,
    results: &Results,
    size: usize,
    spec: &Spec,
    rounds: usize,
) -> Vec<Result<(Outcome, Cpu), String>> {
    let mut pooled: Vec<Result<(Outcome, Vec<Cpu>), String>> =
        TARGETS.iter().map(|_| Err(String::new())).collect();
    for round in 0..rounds {
        if rounds > 1 {
            eprintln!("  round {} of {rounds}", round + 1);
        }
        for (i, name) in TARGETS.into_iter().enumerate() {
            let r = measure(lab, results, name, size, spec).await;
            pooled[i] = match (std::mem::replace(&mut pooled[i], Err(String::new())), r) {
                (Ok((mut all, mut cpus)), Ok((o, cpu))) => {
                    all.merge(&o);
                    cpus.push(cpu);
                    Ok((all, cpus))
                }
                (Err(_), Ok((o, cpu))) if round == 0 => Ok((o, vec![cpu])),
                (_, Err(e)) | (Err(e), _) => Err(e),
            };
        }
    }
    pooled
        .into_iter()
        .map(|r| r.map(|(o, cpus)| (o, Cpu::median(&cpus))))
        .collect()
}

/// Syscalls per request of the relay's pass-through route, the bare Pingora proxy and nginx
/// (300 connections, 1 KiB, closed loop): `strace -c` on every thread for a few seconds.
async fn syscall_points(lab: &mut Lab, results: &mut Results) -> anyhow::Result<()> {
    for name in [PASS, BARE, NGINX] {
        eprintln!(
            "[bench] syscalls per request: {name} (strace -c, {} s)",
            syscalls::TRACED_SECS
        );
        let r = syscall_point(lab, name).await;
        match (r.per_request(r.total), &r.error) {
            (Some(per), _) => {
                let top: Vec<String> = r
                    .by_name
                    .iter()
                    .take(syscalls::TOP)
                    .map(|(n, c)| format!("{n} {:.2}", *c as f64 / r.requests as f64))
                    .collect();
                eprintln!(
                    "  {per:.2} syscalls per request over {} requests: {}",
                    r.requests,
                    top.join(", ")
                );
            }
            (None, e) => eprintln!("  not measured: {}", e.as_deref().unwrap_or("no requests")),
        }
        lab.check_alive()?;
        results.syscalls.push(r);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(())
}

/// A closed-loop load of `name` at the goals' point (300 connections, 1 KiB) ready to be traced: the proxy's
/// processes, and a target whose connections a short untraced run opened.
struct Warmed {
    /// The proxy's processes (nginx: the master and its workers).
    pids: Vec<u32>,
    target: Arc<Target>,
    /// The traced run: no warm-up, so every request it counts happens while traced.
    spec: Spec,
    _http: HttpClient,
}

impl Warmed {
    /// Prepares `name` for a traced run of `secs` seconds.
    async fn new(lab: &Lab, name: &'static str, secs: f64) -> Result<Warmed, String> {
        let mut pids = Vec::new();
        for proc_name in proxy_procs(name) {
            let pid = lab
                .pid(proc_name)
                .ok_or_else(|| format!("{proc_name} is not running"))?;
            // nginx: the master and its workers are separate processes.
            pids.push(pid);
            pids.extend(crate::procs::children(pid));
        }
        if pids.is_empty() {
            return Err(format!("{name} has no proxy to trace"));
        }
        let (t, http) = target(lab, name, GOAL_SIZE, GOAL_CONNS)
            .await
            .map_err(|e| format!("{e:#}"))?;
        let t = Arc::new(t);
        let mut spec = Spec {
            conns: GOAL_CONNS,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(1),
            rate: None,
            body: json_of_len(GOAL_SIZE),
            expect_len: Some(GOAL_SIZE),
            timeout: TIMEOUT,
        };
        load::run(t.clone(), &spec)
            .await
            .map_err(|e| format!("opening connections: {e:#}"))?;
        spec.duration = Duration::from_secs_f64(secs);
        Ok(Warmed {
            pids,
            target: t,
            spec,
            _http: http,
        })
    }

    /// The traced run: the requests it completed, an error if any failed.
    async fn run(&self) -> anyhow::Result<u64> {
        let o = load::run(self.target.clone(), &self.spec).await?;
        anyhow::ensure!(o.errors == 0, "{} failed requests while traced", o.errors);
        Ok(o.sent)
    }
}

/// One syscall point: `strace -c` on the proxy's processes during a [`Warmed`] run.
async fn syscall_point(lab: &Lab, name: &'static str) -> Syscalls {
    let w = match Warmed::new(lab, name, syscalls::TRACED_SECS).await {
        Ok(w) => w,
        Err(e) => {
            return Syscalls {
                target: name,
                error: Some(e),
                ..Syscalls::default()
            }
        }
    };
    let file_name = proxy_procs(name).first().copied().unwrap_or_default();
    syscalls::trace(name, &w.pids, lab.dir.path(), file_name, w.run()).await
}

/// Profiles (`perf record`) of the targets that the CPU goals missed in the closed-loop
/// points compare, each on the side its goal measures, at the goals' point.
async fn profile_points(lab: &mut Lab, results: &mut Results) -> anyhow::Result<()> {
    let mut wanted: Vec<(&'static str, Vec<Side>)> = Vec::new();
    for (_, c) in results.missed_cpu_goals() {
        for name in [c.a, c.b] {
            match wanted.iter_mut().find(|(n, _)| *n == name) {
                Some((_, sides)) if !sides.contains(&c.side) => sides.push(c.side),
                Some(_) => {}
                None => wanted.push((name, vec![c.side])),
            }
        }
    }
    for (name, sides) in wanted {
        eprintln!(
            "[bench] profile: {name} ({}; perf, {} s)",
            sides
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(", "),
            profiles::SAMPLED_SECS
        );
        let sampled = match Warmed::new(lab, name, profiles::SAMPLED_SECS).await {
            Ok(w) => {
                let groups: Vec<(Side, Vec<u32>)> = sides
                    .iter()
                    .map(|&side| match side {
                        Side::Proxy => (side, w.pids.clone()),
                        Side::Generator => (side, vec![std::process::id()]),
                    })
                    .collect();
                let file_name = name.replace([' ', '(', ')'], "");
                profiles::sample(name, &groups, lab.dir.path(), &file_name, w.run()).await
            }
            Err(e) => sides
                .iter()
                .map(|&side| Profile {
                    target: name,
                    side,
                    error: Some(e.clone()),
                    ..Profile::default()
                })
                .collect(),
        };
        for p in sampled {
            match &p.error {
                None => eprintln!(
                    "  {}: {:.1} µs/req sampled over {} requests",
                    p.side.name(),
                    p.total_us(),
                    p.requests
                ),
                Some(e) => eprintln!("  {}: not profiled: {e}", p.side.name()),
            }
            results.profiles.push(p);
        }
        lab.check_alive()?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(())
}

async fn pairing(lab: &mut Lab, plan: &Plan, results: &mut Results) -> anyhow::Result<()> {
    for (store, relay) in [("memory", "relay-memory"), ("Redis", "relay-redis")] {
        for per in [1usize, 5] {
            eprintln!("[bench] pairing: {store}, {per} pair(s) per request");
            let base = lab.base(relay).unwrap_or_default().to_owned();
            let http = plain_client(plan.pairing_conns)?;
            let keys = Arc::new(KeyPool::new(256, &load::relay_key(&http, &base).await?)?);
            let run = async {
                let mut tokens = Vec::with_capacity(plan.pairing_conns);
                for _ in 0..plan.pairing_conns {
                    tokens.push(load::discover(&http, &base).await?);
                }
                let t = Target::Pairing {
                    http: http.clone(),
                    uri: format!("{base}/api/mte-pair").parse()?,
                    tokens,
                    pairs: per,
                    keys: keys.clone(),
                };
                let spec = Spec {
                    conns: plan.pairing_conns,
                    warmup: plan.warmup,
                    duration: plan.window,
                    rate: None,
                    body: Bytes::new(),
                    expect_len: None,
                    timeout: TIMEOUT,
                };
                load::run(Arc::new(t), &spec).await
            };
            let point = match run.await {
                Ok(o) => {
                    eprintln!(
                        "  {store:<8} {per}/req  {}  ({:.0} pairs/s)",
                        o.summary(),
                        o.rps() * per as f64
                    );
                    Point::from(&o)
                }
                Err(e) => {
                    eprintln!("  {store:<8} {per}/req  FAILED: {e:#}");
                    Point::failed(format!("{e:#}"))
                }
            };
            lab.check_alive()?;
            results.pairing.push((store, per, point));
        }
    }
    Ok(())
}

async fn streams(lab: &mut Lab, plan: &Plan, results: &mut Results) -> anyhow::Result<()> {
    let len = plan.stream_bytes;
    let mbs = |d: Duration| len as f64 / 1e6 / d.as_secs_f64();
    for via in [DIRECT, NGINX, PASS, MTE_MEM] {
        eprintln!("[bench] streams: {} MiB via {via}", len >> 20);
        let mut row = StreamRow {
            via,
            ..StreamRow::default()
        };
        let relay = matches!(via, PASS | MTE_MEM).then_some("relay-stream");
        if via == MTE_MEM && results.mte_error.is_some() {
            row.error = Some("skipped: sealed requests do not work".into());
            results.streams.push(row);
            continue;
        }
        if relay.is_some() {
            lab.start_relay("relay-stream", None).await?;
        }
        let http = plain_client(2)?;
        let run = async {
            let (up, down) = match via {
                DIRECT | NGINX | PASS => {
                    let base = match via {
                        DIRECT => lab.base("upstream").unwrap_or_default().to_owned(),
                        NGINX => lab.base("nginx").unwrap_or_default().to_owned(),
                        _ => format!("{}/pt", lab.base("relay-stream").unwrap_or_default()),
                    };
                    let up = stream::upload(Via::Plain(&http, &base), len).await?;
                    let down = stream::download(Via::Plain(&http, &base), len).await?;
                    (up, down)
                }
                _ => {
                    let base = lab.base("relay-stream").unwrap_or_default();
                    let c = RelayClient::builder(base)
                        .http_client(http.clone())
                        .build()?;
                    let up = stream::upload(Via::Relay(&c), len).await?;
                    let down = stream::download(Via::Relay(&c), len).await?;
                    (up, down)
                }
            };
            anyhow::Ok((up, down))
        };
        match run.await {
            Ok((up, down)) => {
                row.upload_mbs = Some(mbs(up));
                row.download_mbs = Some(mbs(down));
                eprintln!(
                    "  upload {:.0} MB/s, download {:.0} MB/s",
                    mbs(up),
                    mbs(down)
                );
            }
            Err(e) => {
                eprintln!("  FAILED: {e:#}");
                row.error = Some(format!("{e:#}"));
            }
        }
        if relay.is_some() {
            if let Some(p) = lab.proc_mut("relay-stream") {
                row.relay_hwm_kib = proc_status_kib(p.pid(), "VmHWM");
                if let Some(h) = row.relay_hwm_kib {
                    eprintln!("  relay peak RSS {:.1} MiB", h as f64 / 1024.0);
                }
            }
            lab.stop("relay-stream");
        }
        results.streams.push(row);
    }
    Ok(())
}

/// Pairs `plan.memory_clients` clients of one pair each into a fresh memory relay and
/// measures its RSS growth.
async fn memory(lab: &mut Lab, plan: &Plan) -> Memory {
    let n = plan.memory_clients;
    eprintln!("[bench] memory: {n} clients of one pair each");
    let mut m = Memory {
        clients: n,
        ..Memory::default()
    };
    let run = async {
        lab.start_relay("relay-pairs", None).await?;
        let base = lab.base("relay-pairs").unwrap_or_default().to_owned();
        let pid = lab.proc_mut("relay-pairs").context("no relay")?.pid();
        let conns = plan.pairing_conns;
        let http = plain_client(conns)?;
        let uri: Uri = format!("{base}/api/mte-pair").parse()?;
        let keys = Arc::new(KeyPool::new(64, &load::relay_key(&http, &base).await?)?);
        // Warm the relay before the baseline: every connection pairs a few clients at once, so
        // that the pairing pool's threads, the connections' buffers and the first allocations
        // exist before it (they are not memory per pair).
        let warm = (0..conns).map(|_| async {
            for _ in 0..4 {
                let token = load::discover(&http, &base).await?;
                pair_when_free(&http, &uri, &token, &keys).await?;
            }
            anyhow::Ok(())
        });
        for r in join_all(warm).await {
            r?;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = proc_status_kib(pid, "VmRSS").context("reading VmRSS")?;
        let start = Instant::now();
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let workers = (0..conns).map(|_| {
            let (http, base, uri, keys, next) = (
                http.clone(),
                base.clone(),
                uri.clone(),
                keys.clone(),
                next.clone(),
            );
            tokio::spawn(async move {
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                    let token = load::discover(&http, &base).await?;
                    pair_when_free(&http, &uri, &token, &keys).await?;
                }
                anyhow::Ok(())
            })
        });
        for r in join_all(workers).await {
            r.context("pairing worker panicked")??;
        }
        let secs = start.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let after = proc_status_kib(pid, "VmRSS").context("reading VmRSS")?;
        anyhow::Ok((before, after, secs))
    };
    match tokio::time::timeout(Duration::from_secs(300), run).await {
        Ok(Ok((before, after, secs))) => {
            m.rss_before_kib = before;
            m.rss_after_kib = after;
            m.secs = secs;
            eprintln!(
                "  RSS {:.1} → {:.1} MiB in {secs:.1} s: {:.0} bytes per pair",
                before as f64 / 1024.0,
                after as f64 / 1024.0,
                m.bytes_per_pair().unwrap_or(0.0)
            );
        }
        Ok(Err(e)) => {
            eprintln!("  FAILED: {e:#}");
            m.error = Some(format!("{e:#}"));
        }
        Err(_) => m.error = Some("timed out after 300 s".into()),
    }
    lab.stop("relay-pairs");
    m
}

/// Pairs one client, asking again while the relay's pairing pool is full (503 `pairing_busy`;
/// not expected with `plan.pairing_conns` connections, kept so that a relay with a smaller
/// pool still gets measured).
async fn pair_when_free(
    http: &HttpClient,
    uri: &Uri,
    token: &str,
    keys: &KeyPool,
) -> anyhow::Result<()> {
    let mut busy = 0u32;
    loop {
        match load::pair(http, uri, token, keys, 1).await {
            Ok(_) => return Ok(()),
            Err(e) if e.contains("pairing_busy") && busy < 1000 => {
                busy += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err(e) => anyhow::bail!(e),
        }
    }
}

/// The default relay binary: `$CARGO_TARGET_DIR/release/pqrelay`, else beside this binary.
pub(crate) fn default_relay_bin() -> PathBuf {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("pqrelay")));
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => Path::new(&d).join("release").join("pqrelay"),
        None => beside.unwrap_or_else(|| PathBuf::from("target/release/pqrelay")),
    }
}
