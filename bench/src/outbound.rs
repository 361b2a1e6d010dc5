//! `pqrelay-bench outbound`: the latency the outbound hop adds, at 1 KiB.
//!
//! Starts the fast upstream, relay B (memory state) and relay A (outbound mode, allowed to
//! reach B), then sends `POST /json/1024` with a 1 KiB body, one request at a time over a
//! kept-alive connection, along three paths:
//!
//! 1. app → upstream (plain, the floor);
//! 2. app → relay B → upstream, sealed by the Rust client in the app;
//! 3. app → relay A → relay B → upstream: plain to A, which seals it as a client of B.
//!
//! Each path gets a warm-up, then `--requests` timed requests; the paths take turns request by
//! request so that a slow moment of the machine hits all three alike. Prints median and p99.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http_body_util::BodyExt as _;
use pqrelay_client::{full_body, HttpClient, RelayClient};
use pqrelay_testkit::{clean_command, free_port, Proc, Signal, TempDir};

use crate::procs::{start_redis, READY_TIMEOUT};
use crate::suite::{http_ok, plain_client, sealed_post_json};

const TOKEN: &str = "pqrelay-bench-outbound-token-0123456789";
const SECRET: &str = "pqrelay-bench-outbound-secret-0123456789";
/// Request and answer size.
const SIZE: usize = 1024;
/// Untimed requests per path first.
const WARMUP: usize = 200;

/// Median and p99 of one path.
struct Summary {
    median: Duration,
    p99: Duration,
}

fn summary(mut v: Vec<Duration>) -> Summary {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    Summary {
        median: at(0.5),
        p99: at(0.99),
    }
}

/// Starts `cmd`, waits for `GET <base><ready>` to answer 200.
async fn start(dir: &TempDir, name: &str, cmd: &mut Command, port: u16) -> anyhow::Result<Proc> {
    let log = dir.path().join(format!("{name}.log"));
    let mut p = Proc::spawn_group(name, cmd, log, Signal::SIGINT)?;
    let http = plain_client(2)?;
    let url = format!("http://127.0.0.1:{port}/health");
    p.wait_ready(READY_TIMEOUT, || http_ok(&http, &url)).await?;
    Ok(p)
}

/// A relay on `port` in front of `upstream` (pass-through `/health` for readiness).
fn relay(relay_bin: &PathBuf, port: u16, upstream: &str, env: &[(&str, String)]) -> Command {
    let mut cmd = clean_command(relay_bin);
    cmd.env("UPSTREAM", upstream)
        .env("CLIENT_ID_SECRET", SECRET)
        .env("CORS_ORIGINS", "http://localhost")
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("PASS_THROUGH_ROUTES", "/health")
        .env("THREADS", "1")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .arg("run");
    cmd
}

/// One plain `POST url` with `body`; the answer is read whole and must be 200.
async fn plain(
    http: &HttpClient,
    url: &str,
    body: &Bytes,
    headers: &[(&str, &str)],
) -> anyhow::Result<()> {
    let mut req = http::Request::post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = http.request(req.body(full_body(body.clone()))?).await?;
    let status = resp.status();
    let got = resp.into_body().collect().await?.to_bytes();
    if status != 200 || got.len() != SIZE {
        bail!("{url}: {status}, {} bytes", got.len());
    }
    Ok(())
}

/// Runs the measurement and prints the table.
/// With `redis`, relays A and B keep their state (B's pairs, A's outbound pool) in one
/// redis-server.
pub(crate) async fn run(relay_bin: PathBuf, requests: usize, redis: bool) -> anyhow::Result<()> {
    let dir = TempDir::new("pqrelay-bench")?;
    let (up_port, b_port, a_port) = (free_port(), free_port(), free_port());
    let (_redis, store) = if redis {
        let port = free_port();
        let proc = start_redis(&dir, port, "redis.log", Signal::SIGTERM).await?;
        (
            Some(proc),
            vec![("REDIS_URL", format!("redis://127.0.0.1:{port}"))],
        )
    } else {
        (None, Vec::new())
    };
    let upstream = format!("http://127.0.0.1:{up_port}");
    let b_base = format!("http://127.0.0.1:{b_port}");
    let mut up_cmd = Command::new(std::env::current_exe()?);
    up_cmd.args(["upstream", "--port", &up_port.to_string(), "--threads", "1"]);
    let _up = start(&dir, "upstream", &mut up_cmd, up_port).await?;
    let _b = start(
        &dir,
        "relay-b",
        &mut relay(&relay_bin, b_port, &upstream, &store),
        b_port,
    )
    .await?;
    let mut outbound = vec![
        ("OUTBOUND_TOKEN", TOKEN.to_owned()),
        ("OUTBOUND_UPSTREAMS", b_base.clone()),
    ];
    outbound.extend(store.iter().cloned());
    let _a = start(
        &dir,
        "relay-a",
        &mut relay(&relay_bin, a_port, &upstream, &outbound),
        a_port,
    )
    .await?;

    let http = plain_client(2)?;
    let client = RelayClient::builder(&b_base)
        .http_client(http.clone())
        .pairs(1)
        .max_pairs(1)
        .build()?;
    let body = Bytes::from(vec![b'x'; SIZE]);
    let direct_url = format!("{upstream}/json/{SIZE}");
    let via_a_url = format!("http://127.0.0.1:{a_port}/json/{SIZE}");
    let via_a_headers = [
        ("x-mte-outbound-token", TOKEN),
        ("x-mte-upstream", b_base.as_str()),
    ];
    let mut times: [Vec<Duration>; 3] = Default::default();
    for i in 0..(WARMUP + requests) {
        let t = Instant::now();
        plain(&http, &direct_url, &body, &[]).await?;
        let direct = t.elapsed();
        let t = Instant::now();
        sealed_post_json(&client, &body).await.context("via B")?;
        let via_b = t.elapsed();
        let t = Instant::now();
        plain(&http, &via_a_url, &body, &via_a_headers)
            .await
            .context("via A")?;
        let via_a = t.elapsed();
        if i >= WARMUP {
            for (v, d) in times.iter_mut().zip([direct, via_b, via_a]) {
                v.push(d);
            }
        }
    }
    let [direct, via_b, via_a] = times.map(summary);
    let us = |d: Duration| format!("{:.0} µs", d.as_secs_f64() * 1e6);
    let state = if redis { "Redis" } else { "memory" };
    println!(
        "POST /json/{SIZE}, {SIZE} B body, {requests} sequential requests per path, {state} state:"
    );
    println!("| path | median | p99 |");
    println!("|---|---|---|");
    for (name, s) in [
        ("app → upstream (plain)", &direct),
        ("app → relay B → upstream (Rust client)", &via_b),
        ("app → relay A → relay B → upstream (outbound)", &via_a),
    ] {
        println!("| {name} | {} | {} |", us(s.median), us(s.p99));
    }
    println!(
        "outbound hop adds {} at the median, {} at p99 (A→B→upstream minus B→upstream)",
        us(via_a.median.saturating_sub(via_b.median)),
        us(via_a.p99.saturating_sub(via_b.p99))
    );
    Ok(())
}
