//! The results of `all` and the `docs/PERFORMANCE.md` they become.

use std::fmt::Write as _;
use std::path::Path;

use crate::load::Outcome;
use crate::profiles::{self, Contrast, Profile, Side};
use crate::syscalls::{Syscalls, TOP, TRACED_SECS};

/// Target names, in table order.
pub(crate) const DIRECT: &str = "direct to upstream";
/// nginx plain reverse proxy.
pub(crate) const NGINX: &str = "nginx plain proxy";
/// The smallest Pingora proxy (`bare-pingora`) with the relay's server settings.
pub(crate) const BARE: &str = "bare Pingora";
/// The relay's pass-through route.
pub(crate) const PASS: &str = "relay pass-through";
/// Sealed requests, memory state.
pub(crate) const MTE_MEM: &str = "relay MTE (memory)";
/// Sealed requests, Redis state.
pub(crate) const MTE_REDIS: &str = "relay MTE (Redis)";
/// Every load target.
pub(crate) const TARGETS: [&str; 6] = [DIRECT, NGINX, BARE, PASS, MTE_MEM, MTE_REDIS];

/// The point every CPU goal is measured at.
pub(crate) const GOAL_CONNS: usize = 300;
/// The body size every CPU goal is measured at.
pub(crate) const GOAL_SIZE: usize = 1024;

/// Everything after this line of an existing report is kept when the report is rewritten
/// (hand-written analysis such as profiles).
pub(crate) const KEEP_MARKER: &str =
    "<!-- Everything below this line is kept when bench/run.sh rewrites this file. -->";

/// One measured load point.
#[derive(Clone, Debug, Default)]
pub(crate) struct Point {
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) error: Option<String>,
    pub(crate) rps: f64,
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) p999: f64,
    pub(crate) max: f64,
    /// CPU time per request of the processes taking part.
    pub(crate) cpu: Cpu,
}

/// CPU time per request (user + system, warm-up included), µs, of each process of a load point.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Cpu {
    /// The proxy: nginx's master and workers, or the relay (plus redis-server for Redis);
    /// `None` for "direct", which has none.
    pub(crate) proxy: Option<f64>,
    /// The load generator (this process).
    pub(crate) generator: Option<f64>,
    /// The fast upstream.
    pub(crate) upstream: Option<f64>,
}

impl Cpu {
    /// The field-by-field median of `cpus` (the rounds of a point; of an even count, the mean
    /// of the middle two).
    pub(crate) fn median(cpus: &[Cpu]) -> Cpu {
        let median = |f: fn(&Cpu) -> Option<f64>| {
            let mut v: Vec<f64> = cpus.iter().filter_map(f).collect();
            v.sort_by(f64::total_cmp);
            let n = v.len();
            (n > 0).then(|| (v[(n - 1) / 2] + v[n / 2]) / 2.0)
        };
        Cpu {
            proxy: median(|c| c.proxy),
            generator: median(|c| c.generator),
            upstream: median(|c| c.upstream),
        }
    }

    /// The whole machine's CPU per request through a proxy: generator + upstream + proxy.
    fn total(&self) -> Option<f64> {
        Some(self.generator? + self.upstream? + self.proxy?)
    }

    /// The table cell `proxy / generator / upstream`.
    pub(crate) fn cell(&self) -> String {
        let f = |v: Option<f64>| v.map_or("—".into(), |c| format!("{c:.0}"));
        format!(
            "{} / {} / {}",
            f(self.proxy),
            f(self.generator),
            f(self.upstream)
        )
    }
}

impl Point {
    /// A point that could not be measured.
    pub(crate) fn failed(why: String) -> Self {
        Self {
            error: Some(why),
            ..Self::default()
        }
    }

    /// True when the point measured something.
    pub(crate) fn measured(&self) -> bool {
        self.ok > 0
    }
}

impl From<&Outcome> for Point {
    fn from(o: &Outcome) -> Self {
        Self {
            ok: o.ok,
            errors: o.errors,
            error: o.first_error.clone(),
            rps: o.rps(),
            p50: o.ms(0.5),
            p90: o.ms(0.9),
            p99: o.ms(0.99),
            p999: o.ms(0.999),
            max: o.hist.max() as f64 / 1000.0,
            cpu: Cpu::default(),
        }
    }
}

/// A closed-loop point of the matrix.
#[derive(Clone, Debug)]
pub(crate) struct MatrixPoint {
    pub(crate) conns: usize,
    pub(crate) size: usize,
    pub(crate) target: &'static str,
    pub(crate) point: Point,
}

/// One streamed transfer route.
#[derive(Clone, Debug, Default)]
pub(crate) struct StreamRow {
    pub(crate) via: &'static str,
    pub(crate) upload_mbs: Option<f64>,
    pub(crate) download_mbs: Option<f64>,
    /// Peak RSS (VmHWM) of a relay started for this row alone, KiB.
    pub(crate) relay_hwm_kib: Option<u64>,
    pub(crate) error: Option<String>,
}

/// The stored-pairs memory measurement.
#[derive(Clone, Debug, Default)]
pub(crate) struct Memory {
    pub(crate) clients: usize,
    pub(crate) rss_before_kib: u64,
    pub(crate) rss_after_kib: u64,
    pub(crate) secs: f64,
    pub(crate) error: Option<String>,
}

impl Memory {
    /// Bytes of relay RSS per stored pair.
    pub(crate) fn bytes_per_pair(&self) -> Option<f64> {
        (self.error.is_none() && self.clients > 0).then(|| {
            (self.rss_after_kib.saturating_sub(self.rss_before_kib) * 1024) as f64
                / self.clients as f64
        })
    }
}

/// Machine and run facts.
#[derive(Clone, Debug, Default)]
pub(crate) struct RunInfo {
    pub(crate) cpu: String,
    pub(crate) cores: usize,
    pub(crate) mem: String,
    pub(crate) kernel: String,
    pub(crate) date: String,
    pub(crate) commit: String,
    pub(crate) settings: String,
    /// `/proc/loadavg` when the measurements started and ended.
    pub(crate) load_start: String,
    pub(crate) load_end: String,
}

