//! Child processes of a benchmark run: the fast upstream, nginx, redis-server and relays.
//!
//! Every child gets its own process group, its output goes to a log file in the run's
//! temporary directory, and it is stopped (the whole group: nginx's workers too) when its
//! [`Proc`] is dropped, so an error, a panic or Ctrl-C in the runner leaves nothing behind.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// How long a child may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a child may take to exit after its stop signal before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// A temporary directory removed on drop.
pub(crate) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `$TMPDIR/pqrelay-bench-<pid>`.
    pub(crate) fn new() -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("pqrelay-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A free port on 127.0.0.1 (bound, read, released).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// A running child process, stopped on drop.
pub(crate) struct Proc {
    name: String,
    child: Child,
    stop_signal: Signal,
    log: PathBuf,
    stopped: bool,
}

impl Proc {
    /// Starts `cmd` in its own process group with stdout and stderr appended to `log`.
    pub(crate) fn spawn(
        name: &str,
        cmd: &mut Command,
        log: PathBuf,
        stop_signal: Signal,
    ) -> anyhow::Result<Self> {
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            stop_signal,
            log,
            stopped: false,
        })
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The name given at spawn.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Fails (with the log's tail) if the process has exited.
    pub(crate) fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); last lines of {}:\n{}",
                self.name,
                self.log.display(),
                self.log_tail(20)
            );
        }
        Ok(())
    }

    /// The last `n` lines of the log.
    pub(crate) fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// A `/proc/<pid>/status` field in KiB (`VmRSS`, `VmHWM`).
    pub(crate) fn status_kib(&self, field: &str) -> Option<u64> {
        proc_status_kib(self.pid(), field)
    }

    /// Waits until `probe` succeeds, failing if the process exits or [`READY_TIMEOUT`] passes.
    pub(crate) async fn wait_ready<F, Fut>(&mut self, mut probe: F) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        loop {
            self.check_alive()?;
            if probe().await {
                return Ok(());
            }
            if start.elapsed() > READY_TIMEOUT {
                bail!(
                    "{} not ready after {READY_TIMEOUT:?}; last lines of {}:\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends the stop signal to the process group, waits up to [`STOP_TIMEOUT`], then kills
    /// the group. Idempotent.
    pub(crate) fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let pgid = Pid::from_raw(self.child.id() as i32);
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = killpg(pgid, self.stop_signal);
            let start = Instant::now();
            while start.elapsed() < STOP_TIMEOUT {
                if self.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Whatever is left of the group (a lingering nginx worker, a stuck child) goes now.
        let _ = killpg(pgid, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A redis-server without persistence on 127.0.0.1:`port`, logging to `log` in `dir` and
/// stopped with `stop` when dropped, once it accepts connections.
pub(crate) async fn start_redis(
    dir: &TempDir,
    port: u16,
    log: &str,
    stop: Signal,
) -> anyhow::Result<Proc> {
    let mut cmd = Command::new("redis-server");
    cmd.current_dir(dir.path()).args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
    ]);
    let mut p = Proc::spawn("redis", &mut cmd, dir.path().join(log), stop)?;
    let addr = ([127, 0, 0, 1], port).into();
    p.wait_ready(|| tcp_open(addr)).await?;
    Ok(p)
}

/// A `/proc/<pid>/status` field in KiB.
pub(crate) fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU seconds (user + system) used by `pid` and its live children (nginx's workers).
pub(crate) fn cpu_secs_with_children(pid: u32) -> Option<f64> {
    let mut total = 0u64;
    let mut found = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(p) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Some((ppid, ticks)) = stat_ticks(p) else {
            continue;
        };
        if p == pid || ppid == pid {
            total += ticks;
            found |= p == pid;
        }
    }
    found.then(|| total as f64 / clock_ticks())
}

/// CPU seconds (user + system) used by this process (the load generator) alone.
pub(crate) fn own_cpu_secs() -> Option<f64> {
    stat_ticks(std::process::id()).map(|(_, ticks)| ticks as f64 / clock_ticks())
}

/// `pid`'s parent and its user + system clock ticks, from `/proc/<pid>/stat`.
fn stat_ticks(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name: state ppid … utime(12th) stime(13th).
    let (_, rest) = stat.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ppid = f.get(1)?.parse().ok()?;
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Some((ppid, t(11) + t(12)))
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 when unknown).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// True when a TCP connection to `addr` succeeds.
pub(crate) async fn tcp_open(addr: SocketAddr) -> bool {
    tokio::time::timeout(
        Duration::from_millis(500),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .is_ok_and(|r| r.is_ok())
}

/// The nginx configuration of a plain reverse proxy to `upstream_port`: `workers` worker
/// processes, keep-alive on both sides, request and response streaming (no buffering to temp
/// files), buffered access log.
pub(crate) fn nginx_conf(dir: &Path, port: u16, upstream_port: u16, workers: usize) -> String {
    let d = dir.display();
    format!(
        r#"worker_processes {workers};
daemon off;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{
    worker_connections 8192;
}}
http {{
    access_log {d}/nginx-access.log combined buffer=64k flush=1s;
    client_body_temp_path {d}/nginx-client-body;
    proxy_temp_path {d}/nginx-proxy;
    fastcgi_temp_path {d}/nginx-fastcgi;
    uwsgi_temp_path {d}/nginx-uwsgi;
    scgi_temp_path {d}/nginx-scgi;
    keepalive_requests 1000000;
    client_max_body_size 0;
    upstream bench_upstream {{
        server 127.0.0.1:{upstream_port};
        keepalive 1024;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
            proxy_buffering off;
        }}
    }}
}}
"#
    )
}
