//! Child processes of a benchmark run: the fast upstream, nginx, redis-server and relays, and
//! their CPU use.
//!
//! Processes are `pqrelay_testkit::Proc`s started with `Proc::spawn_group`: every child gets
//! its own process group, its output goes to a log file in the run's temporary directory
//! (`pqrelay_testkit::TempDir`), and it is stopped (the whole group: nginx's workers too) when
//! dropped, so an error, a panic or Ctrl-C in the runner leaves nothing behind. What is the
//! bench's own stays here: readiness time, redis-server with the bench's log names, CPU
//! readings and nginx's configuration.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pqrelay_testkit::{redis, tcp_open, Proc, Signal, TempDir};

/// How long a child may take to become ready.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A redis-server without persistence on 127.0.0.1:`port`, logging to `log` in `dir` and
/// stopped with `stop` when dropped, once it accepts connections.
pub(crate) async fn start_redis(
    dir: &TempDir,
    port: u16,
    log: &str,
    stop: Signal,
) -> anyhow::Result<Proc> {
    let mut cmd = redis::command(dir.path(), port);
    let mut p = Proc::spawn_group("redis", &mut cmd, dir.path().join(log), stop)?;
    let addr = ([127, 0, 0, 1], port).into();
    p.wait_ready(READY_TIMEOUT, || tcp_open(addr)).await?;
    Ok(p)
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

/// The live child processes of `pid` (nginx's workers).
pub(crate) fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| stat_ticks(p).is_some_and(|(ppid, _)| ppid == pid))
        .collect()
}