/// Everything `all` measured.
#[derive(Clone, Debug, Default)]
pub(crate) struct Results {
    pub(crate) info: RunInfo,
    pub(crate) mte_error: Option<String>,
    pub(crate) matrix: Vec<MatrixPoint>,
    pub(crate) open_rate: f64,
    pub(crate) open_conns: usize,
    pub(crate) open_rounds: usize,
    pub(crate) open: Vec<(&'static str, Point)>,
    pub(crate) pairing: Vec<(&'static str, usize, Point)>,
    pub(crate) stream_bytes: u64,
    pub(crate) streams: Vec<StreamRow>,
    pub(crate) memory: Option<Memory>,
    /// Peak RSS of the load relays after all load points (up to 1000 connections), KiB.
    pub(crate) load_hwm_kib: Vec<(&'static str, u64)>,
    /// The client's cryptography for one sealed 1 KiB exchange, µs, timed in the run.
    pub(crate) client_crypto_us: Option<f64>,
    /// Why [`Results::client_crypto_us`] is missing.
    pub(crate) client_crypto_error: Option<String>,
    /// The relay's cryptography for the same exchange, µs, timed in the run.
    pub(crate) relay_crypto_us: Option<f64>,
    /// Syscalls per request under `strace -c`.
    pub(crate) syscalls: Vec<Syscalls>,
    /// Profiles of the targets the CPU goals missed compare.
    pub(crate) profiles: Vec<Profile>,
}

/// The ratio a zero-cost relay would reach ([`Results::zero_cost_ceiling`]).
pub(crate) struct Ceiling {
    /// The generator's extra µs per request for sealing and opening.
    pub(crate) sealing: f64,
    /// nginx's whole µs per request: generator + upstream + nginx.
    pub(crate) budget: f64,
    /// A sealed request's µs outside the relay.
    pub(crate) outside: f64,
}

impl Ceiling {
    /// `budget / outside`.
    pub(crate) fn ratio(&self) -> f64 {
        self.budget / self.outside
    }
}

/// What the MTE goal leaves for the MTE route's work besides cryptography
/// ([`Results::mte_floor`]).
pub(crate) struct MteFloor {
    /// The relay's cryptography per sealed 1 KiB exchange, µs.
    pub(crate) crypto: f64,
    /// Pass-through's proxy CPU per request, µs.
    pub(crate) pass: f64,
}

impl MteFloor {
    /// µs per request left within the goal's 10% once the cryptography is paid (negative: the
    /// cryptography alone exceeds it).
    pub(crate) fn left(&self) -> f64 {
        0.10 * self.pass - self.crypto
    }
}

/// One goal's verdict.
pub(crate) struct Goal {
    pub(crate) goal: &'static str,
    pub(crate) measured: String,
    pub(crate) met: Option<bool>,
    /// A figure kept for comparison with earlier runs, not a goal.
    pub(crate) info: bool,
    /// For a CPU goal: the two targets it compares, profiled when it is missed.
    pub(crate) contrast: Option<Contrast>,
}

impl Goal {
    fn new(goal: &'static str, measured: String, met: Option<bool>) -> Self {
        Self {
            goal,
            measured,
            met,
            info: false,
            contrast: None,
        }
    }

    fn info(goal: &'static str, measured: String) -> Self {
        Self {
            info: true,
            ..Self::new(goal, measured, None)
        }
    }

    /// This goal compares `contrast`'s two targets.
    fn comparing(self, contrast: Contrast) -> Self {
        Self {
            contrast: Some(contrast),
            ..self
        }
    }

    /// The verdict as printed by the bench.
    pub(crate) fn verdict(&self) -> &'static str {
        match (self.info, self.met) {
            (true, _) => "informational",
            (false, Some(true)) => "met",
            (false, Some(false)) => "NOT met",
            (false, None) => "not measured in this run",
        }
    }
}

fn verdict(g: &Goal) -> &'static str {
    match (g.info, g.met) {
        (true, _) => "informational (not a goal)",
        (false, Some(true)) => "**met**",
        (false, Some(false)) => "not met",
        (false, None) => "not measured in this run",
    }
}

/// `a / b` as `1.23×`, or `—`.
fn times(r: Option<f64>) -> String {
    r.map_or("—".into(), |r| format!("{r:.2}×"))
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

impl Results {
    /// The closed-loop point of `target` at `conns`, `size`.
    pub(crate) fn at(&self, conns: usize, size: usize, target: &str) -> Option<&Point> {
        self.matrix
            .iter()
            .find(|m| m.conns == conns && m.size == size && m.target == target)
            .map(|m| &m.point)
            .filter(|p| p.measured())
    }

    fn open_at(&self, target: &str) -> Option<&Point> {
        self.open
            .iter()
            .find(|(t, _)| *t == target)
            .map(|(_, p)| p)
            .filter(|p| p.measured())
    }

    /// `target` / nginx req/s at `conns`, `size`.
    pub(crate) fn ratio(&self, conns: usize, size: usize, target: &str) -> Option<f64> {
        let t = self.at(conns, size, target)?;
        let n = self.at(conns, size, NGINX)?;
        (n.rps > 0.0).then(|| t.rps / n.rps)
    }

    /// Proxy CPU µs per request of `target` at the goals' point.
    pub(crate) fn proxy_us(&self, target: &str) -> Option<f64> {
        self.at(GOAL_CONNS, GOAL_SIZE, target)?.cpu.proxy
    }

    /// `a`'s proxy CPU per request over `b`'s at the goals' point.
    pub(crate) fn cpu_ratio(&self, a: &str, b: &str) -> Option<f64> {
        let (a, b) = (self.proxy_us(a)?, self.proxy_us(b)?);
        (b > 0.0).then(|| a / b)
    }

    /// The load generator's extra CPU per sealed request (MTE memory minus pass-through).
    pub(crate) fn sealing_us(&self) -> Option<f64> {
        let mte = self.at(GOAL_CONNS, GOAL_SIZE, MTE_MEM)?.cpu.generator?;
        let pass = self.at(GOAL_CONNS, GOAL_SIZE, PASS)?.cpu.generator?;
        Some(mte - pass)
    }

    /// A CPU ratio goal: `a`'s proxy µs per request ≤ `limit` × `b`'s.
    fn cpu_goal(&self, goal: &'static str, a: &'static str, b: &'static str, limit: f64) -> Goal {
        let r = self.cpu_ratio(a, b);
        let measured = match (r, self.proxy_us(a), self.proxy_us(b)) {
            (Some(r), Some(x), Some(y)) => format!("{r:.2}× ({x:.1} vs {y:.1} µs)"),
            _ => "—".into(),
        };
        let contrast = Contrast {
            side: Side::Proxy,
            a,
            b,
        };
        Goal::new(goal, measured, r.map(|r| r <= limit)).comparing(contrast)
    }

    /// `target`'s req/s over the "direct" row's at `conns`, `size`.
    fn of_direct(&self, rps: f64, conns: usize, size: usize) -> String {
        match self.at(conns, size, DIRECT) {
            Some(d) if d.rps > 0.0 => format!("{:.2}× direct", rps / d.rps),
            _ => "— × direct".into(),
        }
    }

    /// The goals (CPU per request as ratios in one run) against what was measured, then the
    /// absolute goals of issue 7 (each also as a ratio to the machine's own "direct" row),
    /// then the old req/s ratios to nginx as informational rows.
    pub(crate) fn goals(&self) -> Vec<Goal> {
        let mut goals = vec![
            self.cpu_goal(
                "relay pass-through ≤ 1.05× bare Pingora (proxy CPU µs/req, 300 conns, 1 KiB)",
                PASS,
                BARE,
                1.05,
            ),
            self.cpu_goal(
                "relay MTE (memory) ≤ 1.10× relay pass-through (proxy CPU µs/req)",
                MTE_MEM,
                PASS,
                1.10,
            ),
            self.cpu_goal(
                "relay MTE (Redis; relay + redis-server) ≤ 1.30× relay MTE (memory) (CPU µs/req)",
                MTE_REDIS,
                MTE_MEM,
                1.30,
            ),
        ];
        let sealing = self.sealing_us();
        goals.push(
            Goal::new(
                "Rust client (load generator): extra CPU for sealing ≤ 2× its cryptography",
                match (sealing, self.client_crypto_us) {
                    (Some(x), Some(c)) if c > 0.0 => format!(
                        "{:.1}× (+{x:.1} µs per sealed request vs {c:.2} µs of cryptography)",
                        x / c
                    ),
                    (Some(x), None) => format!(
                        "+{x:.1} µs per sealed request; cryptography not timed ({})",
                        self.client_crypto_error.as_deref().unwrap_or("—")
                    ),
                    _ => "—".into(),
                },
                match (sealing, self.client_crypto_us) {
                    (Some(x), Some(c)) => Some(x <= 2.0 * c),
                    _ => None,
                },
            )
            .comparing(Contrast {
                side: Side::Generator,
                a: MTE_MEM,
                b: PASS,
            }),
        );
        goals.push(self.cpu_goal(
            "moonshot: relay MTE (memory) ≤ 2.0× nginx (proxy CPU µs/req)",
            MTE_MEM,
            NGINX,
            2.0,
        ));

        let lat = match (
            self.open_at(MTE_MEM),
            self.open_at(NGINX),
            self.open_at(DIRECT),
        ) {
            (Some(m), Some(n), d) => Some((m, n, d)),
            _ => None,
        };
        let of_direct_p = |v: f64, d: Option<f64>| match d {
            Some(d) if d > 0.0 => format!("relay {:.1}× direct's", v / d),
            _ => "— × direct".into(),
        };
        goals.push(Goal::new(
            "at 5,000 req/s: relay p50 ≤ nginx p50 + 0.5 ms",
            lat.map_or("—".into(), |(m, n, d)| {
                format!(
                    "{:+.2} ms ({})",
                    m.p50 - n.p50,
                    of_direct_p(m.p50, d.map(|d| d.p50))
                )
            }),
            lat.map(|(m, n, _)| m.p50 - n.p50 <= 0.5 && m.errors == 0),
        ));
        goals.push(Goal::new(
            "at 5,000 req/s: relay p99 ≤ nginx p99 + 2 ms",
            lat.map_or("—".into(), |(m, n, d)| {
                format!(
                    "{:+.2} ms ({})",
                    m.p99 - n.p99,
                    of_direct_p(m.p99, d.map(|d| d.p99))
                )
            }),
            lat.map(|(m, n, _)| m.p99 - n.p99 <= 2.0 && m.errors == 0),
        ));
        let p = self.at(300, 10240, MTE_MEM);
        goals.push(Goal::new(
            "10 KiB JSON ≥ 7,700 req/s through the relay (memory, 300 conns)",
            p.map_or("—".into(), |p| {
                format!("{:.0} req/s ({})", p.rps, self.of_direct(p.rps, 300, 10240))
            }),
            p.map(|p| p.rps >= 7700.0),
        ));
        for per in [1, 5] {
            let p = self
                .pairing
                .iter()
                .find(|(s, n, p)| *s == "memory" && *n == per && p.measured());
            goals.push(Goal::new(
                if per == 1 {
                    "≥ 5,000 pairs/s (memory, 1 pair per request)"
                } else {
                    "≥ 5,000 pairs/s (memory, 5 pairs per request)"
                },
                p.map_or("—".into(), |(_, n, p)| {
                    let pairs = p.rps * *n as f64;
                    format!(
                        "{pairs:.0} pairs/s ({} 1 KiB req/s)",
                        self.of_direct(pairs, 300, 1024)
                    )
                }),
                p.map(|(_, n, p)| p.rps * *n as f64 >= 5000.0),
            ));
        }
        let up = |via: &str| {
            self.streams
                .iter()
                .find(|s| s.via == via)
                .and_then(|s| s.upload_mbs.map(|m| (m, s.relay_hwm_kib)))
        };
        let (relay, nginx, direct) = (up(MTE_MEM), up(NGINX), up(DIRECT));
        goals.push(Goal::new(
            "1 GiB upload through the relay ≥ 0.5× nginx MB/s",
            match (relay, nginx) {
                (Some((r, _)), Some((n, _))) => format!(
                    "{:.2}× ({r:.0} vs {n:.0} MB/s; {})",
                    r / n,
                    direct.map_or("— × direct".into(), |(d, _)| format!(
                        "{:.2}× direct",
                        r / d
                    ))
                ),
                _ => "—".into(),
            },
            match (relay, nginx) {
                (Some((r, _)), Some((n, _))) => Some(r >= 0.5 * n),
                _ => None,
            },
        ));
        let hwm = relay.and_then(|(_, h)| h);
        goals.push(Goal::new(
            "relay peak RSS during the 1 GiB transfers < 64 MiB",
            hwm.map_or("—".into(), |h| {
                format!(
                    "{:.1} MiB (no direct row: not speed-bound)",
                    h as f64 / 1024.0
                )
            }),
            hwm.map(|h| h < 64 * 1024),
        ));
        let b = self.memory.as_ref().and_then(Memory::bytes_per_pair);
        goals.push(Goal::new(
            "< 300 bytes of relay memory per stored pair",
            b.map_or("—".into(), |b| {
                format!("{b:.0} B (no direct row: not speed-bound)")
            }),
            b.map(|b| b < 300.0),
        ));
        goals.push(Goal::info(
            "relay (memory) / nginx req/s, 300 conns, 1 KiB (was a goal: ≥ 1.0×)",
            times(self.ratio(300, 1024, MTE_MEM)),
        ));
        goals.push(Goal::info(
            "relay (Redis) / nginx req/s, 300 conns, 1 KiB (was a goal: ≥ 0.8×)",
            times(self.ratio(300, 1024, MTE_REDIS)),
        ));
        goals.push(Goal::info(
            "bare Pingora / nginx req/s, 300 conns, 1 KiB",
            times(self.ratio(300, 1024, BARE)),
        ));
        goals
    }

    /// The last line of the bench: the relay's CPU per sealed request (MTE, memory) against
    /// bare Pingora's and nginx's per plain request, 300 connections, 1 KiB.
    pub(crate) fn headline(&self) -> String {
        format!(
            "relay CPU per sealed request: {} bare Pingora, {} nginx",
            times(self.cpu_ratio(MTE_MEM, BARE)),
            times(self.cpu_ratio(MTE_MEM, NGINX))
        )
    }

    /// The CPU goals missed in this run, each with the two targets it compares.
    pub(crate) fn missed_cpu_goals(&self) -> Vec<(Goal, Contrast)> {
        self.goals()
            .into_iter()
            .filter(|g| g.met == Some(false))
            .filter_map(|g| g.contrast.map(|c| (g, c)))
            .collect()
    }

    /// The relay's cryptography per sealed exchange against pass-through's CPU per request.
    pub(crate) fn mte_floor(&self) -> Option<MteFloor> {
        Some(MteFloor {
            crypto: self.relay_crypto_us?,
            pass: self.proxy_us(PASS)?,
        })
    }

    /// What bounds the old req/s goal on a machine shared by every process: the req/s ratio to
    /// nginx (300 connections, 1 KiB) that a relay using no CPU at all would reach, with
    /// nginx's whole budget per request and a sealed request's cost outside the relay (µs).
    /// That cost is nginx's generator and upstream costs plus the generator's extra for
    /// sealing and opening (its cost on the MTE route minus the pass-through route).
    pub(crate) fn zero_cost_ceiling(&self) -> Option<Ceiling> {
        let nginx = self.at(300, 1024, NGINX)?.cpu;
        let mte = self.at(300, 1024, MTE_MEM)?.cpu;
        let pass = self.at(300, 1024, PASS)?.cpu;
        let sealing = mte.generator? - pass.generator?;
        let budget = nginx.total()?;
        let outside = nginx.generator? + sealing + nginx.upstream?;
        (outside > 0.0).then_some(Ceiling {
            sealing,
            budget,
            outside,
        })
    }

    /// The Markdown report.
    pub(crate) fn markdown(&self) -> String {
        let mut s = String::new();
        let i = &self.info;
        let _ = writeln!(s, "# pqrelay performance\n");
        let _ = writeln!(
            s,
            "Written by `bench/run.sh` (`pqrelay-bench all`, release build); every \
             number below comes from that run. Method and caveats: [below](#method).\n"
        );
        let _ = writeln!(s, "| | |\n|---|---|");
        let _ = writeln!(s, "| date (UTC) | {} |", i.date);
        let _ = writeln!(s, "| commit | `{}` |", i.commit);
        let _ = writeln!(s, "| CPU | {} |", i.cpu);
        let _ = writeln!(s, "| cores (`nproc`) | {} |", i.cores);
        let _ = writeln!(s, "| memory | {} |", i.mem);
        let _ = writeln!(s, "| kernel | {} |", i.kernel);
        let _ = writeln!(s, "| settings | {} |", i.settings);
        let _ = writeln!(
            s,
            "| load average at start / end | {} / {} (other work on the machine shows here) |\n",
            i.load_start, i.load_end
        );
        if let Some(e) = &self.mte_error {
            let _ = writeln!(
                s,
                "**Sealed (MTE) requests did not work in this run**, so their rows are empty: \
                 `{}`\n",
                one_line(e)
            );
        }

        let _ = writeln!(s, "## Goals\n");
        let _ = writeln!(
            s,
            "The first five goals are ratios of CPU time per request measured in this one run \
             (300 connections, 1 KiB, closed loop; the \"CPU µs/req\" columns below), so they \
             hold on any machine: the relay against the Pingora it stands on, each feature \
             against the route below it. The absolute goals follow, each also as a ratio to \
             this machine's own \"direct\" row; the old req/s ratios to nginx are kept as \
             information (on one 2-core box that also runs the load generator they are out \
             of reach by measurement: [below](#what-the-goals-meet-here-and-what-stands-in-the-way-hand-written)).\n"
        );
        let _ = writeln!(s, "| goal | measured | verdict |\n|---|---|---|");
        for g in self.goals() {
            let _ = writeln!(s, "| {} | {} | {} |", g.goal, g.measured, verdict(&g));
        }
        let _ = writeln!(s, "\n**{}** (300 connections, 1 KiB: the relay's CPU per sealed request, memory state, over bare Pingora's and nginx's per plain request).", self.headline());
        if let Some(c) = self.zero_cost_ceiling() {
            let _ = writeln!(
                s,
                "\nWhat bounds the req/s ratio to nginx here (300 connections, 1 KiB, CPU columns below): \
                 nginx's whole budget is {:.0} µs per request (load generator + upstream + \
                 nginx). A sealed request costs the load generator {:.0} µs more than a plain \
                 one (MTE route minus pass-through: the client's sealing and opening), so it \
                 costs {:.0} µs outside the relay at nginx's rate. A relay that used no CPU at \
                 all would reach at most **{:.2}×** nginx's req/s on this machine.",
                c.budget,
                c.sealing,
                c.outside,
                c.ratio()
            );
        }
        if let Some(f) = self.mte_floor() {
            let _ = write!(
                s,
                "\nWhat bounds the MTE goal here: the relay's cryptography for one sealed 1 KiB \
                 exchange (the client id token's HMAC, the ratchet step, opening the URL, \
                 headers and body, sealing the response's headers and body), timed in this run \
                 on one thread, is {:.2} µs: {:.1}% of pass-through's {:.1} µs per request. ",
                f.crypto,
                f.crypto / f.pass * 100.0,
                f.pass,
            );
            let _ = if f.left() >= 0.0 {
                writeln!(
                    s,
                    "Within the goal's 10%, everything else the MTE route does (parsing and \
                     rewriting the sealed heads, the pair state's read and compare-and-set, \
                     base64, the larger heads on the wire) may cost **{:.2} µs** per request.",
                    f.left()
                )
            } else {
                writeln!(
                    s,
                    "That alone is **{:.2} µs** over the goal's 10%: here the goal is out of \
                     reach of any relay that pays this cryptography.",
                    -f.left()
                )
            };
        }
        let _ = writeln!(s);

        let _ = writeln!(s, "## Throughput and latency (closed loop)\n");
        let _ = writeln!(
            s,
            "Each connection sends a JSON `POST` of the given size and gets a JSON answer of the \
             same size, one request at a time, as fast as it can. Latency in ms; \"vs nginx\" is \
             req/s relative to nginx at the same point; \"CPU vs bare\" is the proxy's CPU per \
             request relative to bare Pingora's; \"CPU µs/req\" is the CPU time (user + \
             system, warm-up included) per request of the proxy (nginx's master and workers, \
             or the relay plus redis-server for Redis), of the load generator and of the \
             upstream. On this machine every process shares two cores, so the sum of the three \
             is what bounds req/s. The \"direct\" row is the ceiling of the load generator on \
             this machine; \"bare Pingora\" is the smallest Pingora proxy with the relay's \
             server settings.\n"
        );
        let mut levels: Vec<(usize, usize)> =
            self.matrix.iter().map(|m| (m.conns, m.size)).collect();
        levels.dedup();
        for (conns, size) in levels {
            let _ = writeln!(
                s,
                "### {conns} concurrent connections, {} KiB request and response\n",
                size / 1024
            );
            let _ = writeln!(
                s,
                "| target | requests | req/s | p50 | p90 | p99 | p99.9 | max | errors | CPU µs/req: proxy / gen / upstream | vs nginx | CPU vs bare |"
            );
            let _ = writeln!(
                s,
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
            );
            let bare = self.at(conns, size, BARE).and_then(|p| p.cpu.proxy);
            for m in self
                .matrix
                .iter()
                .filter(|m| m.conns == conns && m.size == size)
            {
                let ratio = self.ratio(conns, size, m.target).map_or("—".into(), pct);
                let vs_bare = match (m.point.measured().then_some(m.point.cpu.proxy), bare) {
                    (Some(Some(p)), Some(b)) if b > 0.0 => pct(p / b),
                    _ => "—".into(),
                };
                let _ = writeln!(
                    s,
                    "{}",
                    point_row(m.target, &m.point, &[ratio.as_str(), vs_bare.as_str()])
                );
            }
            let _ = writeln!(s);
        }

        let _ = writeln!(
            s,
            "## Added latency at a fixed rate (open loop)\n\n{:.0} req/s over {} connections, \
             1 KiB; the targets take turns for {} round(s), pooled (CPU per request: the median of the rounds'). Latency is measured from each request's intended send time (no coordinated \
             omission); \"added\" is p50 / p99 minus nginx's.\n",
            self.open_rate, self.open_conns, self.open_rounds
        );
        let _ = writeln!(
            s,
            "| target | requests | req/s | p50 | p90 | p99 | p99.9 | max | errors | CPU µs/req: proxy / gen / upstream | added p50 / p99 |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let nginx = self.open_at(NGINX).cloned();
        for (t, p) in &self.open {
            let added = match (&nginx, p.measured()) {
                (Some(n), true) => format!("{:+.2} / {:+.2} ms", p.p50 - n.p50, p.p99 - n.p99),
                _ => "—".into(),
            };
            let _ = writeln!(s, "{}", point_row(t, p, &[added.as_str()]));
        }
        let _ = writeln!(s);

        let _ = writeln!(
            s,
            "## Pairing\n\n`POST /api/mte-pair` in a closed loop on as many connections as the \
             relay's pairing pool admits at once (`PAIRING_CONCURRENCY`'s default, 4 per CPU; \
             more would measure 503 `pairing_busy` answers), one client id per connection, \
             fresh pair ids, X-Wing keys generated before the run; the client checks each answer \
             but does not decapsulate, so this measures the relay). Latency in ms.\n"
        );
        let _ = writeln!(
            s,
            "| state | pairs per request | requests | requests/s | pairs/s | p50 | p99 | errors |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for (store, per, p) in &self.pairing {
            if p.measured() {
                let _ = writeln!(
                    s,
                    "| {store} | {per} | {} | {:.0} | **{:.0}** | {:.2} | {:.2} | {} |",
                    p.ok,
                    p.rps,
                    p.rps * *per as f64,
                    p.p50,
                    p.p99,
                    errors_cell(p)
                );
            } else {
                let _ = writeln!(
                    s,
                    "| {store} | {per} | — | — | — | — | — | {} |",
                    errors_cell(p)
                );
            }
        }
        let _ = writeln!(s);

        self.syscalls_section(&mut s);
        self.profiles_section(&mut s);

        let _ = writeln!(
            s,
            "## Streamed transfers\n\nOne {} MiB upload (`POST`, sized) and one {} MiB download, \
             one connection. MB = 10⁶ bytes. Relay peak RSS is `VmHWM` of a relay started for \
             that row alone.\n",
            self.stream_bytes >> 20,
            self.stream_bytes >> 20
        );
        let _ = writeln!(
            s,
            "| route | upload MB/s | download MB/s | relay peak RSS | note |\n|---|---:|---:|---:|---|"
        );
        for r in &self.streams {
            let f = |x: Option<f64>| x.map_or("—".into(), |v| format!("{v:.0}"));
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                r.via,
                f(r.upload_mbs),
                f(r.download_mbs),
                r.relay_hwm_kib
                    .map_or("—".into(), |h| format!("{:.1} MiB", h as f64 / 1024.0)),
                r.error.as_deref().map(one_line).unwrap_or_default()
            );
        }
        let _ = writeln!(s);

        if !self.load_hwm_kib.is_empty() {
            let list: Vec<String> = self
                .load_hwm_kib
                .iter()
                .map(|(n, k)| format!("`{n}` {:.0} MiB", *k as f64 / 1024.0))
                .collect();
            let _ = writeln!(
                s,
                "Peak RSS of the relays that served the load points above (up to 1000 \
                 connections, one pair per connection): {}.\n",
                list.join(", ")
            );
        }
        let _ = writeln!(s, "## Memory per stored pair\n");
        match &self.memory {
            Some(m) if m.error.is_none() => {
                let _ = writeln!(
                    s,
                    "A fresh relay (memory state) paired {} clients of one pair each through \
                     `HEAD /api/mte-relay` + `POST /api/mte-pair` in {:.1} s ({:.0} clients/s). \
                     RSS before: {:.1} MiB, after: {:.1} MiB: **{:.0} bytes per pair** \
                     (RSS growth / pairs; allocator slack included).\n",
                    m.clients,
                    m.secs,
                    m.clients as f64 / m.secs.max(1e-9),
                    m.rss_before_kib as f64 / 1024.0,
                    m.rss_after_kib as f64 / 1024.0,
                    m.bytes_per_pair().unwrap_or(0.0)
                );
            }
            Some(m) => {
                let _ = writeln!(
                    s,
                    "Not measured: `{}`\n",
                    one_line(m.error.as_deref().unwrap_or(""))
                );
            }
            None => {
                let _ = writeln!(s, "Not measured.\n");
            }
        }

        let _ = writeln!(s, "## Method\n");
        let _ = writeln!(s, "{}", METHOD);
        s
    }
}

impl Results {
    /// The syscalls-per-request section.
    fn syscalls_section(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "## Syscalls per request\n\n`strace -c -f` attached to every thread of the proxy \
             (nginx: its master and workers) for {TRACED_SECS} s of closed-loop load, \
             300 connections, 1 KiB, after an untraced second that opened the connections; \
             syscalls counted / requests completed while traced. ptrace slows the proxy many \
             times over, so read the counts, not the rate (a slowed proxy may batch less: the \
             counts are an upper bound on its untraced ones).\n"
        );
        if self.syscalls.is_empty() {
            let _ = writeln!(s, "Not measured in this run.\n");
            return;
        }
        let _ = writeln!(
            s,
            "| proxy | requests traced | syscalls per request | top {TOP} per request |\n|---|---:|---:|---|"
        );
        for r in &self.syscalls {
            match r.per_request(r.total) {
                Some(per) => {
                    let top: Vec<String> = r
                        .by_name
                        .iter()
                        .take(TOP)
                        .map(|(n, c)| format!("`{n}` {:.2}", *c as f64 / r.requests as f64))
                        .collect();
                    let _ = writeln!(
                        s,
                        "| {} | {} | **{per:.2}** | {} |",
                        r.target,
                        r.requests,
                        top.join(", ")
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "| {} | — | — | not measured: `{}` |",
                        r.target,
                        one_line(r.error.as_deref().unwrap_or("no requests"))
                    );
                }
            }
        }
        let _ = writeln!(s);
    }
}

impl Results {
    /// The profile of `target` on `side`, if one was taken.
    fn profile(&self, target: &str, side: Side) -> Option<&Profile> {
        self.profiles
            .iter()
            .find(|p| p.target == target && p.side == side)
    }

