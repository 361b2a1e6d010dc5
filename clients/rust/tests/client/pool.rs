//! The pool's rules, without I/O: one exchange per pair, growth bound, resets, and the
//! recovery rule of §11.1 (a resend runs on the pair just paired in place of the failed one).

use pqrelay_client::pool::{Checkout, PoolState, PooledPair};
use pqrelay_client::recovery::{retry_on, Recovery, Repair, RetryOn};
use pqrelay_protocol::{ChainKey, ClientId, ClientPair, PairId};

fn pairs(n: usize, first: u8, generation: u64) -> Vec<PooledPair> {
    (0..n)
        .map(|i| PooledPair {
            pair: ClientPair::from_parts(
                PairId([first + i as u8; 16]),
                0,
                ChainKey::from_bytes([1; 32]),
            ),
            client_id: ClientId([7; 16]),
            generation,
        })
        .collect()
}

fn expect_pair(c: Checkout) -> (usize, u64) {
    match c {
        Checkout::Pair { count, generation } => (count, generation),
        other => panic!("expected Pair, got {other:?}"),
    }
}

fn expect_ready(c: Checkout) -> PooledPair {
    match c {
        Checkout::Ready(p) => p,
        other => panic!("expected Ready, got {other:?}"),
    }
}

#[test]
fn pool_first_checkout_pairs_grow_step() {
    let mut pool = PoolState::new(25, 5);
    let (count, generation) = expect_pair(pool.checkout());
    assert_eq!(count, 5);
    let mine = pool
        .paired(generation, count, pairs(5, 0, generation))
        .unwrap();
    assert_eq!(mine.pair.pair_id(), PairId([0; 16]));
    let s = pool.stats();
    assert_eq!(
        (s.idle, s.in_use, s.pairing, s.pairings, s.pairs_created),
        (4, 1, 0, 1, 5)
    );
}

#[test]
fn pool_never_checks_out_one_pair_twice() {
    let mut pool = PoolState::new(3, 3);
    let (count, g) = expect_pair(pool.checkout());
    let a = pool.paired(g, count, pairs(3, 0, g)).unwrap();
    let b = expect_ready(pool.checkout());
    let c = expect_ready(pool.checkout());
    let mut ids = vec![a.pair.pair_id(), b.pair.pair_id(), c.pair.pair_id()];
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        3,
        "three exchanges in flight use three different pairs"
    );
    // Full: a fourth exchange waits until a pair comes back.
    assert!(matches!(pool.checkout(), Checkout::Wait));
    let back = b.pair.pair_id();
    pool.give_back(b);
    let again = expect_ready(pool.checkout());
    assert_eq!(again.pair.pair_id(), back);
    assert!(matches!(pool.checkout(), Checkout::Wait));
}

#[test]
fn pool_growth_stops_at_max() {
    let mut pool = PoolState::new(12, 5);
    let mut out = Vec::new();
    let mut pairings = 0;
    let mut next_id = 0u8;
    loop {
        match pool.checkout() {
            Checkout::Ready(p) => out.push(p),
            Checkout::Pair { count, generation } => {
                pairings += 1;
                assert!(pool.stats().idle + pool.stats().in_use + pool.stats().pairing <= 12);
                let got = pool.paired(generation, count, pairs(count, next_id, generation));
                next_id += count as u8;
                out.push(got.unwrap());
            }
            Checkout::Wait => break,
        }
    }
    assert_eq!(out.len(), 12);
    assert_eq!(pairings, 3, "5 + 5 + 2");
    assert_eq!(pool.stats().pairs_created, 12);
}

#[test]
fn pool_concurrent_checkouts_wait_for_a_pairing_in_flight() {
    let mut pool = PoolState::new(25, 5);
    let (count, g) = expect_pair(pool.checkout());
    // Four more callers arrive while the first pairing of 5 is in flight: they wait for it
    // instead of pairing more.
    for _ in 0..4 {
        assert!(matches!(pool.checkout(), Checkout::Wait));
    }
    // A sixth has no pair coming: it pairs.
    let (count2, _) = expect_pair(pool.checkout());
    assert_eq!(count2, 5);
    assert!(pool.paired(g, count, pairs(count, 0, g)).is_some());
    for _ in 0..4 {
        expect_ready(pool.checkout());
    }
    assert_eq!(pool.stats().pairing, 5);
}

#[test]
fn pool_pairing_failed_frees_the_reservation() {
    let mut pool = PoolState::new(5, 5);
    let (count, _) = expect_pair(pool.checkout());
    pool.pairing_failed(count);
    assert_eq!(pool.stats().pairing, 0);
    expect_pair(pool.checkout());
}

#[test]
fn pool_reset_drops_idle_and_returning_pairs() {
    let mut pool = PoolState::new(5, 5);
    let (count, g) = expect_pair(pool.checkout());
    let mine = pool.paired(g, count, pairs(5, 0, g)).unwrap();
    pool.reset();
    assert_eq!(pool.stats().idle, 0);
    pool.give_back(mine);
    assert_eq!(
        pool.stats().idle,
        0,
        "a pair of an older generation is not reused"
    );
    assert_eq!(pool.stats().in_use, 0);
    let (count, g2) = expect_pair(pool.checkout());
    assert_ne!(g, g2);
    // A pairing that started before a reset is discarded when it lands.
    pool.reset();
    assert!(pool.paired(g2, count, pairs(count, 10, g2)).is_none());
    assert_eq!(pool.stats().pairing, 0);
}

