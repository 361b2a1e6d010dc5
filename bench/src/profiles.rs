//! Where the CPU of a goal missed goes: `perf record -e cpu-clock` on the processes of a target
//! under closed-loop load for a few seconds, turned into CPU µs per request by symbol, and the
//! symbols whose cost differs most between the two targets a goal compares.
//!
//! `cpu-clock` is a software event (this VM has no hardware counters): a sample is taken every
//! 1/[`FREQ`] s of CPU time a sampled thread uses, so a symbol's samples times that period,
//! over the requests completed meanwhile, is its CPU per request.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pqrelay_testkit::{Proc, Signal};

/// Sampled seconds of each profile.
pub(crate) const SAMPLED_SECS: f64 = 3.0;
/// Samples per CPU second.
pub(crate) const FREQ: u32 = 999;
/// Symbols shown per goal.
pub(crate) const TOP: usize = 12;
/// How long perf gets to attach to every thread before the load starts.
const ATTACH: Duration = Duration::from_millis(700);

/// Whose CPU a profile samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Side {
    /// The proxy's processes (nginx: master and workers; Redis rows: the relay and
    /// redis-server).
    #[default]
    Proxy,
    /// The load generator (this process).
    Generator,
}

impl Side {
    /// As written in the report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Side::Proxy => "proxy",
            Side::Generator => "load generator",
        }
    }
}

/// What a CPU goal compares: `a`'s CPU per request over `b`'s, both on `side`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Contrast {
    pub(crate) side: Side,
    pub(crate) a: &'static str,
    pub(crate) b: &'static str,
}

/// CPU per request of one target's processes on one side, by symbol.
#[derive(Clone, Debug, Default)]
pub(crate) struct Profile {
    /// The target (report row name).
    pub(crate) target: &'static str,
    pub(crate) side: Side,
    /// Requests completed while sampled.
    pub(crate) requests: u64,
    /// CPU µs per request by symbol (`[.]` user space, `[k]` kernel), largest first.
    pub(crate) by_symbol: Vec<(String, f64)>,
    /// Why nothing was sampled.
    pub(crate) error: Option<String>,
}

impl Profile {
    /// Sampled CPU µs per request, every symbol.
    pub(crate) fn total_us(&self) -> f64 {
        self.by_symbol.iter().map(|(_, us)| us).sum()
    }
}

/// One row of [`excess`]: a symbol and its CPU µs per request in `a` and in `b`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Excess {
    pub(crate) symbol: String,
    pub(crate) a_us: f64,
    pub(crate) b_us: f64,
}

/// The `n` symbols that cost `a` the most more than `b` per request, largest first.
pub(crate) fn excess(a: &Profile, b: &Profile, n: usize) -> Vec<Excess> {
    let b_of: HashMap<&str, f64> = b
        .by_symbol
        .iter()
        .map(|(s, us)| (s.as_str(), *us))
        .collect();
    let mut rows: Vec<Excess> = a
        .by_symbol
        .iter()
        .map(|(s, us)| Excess {
            symbol: s.clone(),
            a_us: *us,
            b_us: b_of.get(s.as_str()).copied().unwrap_or(0.0),
        })
        .collect();
    rows.sort_by(|x, y| (y.a_us - y.b_us).total_cmp(&(x.a_us - x.b_us)));
    rows.truncate(n);
    rows
}

