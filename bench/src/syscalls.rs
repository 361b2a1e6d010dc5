//! Syscalls per request of a proxy under closed-loop load: `strace -c` attached to its
//! processes (every thread) for a few seconds, divided by the requests completed meanwhile.
//!
//! ptrace stops the proxy at every syscall, so it runs many times slower while traced: the
//! counts per request are what matters here, not the rate (and a slower proxy may batch
//! less, so the counts are an upper bound on what it makes untraced).

use std::future::Future;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pqrelay_testkit::{Proc, Signal};

/// Traced seconds of each point.
pub(crate) const TRACED_SECS: f64 = 3.0;
/// Syscalls shown one by one in the report.
pub(crate) const TOP: usize = 5;
/// How long strace gets to attach to every thread before the load starts.
const ATTACH: Duration = Duration::from_millis(700);

/// What `strace -c` counted for one proxy.
#[derive(Clone, Debug, Default)]
pub(crate) struct Syscalls {
    /// The target (report row name).
    pub(crate) target: &'static str,
    /// Requests completed while traced.
    pub(crate) requests: u64,
    /// Every syscall counted.
    pub(crate) total: u64,
    /// Syscall names and counts, most frequent first.
    pub(crate) by_name: Vec<(String, u64)>,
    /// Why nothing was measured.
    pub(crate) error: Option<String>,
}

impl Syscalls {
    /// Syscalls per request.
    pub(crate) fn per_request(&self, calls: u64) -> Option<f64> {
        (self.error.is_none() && self.requests > 0).then(|| calls as f64 / self.requests as f64)
    }
}

/// Traces `pids` (each with all its threads) with `strace -c` while `load` runs; `load`
/// returns the requests it completed. strace's output goes to `<dir>/strace-<name>.txt`.
pub(crate) async fn trace<F>(
    target: &'static str,
    pids: &[u32],
    dir: &Path,
    name: &str,
    load: F,
) -> Syscalls
where
    F: Future<Output = anyhow::Result<u64>>,
{
    let mut out = Syscalls {
        target,
        ..Syscalls::default()
    };
    let file = dir.join(format!("strace-{name}.txt"));
    let mut cmd = Command::new("strace");
    cmd.arg("-c").arg("-f").arg("-o").arg(&file);
    for pid in pids {
        cmd.arg("-p").arg(pid.to_string());
    }
    let log = dir.join(format!("strace-{name}.log"));
    let mut strace = match Proc::spawn_group("strace", &mut cmd, log, Signal::SIGINT) {
        Ok(p) => p,
        Err(e) => {
            out.error = Some(format!("cannot start strace: {e}"));
            return out;
        }
    };
    tokio::time::sleep(ATTACH).await;
    if let Err(e) = strace.check_alive() {
        out.error = Some(format!("strace could not attach: {e}"));
        return out;
    }
    let requests = load.await;
    // SIGINT: strace detaches and writes its summary.
    strace.stop();
    match requests {
        Ok(n) => out.requests = n,
        Err(e) => {
            out.error = Some(format!("load failed: {e:#}"));
            return out;
        }
    }
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let (total, by_name) = parse_summary(&text);
    if total == 0 {
        out.error = Some(format!(
            "strace counted nothing: {}",
            text.lines().next().unwrap_or("(no output)")
        ));
    }
    out.total = total;
    out.by_name = by_name;
    out
}

/// The total and the per-syscall counts of a `strace -c` summary, most frequent first.
///
/// Rows are `% time  seconds  usecs/call  calls  [errors]  syscall`; the last is `total`.
fn parse_summary(text: &str) -> (u64, Vec<(String, u64)>) {
    let mut total = 0;
    let mut rows = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 || f[0].parse::<f64>().is_err() {
            continue;
        }
        let (Some(name), Some(calls)) = (f.last(), f.get(3).and_then(|c| c.parse::<u64>().ok()))
        else {
            continue;
        };
        if *name == "total" {
            total = calls;
        } else {
            rows.push((name.to_string(), calls));
        }
    }
    if total == 0 {
        total = rows.iter().map(|(_, c)| c).sum();
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    (total, rows)
}

#[cfg(test)]
mod tests {
    use super::parse_summary;

    #[test]
    fn parse_summary_reads_calls_and_total() {
        let text = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 40.00    0.004000           2      2000           sendto
 30.00    0.003000           1      3000       500 recvfrom
 30.00    0.003000           3      1000           epoll_wait
------ ----------- ----------- --------- --------- ----------------
100.00    0.010000           1      6000       500 total
";
        let (total, rows) = parse_summary(text);
        assert_eq!(total, 6000);
        assert_eq!(rows[0], ("recvfrom".to_string(), 3000));
        assert_eq!(rows.len(), 3);
    }
}
