//! Clients vanishing mid-transfer, many times: a sealed 4 MiB upload whose body stream fails
//! after 2 MiB (the client's HTTP stack then drops the connection), and a sealed 32 MiB
//! download dropped after its first 2 MiB, 50 times each, through the real relay to a counting
//! upstream. Afterwards the upstream saw every cut upload as aborted (never as a complete
//! request) and no more than [`OPEN_BETWEEN_PHASES`] of its connections stay open, the
//! relay's open descriptors are back at the warmed-up baseline, its resident memory stays
//! within [`RSS_GROWTH_KIB`] of the baseline and does not grow from the first half of the cuts
//! to the second ([`RSS_HALF_GROWTH_KIB`]), the
//! pairs still work without re-pairing, and whole transfers still arrive intact. Run with
//! memory state and with Redis state (where the store then holds nothing but the client's
//! pairs).

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use pqrelay_client::{Body, RelayClient};
use pqrelay_testkit::redis::RedisServer;
use pqrelay_testkit::{fd_count, fd_listing, pattern, sha256_hex, TempDir};

use crate::util::exchange::upload;
use crate::util::faults::{assert_no_panic, eventually, vm_rss_kib, Sink};
use crate::util::{machine, Relay};

/// Cut uploads, and cut downloads.
const ABORTS: u64 = 50;
/// The upload's announced size, and where its body stream fails.
const UPLOAD: usize = 4 << 20;
const UPLOAD_CUT: usize = 2 << 20;
/// The download's size, and how much of it the client reads before dropping it.
const DOWNLOAD: usize = 32 << 20;
const DOWNLOAD_READ: usize = 2 << 20;
/// Generous limit for each wait on a loaded machine.
const PHASE: Duration = Duration::from_secs(30);
/// Open descriptors allowed above the warmed-up baseline (an upstream connection more or less
/// in the relay's keep-alive pool, a Redis reconnect).
const FD_MARGIN: usize = 4;
/// Upstream connections allowed open between phases: the relay's one pooled connection, and one
/// more, seen to stay open past a phase's 30 s in 2 of 6 full-suite runs on 2026-12-04, both on
/// a machine loaded by other builds (cause not found; Pingora's pool is capped at one). A task
/// stuck on each of the 100 cut transfers would keep up to 100 open.
const OPEN_BETWEEN_PHASES: i64 = 2;
/// Growth of the relay's RSS allowed over the 100 cut transfers. Buffering is bounded per
/// request (one 64 KiB record each way plus socket buffers) and transfers run one at a time;
/// what grows is the allocator's caches in the first cuts (measured: +6 to +20 MiB after 25
/// cuts of each kind, then flat or falling: −4 to +6 MiB from the baseline after 50, the same
/// after 150). Keeping the cut bodies would cost over 100 MiB.
const RSS_GROWTH_KIB: u64 = 32 * 1024;
/// Growth allowed from the first half of the cuts to the second, counted from the higher of the
/// baseline and the half-way reading (the allocator may hand memory back in between: measured
/// −15 to +10 MiB from the half-way reading in most runs, but one run of the debug relay ended
/// 16.7 MiB above both readings, 49,156 / 48,884 / 65,832 KiB, and failed the 8 MiB allowed
/// before). A leaked cut upload body would add 25 × 2 MiB, so 24 MiB still tells a leak of
/// 1 MiB or more per cut from the allocator's moves.
const RSS_HALF_GROWTH_KIB: u64 = 24 * 1024;