/// Samples each `(side, pids)` group (every thread of each process) with its own `perf record`
/// while `load` runs; `load` returns the requests it completed. perf's data and logs go to
/// `dir`, named after `name`.
pub(crate) async fn sample<F>(
    target: &'static str,
    groups: &[(Side, Vec<u32>)],
    dir: &Path,
    name: &str,
    load: F,
) -> Vec<Profile>
where
    F: Future<Output = anyhow::Result<u64>>,
{
    let mut profiles: Vec<Profile> = groups
        .iter()
        .map(|(side, _)| Profile {
            target,
            side: *side,
            ..Profile::default()
        })
        .collect();
    let mut perfs = Vec::new();
    for (i, (side, pids)) in groups.iter().enumerate() {
        let data = dir.join(format!(
            "perf-{name}-{}.data",
            side.name().replace(' ', "-")
        ));
        let list: Vec<String> = pids.iter().map(u32::to_string).collect();
        let mut cmd = Command::new("perf");
        cmd.args(["record", "-e", "cpu-clock", "-F", &FREQ.to_string(), "-p"])
            .arg(list.join(","))
            .arg("-o")
            .arg(&data);
        let log = dir.join(format!("perf-{name}-{i}.log"));
        match Proc::spawn_group("perf", &mut cmd, log, Signal::SIGINT) {
            Ok(p) => perfs.push((i, p, data)),
            Err(e) => profiles[i].error = Some(format!("cannot start perf: {e}")),
        }
    }
    tokio::time::sleep(ATTACH).await;
    for (i, p, _) in &mut perfs {
        if let Err(e) = p.check_alive() {
            profiles[*i].error = Some(format!("perf could not attach: {e}"));
        }
    }
    let requests = load.await;
    for (i, mut perf, data) in perfs {
        // SIGINT: perf stops sampling and writes its data.
        perf.stop();
        let p = &mut profiles[i];
        if p.error.is_some() {
            continue;
        }
        match &requests {
            Ok(n) => p.requests = *n,
            Err(e) => {
                p.error = Some(format!("load failed: {e:#}"));
                continue;
            }
        }
        match report(&data) {
            Ok(by_ns) if !by_ns.is_empty() && p.requests > 0 => {
                let per = 1e-3 / p.requests as f64;
                p.by_symbol = by_ns
                    .into_iter()
                    .map(|(s, ns)| (s, ns as f64 * per))
                    .collect();
            }
            Ok(_) => p.error = Some("perf sampled nothing".into()),
            Err(e) => p.error = Some(e),
        }
    }
    profiles
}

/// Between `perf report`'s fields: the ASCII unit separator, which no symbol holds (perf
/// writes a separator found inside a field as `.`, so `;` would mangle Rust's `[T; N]`).
const FIELD_SEPARATOR: &str = "\u{1f}";

/// Sampled CPU nanoseconds by symbol in `data`, largest first (`perf report`).
fn report(data: &Path) -> Result<Vec<(String, u64)>, String> {
    let out = Command::new("perf")
        .args([
            "report",
            "--no-children",
            "--sort",
            "sym",
            "-F",
            "period,sym",
        ])
        .args(["--stdio", "-g", "none", "-t", FIELD_SEPARATOR, "-i"])
        .arg(data)
        .output()
        .map_err(|e| format!("cannot run perf report: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "perf report failed: {}",
            err.lines().next().unwrap_or("")
        ));
    }
    Ok(parse_report(&String::from_utf8_lossy(&out.stdout)))
}

/// The rows `period<separator>symbol` of `perf report -F period,sym -t <separator>`, largest
/// first; comments and lines that do not parse are skipped.
fn parse_report(text: &str) -> Vec<(String, u64)> {
    let mut rows: Vec<(String, u64)> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (period, symbol) = l.split_once(FIELD_SEPARATOR)?;
            let period = period.trim().parse::<u64>().ok()?;
            Some((symbol.trim().to_string(), period))
        })
        .filter(|(s, _)| !s.is_empty())
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_report_reads_periods_and_symbols() {
        let text = "\
# Samples: 1K of event 'cpu-clock'
#
#       Period\u{1f}Symbol
 178178178  \u{1f}[.] __GI___libc_write
 238238238  \u{1f}[k] do_syscall_64
 not a row
 4004004    \u{1f}[.] core::array::<impl [T; N]>::map
";
        let rows = parse_report(text);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0], ("[k] do_syscall_64".to_string(), 238_238_238));
        assert_eq!(rows[2].0, "[.] core::array::<impl [T; N]>::map");
    }

    fn profile(rows: &[(&str, f64)]) -> Profile {
        Profile {
            by_symbol: rows.iter().map(|(s, us)| (s.to_string(), *us)).collect(),
            ..Profile::default()
        }
    }

    #[test]
    fn excess_ranks_what_a_spends_beyond_b() {
        let a = profile(&[("memcpy", 5.0), ("log", 3.0), ("parse", 2.0)]);
        let b = profile(&[("memcpy", 4.5), ("parse", 2.5)]);
        let rows = excess(&a, &b, 2);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].symbol, "log");
        assert_eq!((rows[0].a_us, rows[0].b_us), (3.0, 0.0));
        assert_eq!(rows[1].symbol, "memcpy");
        assert!((a.total_us() - 10.0).abs() < 1e-9);
    }
}
