//! The results of `all` and the `docs/PERFORMANCE.md` they become.

use std::fmt::Write as _;
use std::path::Path;

use crate::load::Outcome;

/// Target names, in table order.
pub(crate) const DIRECT: &str = "direct to upstream";
/// nginx plain reverse proxy.
pub(crate) const NGINX: &str = "nginx plain proxy";
/// The relay's pass-through route.
pub(crate) const PASS: &str = "relay pass-through";
/// Sealed requests, memory state.
pub(crate) const MTE_MEM: &str = "relay MTE (memory)";
/// Sealed requests, Redis state.
pub(crate) const MTE_REDIS: &str = "relay MTE (Redis)";
/// Every load target.
pub(crate) const TARGETS: [&str; 5] = [DIRECT, NGINX, PASS, MTE_MEM, MTE_REDIS];

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
    /// The field-by-field mean of `cpus` (the rounds of an open-loop point).
    pub(crate) fn mean(cpus: &[Cpu]) -> Cpu {
        let mean = |f: fn(&Cpu) -> Option<f64>| {
            let v: Vec<f64> = cpus.iter().filter_map(f).collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        Cpu {
            proxy: mean(|c| c.proxy),
            generator: mean(|c| c.generator),
            upstream: mean(|c| c.upstream),
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

/// One goal's verdict.
pub(crate) struct Goal {
    pub(crate) goal: &'static str,
    pub(crate) measured: String,
    pub(crate) met: Option<bool>,
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "**met**",
        Some(false) => "not met",
        None => "not measured",
    }
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

    /// The goals of issue 7 against what was measured.
    pub(crate) fn goals(&self) -> Vec<Goal> {
        let mut goals = Vec::new();
        let r = self.ratio(300, 1024, MTE_MEM);
        goals.push(Goal {
            goal: "relay (memory) ≥ 1.0× nginx req/s, 300 conns, 1 KiB",
            measured: r.map_or("—".into(), |r| format!("{r:.2}×")),
            met: r.map(|r| r >= 1.0),
        });
        let r = self.ratio(300, 1024, MTE_REDIS);
        goals.push(Goal {
            goal: "relay (Redis) ≥ 0.8× nginx req/s, 300 conns, 1 KiB",
            measured: r.map_or("—".into(), |r| format!("{r:.2}×")),
            met: r.map(|r| r >= 0.8),
        });
        let lat = match (self.open_at(MTE_MEM), self.open_at(NGINX)) {
            (Some(m), Some(n)) => Some((m.p50 - n.p50, m.p99 - n.p99, m.errors)),
            _ => None,
        };
        goals.push(Goal {
            goal: "at 5,000 req/s: relay p50 ≤ nginx p50 + 0.5 ms",
            measured: lat.map_or("—".into(), |(d, _, _)| format!("{d:+.2} ms")),
            met: lat.map(|(d, _, e)| d <= 0.5 && e == 0),
        });
        goals.push(Goal {
            goal: "at 5,000 req/s: relay p99 ≤ nginx p99 + 2 ms",
            measured: lat.map_or("—".into(), |(_, d, _)| format!("{d:+.2} ms")),
            met: lat.map(|(_, d, e)| d <= 2.0 && e == 0),
        });
        let p = self.at(300, 10240, MTE_MEM);
        goals.push(Goal {
            goal: "10 KiB JSON ≥ 7,700 req/s through the relay (memory, 300 conns)",
            measured: p.map_or("—".into(), |p| format!("{:.0} req/s", p.rps)),
            met: p.map(|p| p.rps >= 7700.0),
        });
        for per in [1, 5] {
            let p = self
                .pairing
                .iter()
                .find(|(s, n, p)| *s == "memory" && *n == per && p.measured());
            goals.push(Goal {
                goal: if per == 1 {
                    "≥ 5,000 pairs/s (memory, 1 pair per request)"
                } else {
                    "≥ 5,000 pairs/s (memory, 5 pairs per request)"
                },
                measured: p.map_or("—".into(), |(_, n, p)| {
                    format!("{:.0} pairs/s", p.rps * *n as f64)
                }),
                met: p.map(|(_, n, p)| p.rps * *n as f64 >= 5000.0),
            });
        }
        let up = |via: &str| {
            self.streams
                .iter()
                .find(|s| s.via == via)
                .and_then(|s| s.upload_mbs.map(|m| (m, s.relay_hwm_kib)))
        };
        let (relay, nginx) = (up(MTE_MEM), up(NGINX));
        goals.push(Goal {
            goal: "1 GiB upload through the relay ≥ 0.5× nginx MB/s",
            measured: match (relay, nginx) {
                (Some((r, _)), Some((n, _))) => format!("{:.2}× ({r:.0} vs {n:.0} MB/s)", r / n),
                _ => "—".into(),
            },
            met: match (relay, nginx) {
                (Some((r, _)), Some((n, _))) => Some(r >= 0.5 * n),
                _ => None,
            },
        });
        let hwm = relay.and_then(|(_, h)| h);
        goals.push(Goal {
            goal: "relay peak RSS during the 1 GiB transfers < 64 MiB",
            measured: hwm.map_or("—".into(), |h| format!("{:.1} MiB", h as f64 / 1024.0)),
            met: hwm.map(|h| h < 64 * 1024),
        });
        let b = self.memory.as_ref().and_then(Memory::bytes_per_pair);
        goals.push(Goal {
            goal: "< 300 bytes of relay memory per stored pair",
            measured: b.map_or("—".into(), |b| format!("{b:.0} B")),
            met: b.map(|b| b < 300.0),
        });
        goals
    }

    /// What bounds the first goal on a machine shared by every process: the req/s ratio to
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

    /// The headline ratio (relay MTE memory, else pass-through) and what it is of.
    pub(crate) fn headline(&self) -> (Option<f64>, &'static str) {
        match self.ratio(300, 1024, MTE_MEM) {
            Some(r) => (Some(r), MTE_MEM),
            None => (self.ratio(300, 1024, PASS), PASS),
        }
    }

    /// The Markdown report.
    pub(crate) fn markdown(&self) -> String {
        let mut s = String::new();
        let i = &self.info;
        let _ = writeln!(s, "# pqrelay performance\n");
        let _ = writeln!(
            s,
            "Written by `bench/run.sh` (`cargo run -p pqrelay-bench --release -- all`); every \
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
        let _ = writeln!(s, "| goal | measured | verdict |\n|---|---|---|");
        for g in self.goals() {
            let _ = writeln!(s, "| {} | {} | {} |", g.goal, g.measured, verdict(g.met));
        }
        if let Some(c) = self.zero_cost_ceiling() {
            let _ = writeln!(
                s,
                "\nWhat bounds the first goal here (300 connections, 1 KiB, CPU columns below): \
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
        let _ = writeln!(s);

        let _ = writeln!(s, "## Throughput and latency (closed loop)\n");
        let _ = writeln!(
            s,
            "Each connection sends a JSON `POST` of the given size and gets a JSON answer of the \
             same size, one request at a time, as fast as it can. Latency in ms; \"vs nginx\" is \
             req/s relative to nginx at the same point; \"CPU µs/req\" is the CPU time (user + \
             system, warm-up included) per request of the proxy (nginx's master and workers, \
             or the relay plus redis-server for Redis), of the load generator and of the \
             upstream. On this machine every process shares two cores, so the sum of the three \
             is what bounds req/s. The \"direct\" row is the ceiling of the load generator on \
             this machine.\n"
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
                "| target | requests | req/s | p50 | p90 | p99 | p99.9 | max | errors | CPU µs/req: proxy / gen / upstream | vs nginx |"
            );
            let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            for m in self
                .matrix
                .iter()
                .filter(|m| m.conns == conns && m.size == size)
            {
                let ratio = self.ratio(conns, size, m.target).map_or("—".into(), pct);
                let _ = writeln!(s, "{}", point_row(m.target, &m.point, &ratio));
            }
            let _ = writeln!(s);
        }

        let _ = writeln!(
            s,
            "## Added latency at a fixed rate (open loop)\n\n{:.0} req/s over {} connections, \
             1 KiB; the targets take turns for {} round(s), pooled. Latency is measured from each request's intended send time (no coordinated \
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
            let _ = writeln!(s, "{}", point_row(t, p, &added));
        }
        let _ = writeln!(s);

        let _ = writeln!(
            s,
            "## Pairing\n\n`POST /api/mte-pair` in a closed loop (one client id per connection, \
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
- nginx: `worker_processes` = cores, plain `proxy_pass` to an `upstream` block with \
`keepalive 1024`, HTTP/1.1 upstream, request and response buffering off (streaming, like \
the relay), `client_max_body_size 0`, access log buffered (64 KiB). The relay: `THREADS` = \
cores, `upstream_keepalive_pool_size: 1024`, access log to a file, `PASS_THROUGH_ROUTES=/pt/*`, \
`PAIR_RATE_PER_IP=0` and `PAIR_RATE_PER_CLIENT=0` (all load comes from 127.0.0.1); \
\"Redis\" rows use a local `redis-server` (no persistence) as `REDIS_URL`.
- Closed loop: each point has a warm-up, then a measured window; a request counts when it \
started inside the window. Open loop: each connection has its own fixed schedule, latency \
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

fn point_row(target: &str, p: &Point, last: &str) -> String {
    if !p.measured() {
        return format!(
            "| {target} | — | — | — | — | — | — | — | {} | — | — |",
            errors_cell(p)
        );
    }
    format!(
        "| {target} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {last} |",
        p.ok,
        p.rps,
        p.p50,
        p.p90,
        p.p99,
        p.p999,
        p.max,
        errors_cell(p),
        p.cpu.cell()
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
