//! One of two relays killed (SIGKILL) under load. Two relays share one Redis behind a small
//! TCP balancer (round-robin per connection, skipping a backend that refuses the connection);
//! four tasks of the Rust client send sealed uploads through the balancer without pause.
//!
//! The bound on failures: only a request on a connection the balancer had open to the killed
//! relay can fail. HTTP/1.1 without pipelining carries at most one request at a time per
//! connection, and the client's HTTP pool drops a connection after an error, so each such
//! connection loses at most one request: failures ≤ connections open to the killed relay at
//! the kill (measured: 2 of 2), and each is a transport error, never a relay status. Every later connection goes
//! to the surviving relay (the dead one refuses and the balancer fails over), which finds every
//! pair in Redis: no re-pairing, and every request after the window succeeds.

use std::sync::atomic::Ordering;
use std::time::Duration;

use pqrelay_client::RelayClient;
use pqrelay_testkit::redis::RedisServer;
use pqrelay_testkit::Signal;

use crate::util::faults::{assert_no_panic, eventually, small_upload, Balancer, Load};
use crate::util::machine;
use crate::util::{Relay, Upstream};

/// Concurrent request loops.
const LOAD_TASKS: usize = 4;
/// Generous limit for each phase on a loaded machine.
const PHASE: Duration = Duration::from_secs(30);
/// Requests that must succeed after the kill (through the survivor).
const AFTER_KILL: u64 = 200;

fn start_relay(upstream: &str, redis: &str) -> Relay {
    Relay::start(
        upstream,
        &[
            ("REDIS_URL", redis),
            ("STATE_SECRET", "state-secret-0123456789abcdefghij"),
            ("REDIS_TIMEOUT_MS", "500"),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_of_two_relays_killed_under_load_fails_over_to_the_other() {
    let _turn = machine::heavy();
    if pqrelay_testkit::redis::missing("redis-server") {
        return;
    }
    let redis = RedisServer::start();
    let upstream = Upstream::start();
    let mut a = start_relay(&upstream.url(), &redis.url());
    let mut b = start_relay(&upstream.url(), &redis.url());
    let lb = Balancer::start(vec![a.port, b.port]).await;
    let (c, load) = Load::start(&lb.url(), LOAD_TASKS).await;
    let tally = load.tally.clone();
    let serving = |i: usize| lb.open[i].load(Ordering::SeqCst) > 0;
    assert!(
        eventually(PHASE, || tally.ok() >= 200 && serving(0) && serving(1)).await,
        "both relays should serve: ok {}, open {:?}",
        tally.ok(),
        [
            lb.open[0].load(Ordering::SeqCst),
            lb.open[1].load(Ordering::SeqCst)
        ]
    );
    assert_eq!(
        tally.count(),
        0,
        "failures before the kill: {:?}",
        tally.all()
    );
    let pairings = c.stats().pool.pairings;

    // The kill: the balancer's connections to `a` at this moment bound the failures.
    let accepted_a = lb.accepted[0].load(Ordering::SeqCst);
    let open_on_a = lb.open[0].load(Ordering::SeqCst);
    a.proc.signal(Signal::SIGKILL).expect("SIGKILL relay a");
    assert!(
        eventually(PHASE, || a.proc.exited()).await,
        "relay a survived SIGKILL"
    );
    let ok_at_kill = tally.ok();
    assert!(
        eventually(PHASE, || tally.ok() >= ok_at_kill + AFTER_KILL).await,
        "no fail-over: ok {} after the kill, failures {:?}",
        tally.ok() - ok_at_kill,
        tally.all()
    );
    load.stop().await;
    // A connection the client opened to `a` between the reading above and the kill counts too.
    let open_on_a = open_on_a + (lb.accepted[0].load(Ordering::SeqCst) - accepted_a) as i64;

    let failures = tally.all();
    eprintln!(
        "fail-over: {} ok, {} failed {:?}; {open_on_a} connections open to the killed relay; \
         balancer accepted {:?}, refused {}; client {:?}",
        tally.ok(),
        failures.len(),
        tally.by_kind(),
        [
            lb.accepted[0].load(Ordering::SeqCst),
            lb.accepted[1].load(Ordering::SeqCst)
        ],
        lb.refused.load(Ordering::SeqCst),
        c.stats()
    );
    assert!(
        failures.len() as i64 <= open_on_a,
        "{} failures with {open_on_a} connections open to the killed relay: {failures:?}",
        failures.len()
    );
    for (kind, detail) in &failures {
        assert!(kind.starts_with("transport"), "{kind}: {detail}");
    }
    // Pairs live in Redis: the survivor serves them, nobody re-paired.
    let stats = c.stats();
    assert_eq!(stats.pool.pairs_repaired, 0, "{stats:?}");
    assert_eq!(stats.pool.pairings, pairings, "{stats:?}");

    // Afterwards: every request succeeds, on old and new connections and for a new client;
    // new connections that the balancer first tries on the dead relay fail over.
    for n in 0..50 {
        small_upload(&c, n)
            .await
            .unwrap_or_else(|f| panic!("request {n} after the kill: {f:?}"));
    }
    let refused = lb.refused.load(Ordering::SeqCst);
    for n in 0..2 {
        let fresh = RelayClient::builder(lb.url()).pairs(1).build().unwrap();
        small_upload(&fresh, n)
            .await
            .unwrap_or_else(|f| panic!("new client {n} after the kill: {f:?}"));
    }
    assert!(
        lb.refused.load(Ordering::SeqCst) > refused,
        "no new connection was tried on the dead relay"
    );
    assert_eq!(lb.open[0].load(Ordering::SeqCst), 0);
    assert!(!b.proc.exited(), "{}", b.proc.log_text());
    assert_no_panic(&b.proc.log_text());
    assert_no_panic(&a.proc.log_text());
}
