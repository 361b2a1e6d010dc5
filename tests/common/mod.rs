//! Shared helpers for the relay-core integration tests: start the real `pqrelay` binary and a
//! real upstream on loopback, wait for their ports, and kill them on drop.

#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod exchange;
pub mod faults;
pub mod fuzz;
pub mod redis;
pub mod strict;
pub mod suite;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of the relay binary built by cargo for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_pqrelay");
/// A 32-character secret.
pub const SECRET: &str = "test-secret-0123456789abcdefghij";
/// Another 32-character secret (rotation tests).
pub const OLD_SECRET: &str = "old-secret-0123456789abcdefghijk";
/// The allowed origin used by most tests.
pub const ORIGIN: &str = "https://app.example.com";

/// A free loopback port (bound then released; a small race is accepted).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// A child process killed (and reaped) on drop; its stderr goes to a log file.
pub struct Proc {
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// The process's stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `port` accepts connections; panics with the log if the process died.
    pub fn wait_port(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("process exited early ({status}):\n{}", self.log_text());
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("port {port} never opened:\n{}", self.log_text());
    }

    /// Waits until the log contains `needle` (up to 10 s).
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.log_text();
            if text.contains(needle) || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Proc {
    /// Wraps a spawned child whose stderr goes to `log`.
    pub fn from_child(child: Child, log: PathBuf) -> Proc {
        Proc { child, log }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn log_path(tag: &str, port: u16) -> PathBuf {
    std::env::temp_dir().join(format!(
        "pqrelay-test-{tag}-{port}-{}.log",
        std::process::id()
    ))
}

/// A command for the relay binary with a clean environment (PATH only).
pub fn relay_command(env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs the binary to completion (for config errors and `check-config`).
pub fn run(env: &[(&str, &str)], args: &[&str]) -> Output {
    relay_command(env, args)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run pqrelay")
}

/// The real upstream: `pqrelay demo-upstream` on a free port.
pub struct Upstream {
    pub proc: Proc,
    pub port: u16,
}

impl Upstream {
    pub fn start() -> Upstream {
        let port = free_port();
        let log = log_path("upstream", port);
        let child = relay_command(&[], &["demo-upstream", "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("cannot start demo upstream");
        let mut proc = Proc { child, log };
        proc.wait_port(port);
        Upstream { proc, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// A running relay.
pub struct Relay {
    pub proc: Proc,
    pub port: u16,
}

impl Relay {
    /// Starts the relay with the base settings (secret, origin, one thread) plus `env`.
    /// `env` entries override the base ones.
    pub fn start(upstream: &str, env: &[(&str, &str)]) -> Relay {
        Self::start_with_args(upstream, env, &[])
    }

    pub fn start_with_args(upstream: &str, env: &[(&str, &str)], args: &[&str]) -> Relay {
        Self::start_on(free_port(), upstream, env, args)
    }

    /// Starts on a given port (with that port's pid file and upgrade socket).
    pub fn start_on(port: u16, upstream: &str, env: &[(&str, &str)], args: &[&str]) -> Relay {
        let port_s = port.to_string();
        let pid = std::env::temp_dir().join(format!("pqrelay-test-{port}.pid"));
        let sock = std::env::temp_dir().join(format!("pqrelay-test-{port}.sock"));
        let pid = pid.display().to_string();
        let sock = sock.display().to_string();
        let mut all: Vec<(&str, &str)> = vec![
            ("UPSTREAM", upstream),
            ("CLIENT_ID_SECRET", SECRET),
            ("CORS_ORIGINS", ORIGIN),
            ("HOST", "127.0.0.1"),
            ("PORT", &port_s),
            ("THREADS", "1"),
            ("PID_FILE", &pid),
            ("UPGRADE_SOCK", &sock),
        ];
        for (k, v) in env {
            all.retain(|(bk, _)| bk != k);
            all.push((k, v));
        }
        let log = log_path("relay", port);
        let file = std::fs::File::create(&log).expect("log file");
        let child = relay_command(&all, args)
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("cannot start pqrelay");
        let mut proc = Proc { child, log };
        proc.wait_port(port);
        Relay { proc, port }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// An HTTP client that never follows redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// Discovery: the `x-mte-relay` value (`1.<token>`) the relay hands out.
pub async fn discover(relay: &Relay, sent: Option<&str>) -> String {
    let mut req = client().head(relay.url("/api/mte-relay"));
    if let Some(v) = sent {
        req = req.header("x-mte-relay", v);
    }
    let resp = req.send().await.expect("discovery");
    assert_eq!(resp.status(), 200);
    resp.headers()["x-mte-relay"]
        .to_str()
        .expect("ascii")
        .to_owned()
}

/// Parses a JSON error reply and checks its shape and `x-mte-relay-error` header.
pub async fn expect_error(resp: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    assert_eq!(
        resp.headers()
            .get("x-mte-relay-error")
            .and_then(|v| v.to_str().ok()),
        Some(code),
        "x-mte-relay-error"
    );
    let v: serde_json::Value = resp.json().await.expect("JSON error body");
    assert_eq!(v["status"], status);
    assert_eq!(v["error"], code);
    assert!(v["message"].is_string());
    v
}

/// `GET path` carrying `x-mte-relay: value`.
pub async fn get_with_relay_header(relay: &Relay, path: &str, value: &str) -> reqwest::Response {
    client()
        .get(relay.url(path))
        .header("x-mte-relay", value)
        .send()
        .await
        .expect("request")
}

/// Plain `GET path`.
pub async fn get(relay: &Relay, path: &str) -> reqwest::Response {
    client().get(relay.url(path)).send().await.expect("request")
}
