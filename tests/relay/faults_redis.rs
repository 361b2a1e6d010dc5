//! Redis killed (SIGKILL) and restarted under load. Four tasks of the Rust client send sealed
//! uploads without pause through one relay with Redis state. During the outage every failed
//! request is a `503 state_store_unavailable` with a reason and readiness is 503; Redis comes
//! back on the same port **empty** (no persistence: the realistic case after a crash), so every
//! pair the client holds is gone and the client re-pairs on its own (563 → re-pair → retry,
//! PROTOCOL.md §11). Once one request succeeded again, every request succeeds; the relay is the
//! same process throughout and never panicked.

use std::time::{Duration, Instant};

use pqrelay_testkit::redis::RedisServer;

use crate::util::faults::{assert_no_panic, eventually, Failure, Load};
use crate::util::machine;
use crate::util::{expect_error, Relay, Upstream};

/// Concurrent request loops.
const LOAD_TASKS: usize = 4;
/// Generous limit for each phase on a loaded machine.
const PHASE: Duration = Duration::from_secs(30);
/// Requests that must succeed after recovery, with no failure among them.
const AFTER_RECOVERY: u64 = 200;
/// The outage's failures: only this kind.
const OUTAGE: &str = "503 state_store_unavailable";

async fn ready_status(relay: &Relay) -> u16 {
    crate::util::get(relay, "/api/mte-ready")
        .await
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_and_restarted_empty_under_load() {
    let _turn = machine::heavy();
    if pqrelay_testkit::redis::missing("redis-server") {
        return;
    }
    let mut redis = RedisServer::start();
    let upstream = Upstream::start();
    let redis_url = redis.url();
    let mut relay = Relay::start(
        &upstream.url(),
        &[
            ("REDIS_URL", &redis_url),
            ("STATE_SECRET", "state-secret-0123456789abcdefghij"),
            ("REDIS_TIMEOUT_MS", "500"),
            ("THREADS", "2"),
        ],
    );
    let pid = relay.proc.pid();
    let (c, load) = Load::start(&relay.url(""), LOAD_TASKS).await;
    let tally = load.tally.clone();
    assert!(eventually(PHASE, || tally.ok() >= 100).await, "no load");
    assert_eq!(
        tally.count(),
        0,
        "failures before the fault: {:?}",
        tally.by_kind()
    );

    // The outage: SIGKILL, data gone.
    redis.stop();
    assert!(
        eventually(PHASE, || tally.by_kind().contains_key(OUTAGE)).await,
        "no 503 during the outage: {:?}",
        tally.by_kind()
    );
    let v = expect_error(
        crate::util::get(&relay, "/api/mte-ready").await,
        503,
        "state_store_unavailable",
    )
    .await;
    assert!(!v["message"].as_str().unwrap_or("").is_empty(), "{v}");
    // Whether the relay failed to read the pair (it cannot authenticate its error, §11.2) or
    // to save it (an authenticated error), the caller sees the 503 with its reason.
    match c.get("/echo?msg=down").send().await {
        Err(e) => {
            let f = Failure::of(&e);
            assert_eq!(f.kind, OUTAGE, "{e}");
            assert!(f.detail.contains(": "), "503 without a reason: {e}");
        }
        Ok(r) => panic!("expected 503 during the outage, got {}", r.status()),
    }
    // Let the load run into the outage for a while (more 503s, no other kind).
    tokio::time::sleep(Duration::from_millis(800)).await;
    let outage = tally.all();
    for (kind, detail) in &outage {
        assert_eq!(kind, OUTAGE, "{detail}");
        assert!(detail.contains(": "), "503 without a reason: {detail}");
    }
    let outage_failures = outage.len();

    // Redis back on the same port, empty.
    redis.restart();
    let ok_at_restart = tally.ok();
    let mut ready = false;
    let deadline = Instant::now() + PHASE;
    while Instant::now() < deadline {
        if tally.ok() > ok_at_restart && ready_status(&relay).await == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "no recovery:\n{}", relay.proc.log_text());
    let recovered = Instant::now();
    let ok_at_recovery = tally.ok();
    assert!(
        eventually(PHASE, || tally.ok() >= ok_at_recovery + AFTER_RECOVERY).await,
        "load stalled after recovery: {:?}",
        tally.by_kind()
    );
    load.stop().await;

    let after: Vec<(String, String)> = tally.failures_since(recovered);
    assert!(after.is_empty(), "failures after recovery: {after:?}");
    // Nothing but the outage's 503s at any time (no 500, 502, transport error or timeout).
    let kinds = tally.by_kind();
    assert_eq!(kinds.keys().collect::<Vec<_>>(), vec![OUTAGE], "{kinds:?}");
    let stats = c.stats();
    assert!(
        stats.pool.pairs_repaired > 0,
        "the empty Redis did not make the client re-pair: {stats:?}"
    );
    // Still the same relay process, ready, never panicked.
    assert!(!relay.proc.exited(), "{}", relay.proc.log_text());
    assert_eq!(relay.proc.pid(), pid);
    assert_eq!(ready_status(&relay).await, 200);
    assert_no_panic(&relay.proc.log_text());
    eprintln!(
        "redis outage: {} ok, {} failed ({kinds:?}), {outage_failures} seen during the outage; \
         client {stats:?}",
        tally.ok(),
        tally.count()
    );
}