    /// The profiles section: for each CPU goal missed, the symbols that cost its first target
    /// the most beyond its second.
    fn profiles_section(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "## Where the CPU of each goal missed goes\n\n`perf record -e cpu-clock -F {}` on \
             every thread of the side the goal measures (the proxy's processes, or the load \
             generator), {} s of closed-loop load, 300 connections, 1 KiB, after an untraced \
             second that opened the connections; a symbol's samples × their period / requests \
             completed meanwhile = its CPU µs per request. Each table lists the {} symbols \
             whose cost per request exceeds the compared target's the most (`[k]` kernel, \
             `[.]` user space; inlined code counts in its caller). One sample is ~1 ms of \
             CPU, so differences below ~0.1 µs are noise.\n",
            profiles::FREQ,
            profiles::SAMPLED_SECS,
            profiles::TOP
        );
        let missed = self.missed_cpu_goals();
        if missed.is_empty() {
            let _ = writeln!(s, "No CPU goal was missed in this run: nothing profiled.\n");
            return;
        }
        for (g, c) in missed {
            let _ = writeln!(s, "### {} ({})\n", g.goal, g.measured);
            let (a, b) = match (self.profile(c.a, c.side), self.profile(c.b, c.side)) {
                (Some(a), Some(b)) if a.error.is_none() && b.error.is_none() => (a, b),
                (a, b) => {
                    let why = [a, b]
                        .into_iter()
                        .flatten()
                        .find_map(|p| p.error.as_deref())
                        .unwrap_or("not profiled in this run");
                    let _ = writeln!(s, "Not profiled: `{}`\n", one_line(why));
                    continue;
                }
            };
            let side = c.side.name();
            let _ = writeln!(
                s,
                "{side} CPU sampled: {} {:.1} µs per request ({} requests), {} {:.1} µs \
                 ({} requests).\n",
                c.a,
                a.total_us(),
                a.requests,
                c.b,
                b.total_us(),
                b.requests
            );
            let _ = writeln!(
                s,
                "| symbol | {} µs/req | {} µs/req | difference |\n|---|---:|---:|---:|",
                c.a, c.b
            );
            for r in profiles::excess(a, b, profiles::TOP) {
                let _ = writeln!(
                    s,
                    "| `{}` | {:.2} | {:.2} | {:+.2} |",
                    short_symbol(&r.symbol),
                    r.a_us,
                    r.b_us,
                    r.a_us - r.b_us
                );
            }
            let _ = writeln!(
                s,
                "| all symbols | {:.2} | {:.2} | {:+.2} |\n",
                a.total_us(),
                b.total_us(),
                a.total_us() - b.total_us()
            );
        }
    }
}

