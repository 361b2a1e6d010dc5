//! # pqrelay-bench
//!
//! Load generator and benchmark runner for pqrelay.
//!
//! - `all [--quick]`: starts a fast upstream, nginx (plain reverse proxy), bare Pingora,
//!   redis-server and relays on 127.0.0.1, measures throughput and latency (closed and open loop), pairing rate,
//!   streamed transfers, memory per pair and syscalls per request, writes
//!   `docs/PERFORMANCE.md` and prints, last,
//!   `relay CPU per sealed request: X.XX× bare Pingora, Y.YY× nginx`. `bench/run.sh` builds
//!   and runs it. The bare Pingora proxy it compares with is the `bare-pingora` binary.
//! - `load`: one closed- or open-loop run against a URL (plain) or a relay (sealed).
//! - `memory`: only the relay's RSS per stored pair.
//! - `upstream`: the fast upstream alone.
//! - `outbound [--requests N] [--redis]`: the latency the outbound hop adds at 1 KiB (app → relay A →
//!   relay B → upstream against app → relay B with the Rust client, and the plain upstream).
//! - `flood [--floods 0,64,256] [--secs N] [--pairs N] [--clients N] [--pairing-concurrency N]`:
//!   latency of paired clients' sealed exchanges while many connections flood `/api/mte-pair`.
//! - `soak [--secs N] [--workers N]`: mixed, verified traffic through a relay with Redis state
//!   for N seconds, with a Redis restart and a relay upgrade mid-run (`bench/soak.sh`).
//!
//! Every child process is stopped on exit, error or Ctrl-C; every load loop stops by itself.

mod crypto;
mod flood;
mod load;
mod outbound;
mod procs;
mod profiles;
mod report;
mod soak;
mod stream;
mod suite;
mod syscalls;
mod upstream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "pqrelay-bench",
    about = "Load generator and benchmarks for pqrelay"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run every measurement and write the report.
    All {
        /// Short points (about 2 minutes in all).
        #[arg(long)]
        quick: bool,
        /// Measured seconds per load point (default 5, quick 1.5).
        #[arg(long)]
        secs: Option<f64>,
        /// The report to write.
        #[arg(long, default_value = "docs/PERFORMANCE.md")]
        out: PathBuf,
        /// The relay binary (default: $CARGO_TARGET_DIR/release/pqrelay).
        #[arg(long)]
        relay_bin: Option<PathBuf>,
    },
    /// One load run against a URL or a relay.
    Load {
        /// Full URL for plain POSTs, or with --relay the relay base URL.
        url: String,
        /// Send sealed requests through the relay at `url` to this path.
        #[arg(long)]
        relay: Option<String>,
        /// Connections.
        #[arg(long, default_value_t = 100)]
        conns: usize,
        /// Measured seconds.
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        /// Warm-up seconds.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        /// Requests per second over all connections (open loop); closed loop when absent.
        #[arg(long)]
        rate: Option<f64>,
        /// JSON request body size in bytes.
        #[arg(long, default_value_t = 1024)]
        size: usize,
    },
    /// Only the memory measurement: relay RSS growth per stored pair (memory state).
    Memory {
        /// Clients of one pair each.
        #[arg(long, default_value_t = 100_000)]
        clients: usize,
        /// The relay binary (default: $CARGO_TARGET_DIR/release/pqrelay).
        #[arg(long)]
        relay_bin: Option<PathBuf>,
    },
    /// Mixed, verified traffic with a Redis restart and a relay upgrade mid-run.
    Soak {
        /// Length of the run in seconds.
        #[arg(long, default_value_t = 600)]
        secs: u64,
        /// Concurrent workers.
        #[arg(long, default_value_t = 8)]
        workers: usize,
        /// The relay binary (default: $CARGO_TARGET_DIR/release/pqrelay).
        #[arg(long)]
        relay_bin: Option<PathBuf>,
    },
    /// The latency the outbound hop adds at 1 KiB (median and p99).
    Outbound {
        /// Timed sequential requests per path.
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        /// Both relays keep their state in one redis-server (default: memory).
        #[arg(long)]
        redis: bool,
        /// The relay binary (default: $CARGO_TARGET_DIR/release/pqrelay).
        #[arg(long)]
        relay_bin: Option<PathBuf>,
    },
    /// Sealed exchanges of paired clients during a pairing flood (median, p99).
    Flood {
        /// Flooding connections, one run each (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "0,64,256")]
        floods: Vec<usize>,
        /// Measured seconds per flood size.
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        /// Pairs per flood pairing request.
        #[arg(long, default_value_t = 25)]
        pairs: usize,
        /// Paired clients sending exchanges, one at a time each.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// The relay's PAIRING_CONCURRENCY (default: the relay's own default).
        #[arg(long)]
        pairing_concurrency: Option<usize>,
        /// The relay binary (default: $CARGO_TARGET_DIR/release/pqrelay).
        #[arg(long)]
        relay_bin: Option<PathBuf>,
    },
    /// Run the fast upstream.
    Upstream {
        /// Port on 127.0.0.1.
        #[arg(long, default_value_t = 9090)]
        port: u16,
        /// Worker threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Cmd::Upstream { port, threads } = cli.command {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        return match upstream::run(addr, threads) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("upstream: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(suite::cores())
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        tokio::select! {
            r = run(cli.command) => r,
            _ = interrupted() => Err(anyhow::anyhow!("interrupted; stopping every child process")),
        }
    });
    // Dropping the runtime drops any child handles still held by unfinished tasks.
    rt.shutdown_timeout(Duration::from_secs(5));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pqrelay-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Ctrl-C or SIGTERM.