/// A sealed 4 MiB upload whose stream fails after 2 MiB, once the upstream saw the request.
async fn cut_upload(c: &RelayClient, sink: &Sink, started_before: u64) {
    let half: Vec<u8> = pattern(UPLOAD_CUT);
    let counts = sink.counts.clone();
    let chunks: Vec<Bytes> = half
        .chunks(256 * 1024)
        .map(Bytes::copy_from_slice)
        .collect();
    let body = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>)).chain(
        futures::stream::once(async move {
            // Fail only once the upstream has the request: the relay must then abort it.
            let limit = tokio::time::Instant::now() + PHASE;
            while counts.uploads_started.load(Ordering::SeqCst) <= started_before
                && tokio::time::Instant::now() < limit
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(std::io::Error::other("the client goes away"))
        }),
    );
    let r = c
        .post("/upload")
        .header("content-type", "application/octet-stream")
        .body(Body::sized_stream(body, UPLOAD as u64))
        .send()
        .await;
    assert!(
        r.is_err(),
        "a cut upload got an answer: {:?}",
        r.map(|r| r.status())
    );
}

/// A sealed 32 MiB download dropped after its first 2 MiB (which must be right).
async fn cut_download(c: &RelayClient) {
    let mut resp = c
        .get(format!("/download/{DOWNLOAD}"))
        .send()
        .await
        .expect("download head");
    assert_eq!(resp.status(), 200);
    let mut got = Vec::new();
    while got.len() < DOWNLOAD_READ {
        let chunk = resp
            .chunk()
            .await
            .expect("download chunk")
            .expect("not ended");
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, pattern(got.len()), "download content");
    drop(resp);
}

/// A whole upload and a whole download, verified.
async fn whole_transfers(c: &RelayClient) {
    let body = pattern(UPLOAD);
    let want = sha256_hex(&body);
    let v = upload(c, body).await;
    assert_eq!(v["size"], UPLOAD, "{v}");
    assert_eq!(v["sha256"], want.as_str(), "{v}");
    let resp = c
        .get(format!("/download/{UPLOAD}"))
        .send()
        .await
        .expect("download");
    assert_eq!(resp.status(), 200);
    let got = resp.bytes().await.expect("download body");
    assert_eq!(sha256_hex(&got), want, "download content");
}

