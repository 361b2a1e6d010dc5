//! Starts the real relay binary and the real demo upstream (`pqrelay demo-upstream`) on
//! loopback, kills them on drop, and taps the bytes between client and relay. A minimal copy
//! of the root `tests/common/` process code (a member crate cannot import it).
//!
//! The relay binary is `$PQRELAY_BIN`, else `pqrelay` beside this test's own build output
//! (`<target>/debug/pqrelay`: `cargo build --workspace` and `.ci/run` build it first).

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The client id secret of most tests (32 characters).
pub const SECRET: &str = "client-test-secret-0123456789abc";
/// Another secret, for rotation.
pub const NEW_SECRET: &str = "client-test-rotated-0123456789ab";

/// The relay binary: `$PQRELAY_BIN`, else `pqrelay` in the target directory of this test.
pub fn relay_bin() -> PathBuf {
    let path = match std::env::var_os("PQRELAY_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            // <target>/debug/deps/<this test> -> <target>/debug/pqrelay
            let exe = std::env::current_exe().expect("test executable path");
            let debug = exe.parent().and_then(|d| d.parent()).expect("target dir");
            debug.join(format!("pqrelay{}", std::env::consts::EXE_SUFFIX))
        }
    };
    assert!(
        path.is_file(),
        "relay binary {} not found: build it first (`cargo build -p pqrelay`, or \
         `cargo build --workspace` as .ci/run does) or set PQRELAY_BIN",
        path.display()
    );
    path
}

/// A free loopback port (bound then released; a small race is accepted).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// A child process killed (and reaped) on drop; its output goes to a log file.
pub struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(tag: &str, port: u16, env: &[(&str, &str)], args: &[&str]) -> Proc {
        let log = std::env::temp_dir().join(format!(
            "pqrelay-client-test-{tag}-{port}-{}.log",
            std::process::id()
        ));
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(relay_bin());
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().copied())
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file);
        let child = cmd.spawn().expect("cannot start the relay binary");
        let mut proc = Proc { child, log };
        proc.wait_port(port);
        proc
    }

    /// The process's output so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_port(&mut self, port: u16) {
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
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The real demo upstream on a free port.
pub struct Upstream {
    pub proc: Proc,
    pub port: u16,
}

impl Upstream {
    pub fn start() -> Upstream {
        let port = free_port();
        let proc = Proc::spawn(
            "upstream",
            port,
            &[],
            &["demo-upstream", "--port", &port.to_string()],
        );
        Upstream { proc, port }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// The real relay (memory state, one thread) in front of an upstream.
pub struct Relay {
    pub proc: Proc,
    pub port: u16,
}

impl Relay {
    /// Starts on a free port with CLIENT_ID_SECRET = [`SECRET`]; `env` overrides.
    pub fn start(upstream: &Upstream, env: &[(&str, &str)]) -> Relay {
        Self::start_on(free_port(), upstream, env)
    }

    /// Starts on `port` (to restart a relay where its clients expect it).
    pub fn start_on(port: u16, upstream: &Upstream, env: &[(&str, &str)]) -> Relay {
        let port_s = port.to_string();
        let tmp = std::env::temp_dir();
        let pid = tmp.join(format!("pqrelay-client-test-{port}.pid"));
        let sock = tmp.join(format!("pqrelay-client-test-{port}.sock"));
        let (pid, sock, upstream) = (
            pid.display().to_string(),
            sock.display().to_string(),
            upstream.url(),
        );
        let mut all: Vec<(&str, &str)> = vec![
            ("UPSTREAM", &upstream),
            ("CLIENT_ID_SECRET", SECRET),
            ("CORS_ORIGINS", "https://app.example.com"),
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
        let proc = Proc::spawn("relay", port, &all, &[]);
        Relay { proc, port }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the relay (its memory state is lost) and starts it again on the same port with
    /// `env`. Waits asynchronously in between so that clients see their connections close.
    pub async fn restart(self, upstream: &Upstream, env: &[(&str, &str)]) -> Relay {
        let port = self.port;
        drop(self);
        tokio::time::sleep(Duration::from_millis(200)).await;
        Relay::start_on(port, upstream, env)
    }
}

/// A TCP forwarder in front of `target` that records every byte in both directions: what an
/// attacker on the wire sees.
pub struct Tap {
    pub port: u16,
    pub bytes: Arc<Mutex<Vec<u8>>>,
}

impl Tap {
    pub async fn start(target_port: u16) -> Tap {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let log = bytes.clone();
        tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let Ok(up) = tokio::net::TcpStream::connect(("127.0.0.1", target_port)).await
                else {
                    continue;
                };
                let (dr, dw) = down.into_split();
                let (ur, uw) = up.into_split();
                tokio::spawn(pipe(dr, uw, log.clone()));
                tokio::spawn(pipe(ur, dw, log.clone()));
            }
        });
        Tap { port, bytes }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Whether `needle` crossed the wire in the clear, either way.
    pub fn saw(&self, needle: &[u8]) -> bool {
        let bytes = self.bytes.lock().unwrap();
        bytes.windows(needle.len()).any(|w| w == needle)
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    log: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                log.lock().unwrap().extend_from_slice(&buf[..n]);
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

/// A wire observer that records every event, and the record.
pub fn recorder() -> (
    Arc<Mutex<Vec<pqrelay_client::WireEvent>>>,
    impl Fn(&pqrelay_client::WireEvent) + Send + Sync + 'static,
) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    (log, move |e: &pqrelay_client::WireEvent| {
        sink.lock().unwrap().push(e.clone())
    })
}

/// Hex SHA-256 (what the demo upstream's `/upload` answers).
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
