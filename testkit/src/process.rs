//! Child processes with a log file, stopped on drop.

use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use crate::Error;

/// How long [`Proc::wait_port`] waits for a port.
const PORT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Proc::wait_log`] waits for a line.
const LOG_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a process stopped with a signal may take to exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);
/// Log lines shown in an [`Error`].
const TAIL_LINES: usize = 40;
/// Pause between two polls.
const POLL: Duration = Duration::from_millis(20);

/// How a [`Proc`] is stopped.
enum Stop {
    /// `SIGKILL` to the process (it shares the caller's process group, so Ctrl-C reaches it).
    Kill,
    /// The signal to the process's own group, then `SIGKILL` to the group after
    /// [`STOP_TIMEOUT`] (nginx's workers go with their master).
    Group(Signal),
}

/// A running child process: stdin empty, stdout and stderr appended to a log file. It is
/// stopped, reaped and its log file removed when dropped.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    stop: Stop,
    stopped: bool,
}

impl Proc {
    /// Starts `cmd` as `name` with its output in `log`; dropped, it is killed (`SIGKILL`).
    pub fn spawn(name: &str, cmd: &mut Command, log: impl Into<PathBuf>) -> Result<Proc, Error> {
        Self::start(name, cmd, log.into(), Stop::Kill)
    }

    /// Starts `cmd` as `name` in its own process group with its output in `log`; stopping it
    /// sends `stop` to the whole group, waits up to 3 s, then kills what is left of the group.
    pub fn spawn_group(
        name: &str,
        cmd: &mut Command,
        log: impl Into<PathBuf>,
        stop: Signal,
    ) -> Result<Proc, Error> {
        cmd.process_group(0);
        Self::start(name, cmd, log.into(), Stop::Group(stop))
    }

    fn start(name: &str, cmd: &mut Command, log: PathBuf, stop: Stop) -> Result<Proc, Error> {
        let spawn_error = |context: String, source| Error::Spawn {
            name: name.to_owned(),
            context,
            source,
        };
        let out = File::create(&log)
            .map_err(|e| spawn_error(format!("creating {}", log.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| spawn_error(format!("duplicating {}", log.display()), e))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| spawn_error(format!("starting {:?}", cmd.get_program()), e))?;
        Ok(Proc {
            name: name.to_owned(),
            child,
            log,
            stop,
            stopped: false,
        })
    }

    /// The name given at start.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log file (stdout and stderr).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The log so far (empty if it cannot be read).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Fails (with the log's end) if the process has exited.
    pub fn check_alive(&mut self) -> Result<(), Error> {
        self.alive("run")
    }

    fn alive(&mut self, expected: &str) -> Result<(), Error> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(Error::Exited {
                name: self.name.clone(),
                status,
                expected: expected.to_owned(),
                log: self.log.clone(),
                tail: self.log_tail(TAIL_LINES),
            }),
            _ => Ok(()),
        }
    }

    fn timeout(&self, awaited: String, after: Duration) -> Error {
        Error::Timeout {
            name: self.name.clone(),
            awaited,
            after,
            log: self.log.clone(),
            tail: self.log_tail(TAIL_LINES),
        }
    }

    /// Waits (up to 30 s) until 127.0.0.1:`port` accepts connections; fails if the process
    /// exits first.
    pub fn wait_port(&mut self, port: u16) -> Result<(), Error> {
        let expected = format!("open port {port}");
        let deadline = Instant::now() + PORT_TIMEOUT;
        loop {
            self.alive(&expected)?;
            if crate::port_open(port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.timeout(format!("connection on port {port}"), PORT_TIMEOUT));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until the log contains `needle` or 10 s passed; returns the log either way (the
    /// caller asserts on it).
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + LOG_TIMEOUT;
        loop {
            let text = self.log_text();
            if text.contains(needle) || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits (async) until `probe` answers true, failing if the process exits or `timeout`
    /// passes.
    #[cfg(feature = "tokio")]
    pub async fn wait_ready<F, Fut>(&mut self, timeout: Duration, mut probe: F) -> Result<(), Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            self.alive("become ready")?;
            if probe().await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.timeout("readiness".to_owned(), timeout));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends `signal` to the process (not its group).
    pub fn signal(&self, signal: Signal) -> Result<(), Error> {
        kill(self.raw_pid(), signal).map_err(|source| Error::Signal {
            name: self.name.clone(),
            signal,
            source,
        })
    }

    fn raw_pid(&self) -> Pid {
        // Process ids fit in a pid_t on every Unix.
        Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX))
    }

    /// Stops the process as chosen at start and reaps it. Idempotent.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        match self.stop {
            Stop::Kill => {
                let _ = self.child.kill();
            }
            Stop::Group(signal) => {
                let group = self.raw_pid();
                if !self.exited() {
                    let _ = killpg(group, signal);
                    let deadline = Instant::now() + STOP_TIMEOUT;
                    while Instant::now() < deadline && !self.exited() {
                        std::thread::sleep(POLL);
                    }
                }
                // Whatever is left of the group (a lingering worker, a stuck child) goes now.
                let _ = killpg(group, Signal::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS`, `VmHWM`); `None` if unreadable.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Open file descriptors of a process (0 if unreadable).
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// What a process's descriptors are, one per line, for a failed descriptor check: the link
/// target, and for a TCP socket its local and remote address and state (from
/// `/proc/<pid>/net/tcp` and `tcp6`; addresses as the kernel prints them, in hex).
pub fn fd_listing(pid: u32) -> String {
    let mut sockets = std::collections::HashMap::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let (Some(local), Some(remote), Some(state), Some(inode)) =
                (f.get(1), f.get(2), f.get(3), f.get(9))
            {
                let state = TCP_STATES
                    .iter()
                    .find(|(code, _)| code == state)
                    .map_or(*state, |(_, name)| *name);
                sockets.insert(inode.to_string(), format!("{local} -> {remote} {state}"));
            }
        }
    }
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return format!("/proc/{pid}/fd unreadable");
    };
    let mut lines: Vec<String> = dir
        .flatten()
        .map(|e| {
            let target = std::fs::read_link(e.path())
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            let tcp = target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|inode| sockets.get(inode));
            let name = e.file_name().to_string_lossy().into_owned();
            match tcp {
                Some(tcp) => format!("{name}: {target} tcp {tcp}"),
                None => format!("{name}: {target}"),
            }
        })
        .collect();
    lines.sort_by_key(|l| l.split(':').next().and_then(|n| n.parse::<u32>().ok()));
    lines.join("\n")
}

/// The kernel's TCP state codes (`include/net/tcp_states.h`) and their names.
const TCP_STATES: [(&str, &str); 11] = [
    ("01", "ESTABLISHED"),
    ("02", "SYN_SENT"),
    ("03", "SYN_RECV"),
    ("04", "FIN_WAIT1"),
    ("05", "FIN_WAIT2"),
    ("06", "TIME_WAIT"),
    ("07", "CLOSE"),
    ("08", "CLOSE_WAIT"),
    ("09", "LAST_ACK"),
    ("0A", "LISTEN"),
    ("0B", "CLOSING"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_listing_names_a_listening_socket_and_its_state() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = format!(":{:04X}", listener.local_addr().unwrap().port());
        let listing = fd_listing(std::process::id());
        let line = listing.lines().find(|l| l.contains(&port));
        assert!(
            line.is_some_and(|l| l.contains("socket:[") && l.ends_with("LISTEN")),
            "{listing}"
        );
        assert_eq!(listing.lines().count(), fd_count(std::process::id()));
    }
}