async fn disconnects_leave_nothing_behind(redis: Option<&RedisServer>) {
    // Heavy: the two variants (and every other heavy test) run one after the other, as each
    // measures one relay's memory on a 2-core machine.
    let _turn = machine::heavy();
    let sink = Sink::start().await;
    let redis_url = redis.map(RedisServer::url).unwrap_or_default();
    // One idle upstream connection at most in the relay's pool, so that the upstream's open
    // connections count only the pooled one (see [`OPEN_BETWEEN_PHASES`]) and any a stuck task keeps.
    // With Pingora's default pool, a request that asks for a connection just before the
    // previous one is returned opens a second one, and both then stay idle (1 run in 10).
    let conf = TempDir::new("pqrelay-disconnect").expect("temp dir");
    let conf_file = conf.path().join("pool.yaml");
    std::fs::write(&conf_file, "upstream_keepalive_pool_size: 1\n").expect("config file");
    let conf_file = conf_file.display().to_string();
    // A relay task whose client vanished without a reset learns it at the latest when a write
    // to that client times out (`CLIENT_TIMEOUT_MS`, 30 s by default, as long as `PHASE`): 5 s
    // keeps that bound well inside each phase, so only a task that never ends fails the test.
    let mut env = vec![
        ("THREADS", "2"),
        ("CONFIG_FILE", &conf_file),
        ("CLIENT_TIMEOUT_MS", "5000"),
    ];
    if redis.is_some() {
        env.push(("REDIS_URL", &redis_url));
        env.push(("STATE_SECRET", "state-secret-0123456789abcdefghij"));
    }
    let mut relay = Relay::start(&sink.url(), &env);
    let pid = relay.proc.pid();
    let c = RelayClient::builder(relay.url(""))
        .pairs(2)
        .max_pairs(2)
        .build()
        .expect("client");

    // Warm up: whole transfers and one cut of each, so that pools and buffers exist.
    whole_transfers(&c).await;
    let started = sink.counts.uploads_started.load(Ordering::SeqCst);
    cut_upload(&c, &sink, started).await;
    cut_download(&c).await;
    whole_transfers(&c).await;
    let counts = sink.counts.clone();
    assert!(
        eventually(PHASE, || counts.open.load(Ordering::SeqCst)
            <= OPEN_BETWEEN_PHASES)
        .await
    );
    let fds = fd_count(pid);
    let fds_before = fd_listing(pid);
    let complete = counts.uploads_complete.load(Ordering::SeqCst);
    let aborted = counts.uploads_aborted.load(Ordering::SeqCst);
    let cut = counts.downloads_cut.load(Ordering::SeqCst);

    let mut rss = vec![vm_rss_kib(pid)];
    for i in 1..=ABORTS {
        let started = counts.uploads_started.load(Ordering::SeqCst);
        cut_upload(&c, &sink, started).await;
        cut_download(&c).await;
        if i % (ABORTS / 2) == 0 {
            rss.push(vm_rss_kib(pid));
        }
    }

    // The upstream saw every cut upload as an aborted request, none as a complete one.
    let all_aborted = eventually(PHASE, || {
        counts.uploads_aborted.load(Ordering::SeqCst) >= aborted + ABORTS
    })
    .await;
    assert!(
        all_aborted,
        "aborted uploads seen upstream: {} of {ABORTS}",
        counts.uploads_aborted.load(Ordering::SeqCst) - aborted
    );
    assert_eq!(counts.uploads_complete.load(Ordering::SeqCst), complete);
    // No stuck task keeps an upstream connection or a client socket.
    assert!(
        eventually(PHASE, || counts.open.load(Ordering::SeqCst)
            <= OPEN_BETWEEN_PHASES)
        .await,
        "upstream connections still open: {}",
        counts.open.load(Ordering::SeqCst)
    );
    let settled = eventually(PHASE, || fd_count(pid) <= fds + FD_MARGIN).await;
    let fds_after = fd_count(pid);
    // The relay stopped reading each download once its client was gone.
    let all_cut = eventually(PHASE, || {
        counts.downloads_cut.load(Ordering::SeqCst) >= cut + ABORTS
    })
    .await;
    let cut_after = counts.downloads_cut.load(Ordering::SeqCst) - cut;
    eprintln!(
        "{}: fds {fds} → {fds_after}, RSS {rss:?} KiB (start, half, end), upstream saw \
         {ABORTS} uploads aborted, {cut_after} of {ABORTS} downloads cut",
        if redis.is_some() { "redis" } else { "memory" }
    );
    assert!(
        settled,
        "fds {fds} before, {fds_after} after\nbefore:\n{fds_before}\nafter:\n{}",
        fd_listing(pid)
    );
    assert!(
        rss[2] <= rss[0] + RSS_GROWTH_KIB && rss[2] <= rss[0].max(rss[1]) + RSS_HALF_GROWTH_KIB,
        "RSS {rss:?} KiB (start, half, end)"
    );
    assert!(all_cut, "{cut_after} of {ABORTS} downloads cut upstream");

    // Nothing else broke: the pairs still work, whole transfers arrive intact.
    whole_transfers(&c).await;
    let stats = c.stats();
    assert_eq!(stats.pool.pairs_repaired, 0, "{stats:?}");
    if let Some(redis) = redis {
        let keys = redis.cli(&["--scan", "--pattern", "pqrelay:2:{*"]);
        let pairs = keys.lines().filter(|k| !k.ends_with(":index")).count();
        assert!(
            pairs <= 2,
            "{pairs} pairs in Redis for a client of 2 pairs: {keys}"
        );
    }
    assert!(!relay.proc.exited(), "{}", relay.proc.log_text());
    assert_no_panic(&relay.proc.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_vanishing_mid_transfer_leave_nothing_behind_with_memory_state() {
    disconnects_leave_nothing_behind(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_vanishing_mid_transfer_leave_nothing_behind_with_redis_state() {
    if pqrelay_testkit::redis::missing("redis-server") {
        return;
    }
    let redis = RedisServer::start();
    disconnects_leave_nothing_behind(Some(&redis)).await;
}