/// A symbol for a table cell: at most 120 characters, no `|` or backtick.
fn short_symbol(symbol: &str) -> String {
    let s = symbol.replace(['|', '`'], "");
    match s.char_indices().nth(120) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s,
    }
}

const METHOD: &str = "\
- Everything runs on the one machine above, on 127.0.0.1: the load generator (in-process, a \
tokio runtime with one worker per core), the fast upstream (`pqrelay-bench upstream`: hyper, \
answers a fixed JSON document of the requested size, counts uploads, streams downloads), \
nginx, redis-server and the relays. They share the cores, so the numbers are lower than on \
separate machines and the load generator's own cost weighs on every row alike; the \"direct\" \
row shows how fast the generator and upstream go with nothing in between.
- Plain and sealed requests go through the same hyper client (`pqrelay_client::http_client`, \
HTTP/1.1 keep-alive, one connection per worker). Sealed requests use `pqrelay_client::RelayClient` \
(one client id with one pair per connection, paired before the measured window), so their \
rows include the client's sealing and opening as well as the relay's work.
- bare Pingora (`bare-pingora`, a binary of the bench crate): a `ProxyHttp` whose only \
filter is `upstream_peer` (one fixed upstream), the relay's Pingora version and features, and \
its server settings: `threads` = cores, `work_stealing: false`, \
`upstream_keepalive_pool_size: 1024`, a 16 KiB write buffer on client connections, mimalloc, \
and the relay's upstream peer options (60 s idle timeout, one connection-pool group per \
thread). Goals compare the relay's CPU per request with it at 300 connections, 1 KiB.
- The client's cryptography (goal 4) is timed in the run, before the load points, on one \
thread of the bench process: one exchange's key derivation, sealing the request's URL, \
headers and 1 KiB body, opening two response headers and a 1 KiB body (the protocol calls \
the Rust client makes for one sealed `POST /json/1024`), mean of a 0.5 s loop. The generator's extra \
CPU per sealed request is its CPU per request on the MTE (memory) row minus the pass-through \
row's.
- nginx: `worker_processes` = cores, plain `proxy_pass` to an `upstream` block with \
`keepalive 1024`, HTTP/1.1 upstream, request and response buffering off (streaming, like \
the relay), `client_max_body_size 0`, access log buffered (64 KiB). The relay: `THREADS` = \
cores, `upstream_keepalive_pool_size: 1024`, access log to a file, `PASS_THROUGH_ROUTES=/pt/*`, \
`PAIR_RATE_PER_IP=0` and `PAIR_RATE_PER_CLIENT=0` (all load comes from 127.0.0.1); \
\"Redis\" rows use a local `redis-server` (no persistence) as `REDIS_URL`.
- Closed loop: each point has a warm-up, then a measured window; a request counts when it \
started inside the window. The goals' point (300 connections, 1 KiB) is measured in rounds \
that interleave the targets, as the open-loop point is: its row pools the rounds' requests, \
and its CPU per request is the median of the rounds' (on this shared VM one target's CPU per \
request moved by tens of per cent between runs an hour apart). Open loop: each connection has its own fixed schedule, latency \
is measured from the scheduled send time, and a request late because an earlier one was slow \
is charged the wait. Latencies are HDR histograms (3 significant digits) of successful \
requests; failures are counted in \"errors\" with the first one shown.
- The vendor's own table (MTE Relay Server manual, \"Performance Metrics\") was measured on an \
AWS t2.micro with a separate load generator for 5 minutes per point; compare ratios, not \
absolute numbers.
";