async fn interrupted() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::All {
            quick,
            secs,
            out,
            relay_bin,
        } => {
            let opts = suite::Options {
                quick,
                out,
                relay_bin: relay_bin.unwrap_or_else(suite::default_relay_bin),
                secs,
            };
            let results = suite::all(&opts).await?;
            eprintln!("[bench] report written to {}", opts.out.display());
            for g in &results.goals() {
                println!("goal: {} — {} — {}", g.goal, g.measured, g.verdict());
            }
            println!("{}", results.headline());
            Ok(())
        }
        Cmd::Load {
            url,
            relay,
            conns,
            secs,
            warmup,
            rate,
            size,
        } => {
            let http = suite::plain_client(conns)?;
            let target = match relay {
                Some(path) => load::Target::Relay {
                    clients: suite::relay_clients(&http, &url, conns).await?,
                    path,
                },
                None => load::Target::Plain {
                    http: http.clone(),
                    uri: url.parse()?,
                },
            };
            let spec = load::Spec {
                conns,
                warmup: Duration::from_secs_f64(warmup),
                duration: Duration::from_secs_f64(secs),
                rate,
                body: upstream::json_of_len(size),
                expect_len: None,
                timeout: Duration::from_secs(10),
            };
            let o = load::run(Arc::new(target), &spec).await?;
            println!("{}", o.summary());
            println!(
                "requests {}  errors {}  mean {:.2} ms",
                o.ok,
                o.errors,
                o.mean_ms()
            );
            Ok(())
        }
        Cmd::Outbound {
            requests,
            redis,
            relay_bin,
        } => {
            let bin = relay_bin.unwrap_or_else(suite::default_relay_bin);
            outbound::run(bin, requests.max(1), redis).await
        }
        Cmd::Memory { clients, relay_bin } => {
            let bin = relay_bin.unwrap_or_else(suite::default_relay_bin);
            let m = suite::memory_only(bin, clients).await?;
            if let Some(e) = &m.error {
                anyhow::bail!("memory measurement failed: {e}");
            }
            println!(
                "{:.0} bytes per pair ({} clients)",
                m.bytes_per_pair().unwrap_or(0.0),
                m.clients
            );
            Ok(())
        }
        Cmd::Soak {
            secs,
            workers,
            relay_bin,
        } => {
            let opts = soak::Options {
                duration: Duration::from_secs(secs),
                workers: workers.max(1),
                relay_bin: relay_bin.unwrap_or_else(suite::default_relay_bin),
            };
            soak::run(&opts).await
        }
        Cmd::Flood {
            floods,
            secs,
            pairs,
            clients,
            pairing_concurrency,
            relay_bin,
        } => {
            let opts = flood::Options {
                secs,
                floods,
                pairs: pairs.clamp(1, 255),
                clients,
                pairing_concurrency,
                relay_bin: relay_bin.unwrap_or_else(suite::default_relay_bin),
            };
            flood::run(&opts).await
        }
        Cmd::Upstream { .. } => unreachable!("handled before the runtime starts"),
    }
}