#[test]
fn pool_discard_frees_the_slot() {
    let mut pool = PoolState::new(1, 1);
    let (count, g) = expect_pair(pool.checkout());
    let p = pool.paired(g, count, pairs(1, 0, g)).unwrap();
    assert!(matches!(pool.checkout(), Checkout::Wait));
    pool.discard(p);
    assert_eq!(pool.stats().pairs_discarded, 1);
    expect_pair(pool.checkout());
}

#[test]
fn pool_lowered_bound_drops_extra_pairs() {
    let mut pool = PoolState::new(25, 10);
    let (count, g) = expect_pair(pool.checkout());
    let mine = pool.paired(g, count, pairs(10, 0, g)).unwrap();
    pool.set_bounds(4, 4);
    assert!(pool.stats().idle + pool.stats().in_use <= 4);
    pool.give_back(mine);
    assert!(pool.stats().idle <= 4);
}

#[test]
fn recovery_table_follows_section_11() {
    for status in [559, 561, 562, 564, 565] {
        let r = Recovery::for_status(status).unwrap();
        assert_eq!(
            (r.rediscover, r.repair),
            (false, Repair::ThisPair),
            "{status}"
        );
    }
    // 563: drop this pair and every pair paired no later than it; 569: re-pair all.
    for status in [563, 569] {
        let r = Recovery::for_status(status).unwrap();
        assert_eq!((r.rediscover, r.repair), (false, Repair::All), "{status}");
    }
    for status in [560, 566] {
        let r = Recovery::for_status(status).unwrap();
        assert_eq!((r.rediscover, r.repair), (true, Repair::All));
    }
    let r = Recovery::for_status(568).unwrap();
    assert_eq!((r.rediscover, r.repair), (true, Repair::None));
    let r = Recovery::for_status(567).unwrap();
    assert_eq!((r.rediscover, r.repair), (false, Repair::None));
    for status in [200, 400, 404, 413, 429, 502, 503, 558, 570] {
        assert_eq!(Recovery::for_status(status), None, "{status}");
    }
}

#[test]
fn recovery_resends_on_the_repaired_pair() {
    for status in [559, 560, 561, 562, 563, 564, 565, 566, 569] {
        let r = Recovery::for_status(status).unwrap();
        // Whether or not the old pair still looks current, the resend never takes another pair.
        for pair_current in [true, false] {
            assert_eq!(
                retry_on(&r, pair_current),
                RetryOn::RepairedPair,
                "{status}"
            );
        }
    }
    // No re-pair asked: the same (already advanced) pair, unless it went stale meanwhile.
    for status in [567, 568] {
        let r = Recovery::for_status(status).unwrap();
        assert_eq!(retry_on(&r, true), RetryOn::SamePair);
        assert_eq!(retry_on(&r, false), RetryOn::RepairedPair);
    }
}

#[test]
fn pool_repair_in_place_keeps_the_slot_and_leaves_other_pairs_alone() {
    // Five pairs a restarted relay has all forgotten: one checked out gets 563.
    let mut pool = PoolState::new(5, 5);
    let (count, g) = expect_pair(pool.checkout());
    let stale = pool.paired(g, count, pairs(5, 0, g)).unwrap();
    let before = pool.stats();
    // Re-paired in place: the slot stays checked out (nothing else can take it), the idle
    // pairs are neither used nor touched.
    pool.repaired();
    let s = pool.stats();
    assert_eq!((s.in_use, s.idle), (before.in_use, before.idle));
    assert_eq!(s.pairs_repaired, 1);
    assert_eq!(
        (s.pairings, s.pairs_created, s.pairs_discarded),
        (
            before.pairings + 1,
            before.pairs_created + 1,
            before.pairs_discarded + 1
        )
    );
    // The fresh pair (a new id: version 2 never replaces a pair, counter 0) goes back to the
    // pool after the resend.
    let fresh = pairs(1, 9, pool.generation()).pop().unwrap();
    assert_ne!(fresh.pair.pair_id(), stale.pair.pair_id());
    pool.give_back(fresh);
    assert_eq!((pool.stats().in_use, pool.stats().idle), (0, 5));
}

#[test]
fn pool_reset_since_resets_once_for_many_failures() {
    let mut pool = PoolState::new(5, 5);
    let (count, g) = expect_pair(pool.checkout());
    let a = pool.paired(g, count, pairs(5, 0, g)).unwrap();
    let b = expect_ready(pool.checkout());
    // Both exchanges got 569: the first resets, the second sees it already happened.
    assert!(pool.reset_since(a.generation));
    let g2 = pool.generation();
    assert!(!pool.reset_since(b.generation));
    assert_eq!(pool.generation(), g2);
    assert_eq!(pool.stats().resets, 1);
    // The pairs re-paired in place by both under the new generation go back to the pool.
    pool.repaired();
    pool.repaired();
    for p in [pairs(1, 0, g2), pairs(1, 1, g2)].into_iter().flatten() {
        pool.give_back(p);
    }
    assert_eq!(pool.stats().idle, 2);
}
