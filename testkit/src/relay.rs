//! The relay binary, relay processes and the demo upstream.
//!
//! The binary is `$PQRELAY_BIN`, else `pqrelay` in the target directory the running test was
//! built in (`<target>/debug/pqrelay` for `<target>/debug/deps/<test>`): `cargo test` builds it
//! before the relay's own tests, and `cargo build --workspace` (as `.ci/run` does) before the
//! client's.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{free_port, Proc};

/// The `CLIENT_ID_SECRET` of a test relay (32 characters).
pub const SECRET: &str = "test-secret-0123456789abcdefghij";
/// The `CORS_ORIGINS` of a test relay.
pub const ORIGIN: &str = "https://app.example.com";

/// Log files made by this process (keeps their names unique: an upgraded relay and its
/// successor share a port).
static LOGS: AtomicU32 = AtomicU32::new(0);

/// A fresh log file name in the temporary directory for a process `tag` on `port`.
fn log_path(tag: &str, port: u16) -> PathBuf {
    let n = LOGS.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "pqrelay-test-{tag}-{port}-{}-{n}.log",
        std::process::id()
    ))
}

/// The relay binary: `$PQRELAY_BIN`, else `pqrelay` in this test's target directory.
///
/// # Panics
/// When that file does not exist, saying how to build it.
pub fn relay_bin() -> PathBuf {
    let path = match std::env::var_os("PQRELAY_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            // <target>/debug/deps/<this test> -> <target>/debug/pqrelay
            let exe = std::env::current_exe().expect("the test executable's path");
            let profile_dir = exe
                .parent()
                .and_then(|deps| deps.parent())
                .unwrap_or_else(|| panic!("{} has no target directory", exe.display()));
            profile_dir.join(format!("pqrelay{}", std::env::consts::EXE_SUFFIX))
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

/// A command for `program` with a clean environment (`PATH` only).
pub fn clean_command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd
}

/// A command for the relay binary with a clean environment (`PATH` only) plus `env`.
pub fn relay_command(env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = clean_command(relay_bin());
    cmd.envs(env.iter().copied()).args(args);
    cmd
}

/// Runs the relay binary to completion (configuration errors, `check-config`).
///
/// # Panics
/// When the binary cannot be run.
pub fn run(env: &[(&str, &str)], args: &[&str]) -> Output {
    relay_command(env, args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", relay_bin().display()))
}

/// The demo upstream (`pqrelay demo-upstream`), killed on drop.
pub struct Upstream {
    /// The process.
    pub proc: Proc,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Upstream {
    /// Starts it on a free port and waits until it accepts connections.
    ///
    /// # Panics
    /// When it cannot be started or does not listen within 30 s.
    pub fn start() -> Upstream {
        Self::start_on(free_port())
    }

    /// Starts it on `port` (e.g. to bring an upstream back where a relay expects it).
    ///
    /// # Panics
    /// As [`Upstream::start`].
    pub fn start_on(port: u16) -> Upstream {
        let mut cmd = relay_command(&[], &["demo-upstream", "--port", &port.to_string()]);
        let mut proc = Proc::spawn("demo upstream", &mut cmd, log_path("upstream", port))
            .unwrap_or_else(|e| panic!("{e}"));
        proc.wait_port(port).unwrap_or_else(|e| panic!("{e}"));
        Upstream { proc, port }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// A running relay, killed on drop.
pub struct Relay {
    /// The process.
    pub proc: Proc,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Relay {
    /// Starts the relay in front of `upstream` on a free port with the test settings
    /// ([`SECRET`], [`ORIGIN`], one thread); `env` entries override them or add to them.
    ///
    /// # Panics
    /// When it cannot be started or does not listen within 30 s (with its log).
    pub fn start(upstream: &str, env: &[(&str, &str)]) -> Relay {
        Self::start_with_args(upstream, env, &[])
    }

    /// [`Relay::start`] with command-line arguments.
    pub fn start_with_args(upstream: &str, env: &[(&str, &str)], args: &[&str]) -> Relay {
        Self::start_on(free_port(), upstream, env, args)
    }

    /// [`Relay::start_with_args`] on a given port. The pid file and upgrade socket are named
    /// after the port, so a relay started with `-u` on a running relay's port takes it over.
    pub fn start_on(port: u16, upstream: &str, env: &[(&str, &str)], args: &[&str]) -> Relay {
        let port_s = port.to_string();
        let tmp = std::env::temp_dir();
        let pid = tmp.join(format!("pqrelay-test-{}-{port}.pid", std::process::id()));
        let sock = tmp.join(format!("pqrelay-test-{}-{port}.sock", std::process::id()));
        let (pid, sock) = (pid.display().to_string(), sock.display().to_string());
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
            all.retain(|(base, _)| base != k);
            all.push((k, v));
        }
        let mut cmd = relay_command(&all, args);
        let mut proc = Proc::spawn("relay", &mut cmd, log_path("relay", port))
            .unwrap_or_else(|e| panic!("{e}"));
        proc.wait_port(port).unwrap_or_else(|e| panic!("{e}"));
        Relay { proc, port }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Stops the relay (memory state is lost), waits 200 ms without blocking the runtime so
    /// that clients see their connections close, and starts it again on the same port with
    /// `env`.
    #[cfg(feature = "tokio")]
    pub async fn restart(self, upstream: &str, env: &[(&str, &str)]) -> Relay {
        let port = self.port;
        drop(self);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        Relay::start_on(port, upstream, env, &[])
    }
}