fn one_line(s: &str) -> String {
    let s = s.replace(['\n', '|'], " ");
    if s.len() > 200 {
        let mut cut = 200;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}…", &s[..cut])
    } else {
        s
    }
}

fn errors_cell(p: &Point) -> String {
    match (&p.error, p.errors) {
        (None, 0) => "0".into(),
        (Some(e), n) => format!("{n} (`{}`)", one_line(e)),
        (None, n) => n.to_string(),
    }
}

fn point_row(target: &str, p: &Point, last: &[&str]) -> String {
    if !p.measured() {
        return format!(
            "| {target} | — | — | — | — | — | — | — | {} | — |{}",
            errors_cell(p),
            " — |".repeat(last.len())
        );
    }
    format!(
        "| {target} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
        p.ok,
        p.rps,
        p.p50,
        p.p90,
        p.p99,
        p.p999,
        p.max,
        errors_cell(p),
        p.cpu.cell(),
        last.join(" | ")
    )
}

/// Writes the report to `path`, keeping whatever followed [`KEEP_MARKER`] in the old file.
pub(crate) fn write(path: &Path, results: &Results) -> anyhow::Result<()> {
    let kept = std::fs::read_to_string(path)
        .ok()
        .and_then(|old| old.split_once(KEEP_MARKER).map(|(_, tail)| tail.to_owned()))
        .unwrap_or_else(|| "\n".to_owned());
    let mut text = results.markdown();
    text.push_str(KEEP_MARKER);
    text.push_str(&kept);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(rps: f64, proxy: Option<f64>) -> Point {
        Point {
            ok: 1000,
            rps,
            cpu: Cpu {
                proxy,
                generator: Some(20.0),
                upstream: Some(15.0),
            },
            ..Point::default()
        }
    }

    fn results() -> Results {
        let cpu = [
            (DIRECT, None),
            (NGINX, Some(30.0)),
            (BARE, Some(60.0)),
            (PASS, Some(62.0)),
            (MTE_MEM, Some(75.0)),
            (MTE_REDIS, Some(90.0)),
        ];
        let mut r = Results {
            client_crypto_us: Some(3.0),
            ..Results::default()
        };
        for (target, proxy) in cpu {
            let mut p = point(10_000.0, proxy);
            if target == MTE_MEM {
                p.cpu.generator = Some(30.0);
            }
            r.matrix.push(MatrixPoint {
                conns: 300,
                size: 1024,
                target,
                point: p,
            });
        }
        r.matrix.push(MatrixPoint {
            conns: 300,
            size: 1024,
            target: "unmeasured",
            point: Point::failed("down".into()),
        });
        r.syscalls.push(Syscalls {
            target: PASS,
            requests: 100,
            total: 750,
            by_name: vec![("sendto".into(), 300), ("recvfrom".into(), 200)],
            error: None,
        });
        let profile = |target, rows: &[(&str, f64)]| Profile {
            target,
            side: Side::Proxy,
            requests: 1000,
            by_symbol: rows.iter().map(|(s, us)| (s.to_string(), *us)).collect(),
            error: None,
        };
        r.profiles
            .push(profile(MTE_MEM, &[("[.] memcpy", 9.0), ("[.] seal", 4.0)]));
        r.profiles
            .push(profile(PASS, &[("[.] memcpy", 8.0), ("[k] tcp|x", 1.0)]));
        r
    }

    #[test]
    fn goals_are_cpu_ratios_of_one_run() {
        let r = results();
        let goals = r.goals();
        assert_eq!(goals[0].met, Some(true), "62 / 60 ≤ 1.05");
        assert_eq!(goals[1].met, Some(false), "75 / 62 > 1.10");
        assert_eq!(goals[2].met, Some(true), "90 / 75 ≤ 1.30");
        assert_eq!(goals[3].met, Some(false), "+10 µs > 2 × 3 µs");
        assert_eq!(goals[4].met, Some(false), "75 / 30 > 2.0");
        assert!(goals.iter().filter(|g| g.info).all(|g| g.met.is_none()));
        assert_eq!(
            r.headline(),
            "relay CPU per sealed request: 1.25× bare Pingora, 2.50× nginx"
        );
    }

    #[test]
    fn cpu_of_rounds_is_their_median() {
        let cpu = |proxy, generator| Cpu {
            proxy,
            generator: Some(generator),
            upstream: None,
        };
        let m = Cpu::median(&[
            cpu(Some(90.0), 1.0),
            cpu(Some(50.0), 9.0),
            cpu(Some(60.0), 5.0),
        ]);
        assert_eq!(
            (m.proxy, m.generator, m.upstream),
            (Some(60.0), Some(5.0), None)
        );
        let m = Cpu::median(&[cpu(None, 1.0), cpu(Some(50.0), 3.0)]);
        assert_eq!((m.proxy, m.generator), (Some(50.0), Some(2.0)));
    }

    #[test]
    fn the_mte_goal_states_what_the_relays_cryptography_leaves() {
        let mut r = results();
        assert!(!r.markdown().contains("What bounds the MTE goal"));
        r.relay_crypto_us = Some(4.0);
        let floor = r.mte_floor().unwrap();
        assert!((floor.left() - 2.2).abs() < 1e-9, "10% of 62 µs minus 4 µs");
        let text = r.markdown();
        assert!(
            text.contains("is 4.00 µs: 6.5% of pass-through's 62.0 µs"),
            "{text}"
        );
        assert!(text.contains("may cost **2.20 µs** per request"));
        r.relay_crypto_us = Some(7.2);
        assert!(r
            .markdown()
            .contains("That alone is **1.00 µs** over the goal's 10%"));
    }

    #[test]
    fn sealing_goal_without_crypto_timing_is_not_measured() {
        let mut r = results();
        r.client_crypto_us = None;
        r.client_crypto_error = Some("failed".into());
        let g = &r.goals()[3];
        assert_eq!(g.met, None);
        assert!(g.measured.starts_with("+10.0 µs"), "{}", g.measured);
    }

    #[test]
    fn each_cpu_goal_missed_gets_its_profiles_or_says_why_not() {
        let text = results().markdown();
        let section = text
            .split("## Where the CPU of each goal missed goes")
            .nth(1)
            .expect("profiles section");
        // MTE vs pass-through (missed, both profiled): the excess, largest first.
        let mte = section
            .split("### relay MTE (memory) ≤ 1.10× relay pass-through")
            .nth(1)
            .expect("MTE goal's profile");
        let seal = mte
            .find("| `[.] seal` | 4.00 | 0.00 | +4.00 |")
            .expect("seal row");
        let memcpy = mte
            .find("| `[.] memcpy` | 9.00 | 8.00 | +1.00 |")
            .expect("memcpy row");
        assert!(seal < memcpy);
        assert!(mte.contains("| all symbols | 13.00 | 9.00 | +4.00 |"));
        // The client's goal (missed, its generator side not profiled) says so.
        let client = section
            .split("### Rust client")
            .nth(1)
            .expect("client goal");
        assert!(client
            .trim_start()
            .split("###")
            .next()
            .unwrap()
            .contains("Not profiled"));
        // Goals met are not listed.
        assert!(!section.contains("### relay pass-through ≤ 1.05×"));
    }

    #[test]
    fn markdown_rows_have_as_many_cells_as_their_header() {
        let text = results().markdown();
        assert!(text
            .contains("| relay pass-through | 100 | **7.50** | `sendto` 3.00, `recvfrom` 2.00 |"));
        let mut header_cells = 0;
        for line in text.lines() {
            if !line.starts_with('|') {
                header_cells = 0;
                continue;
            }
            if header_cells == 0 {
                header_cells = line.split('|').count();
            } else {
                assert_eq!(line.split('|').count(), header_cells, "{line}");
            }
        }
    }
}
