//! Pair state in Redis is bounded (issue 16, SECURITY.md §3): one client id cannot store more
//! than its cap of pairs (`4 × MAX_POOL_SIZE`, the oldest dropped atomically with the insert),
//! and pairs that were never used expire after `UNUSED_PAIR_TTL` (10 min) instead of the idle
//! expiry of 24 h. The binary test pairs through the real relay; the store test shortens the
//! lifetimes through the library's configuration so that expiry is seen, not assumed.

use std::time::Duration;

use pqrelay::store::redis::UNUSED_PAIR_TTL;
use pqrelay::store::{PairStore, RedisConfig, RedisStore};
use pqrelay_protocol::{ClientPairing, DecapsulationSeed, PairId};
use pqrelay_testkit::redis::RedisServer;

use crate::util::exchange::{
    discovered, open_answer, random, seal_request, send_pairing, send_sealed, HandPair,
};
use crate::util::store_suite::{client, pid, state};
use crate::util::{Relay, Upstream};

const POOL: usize = 25;
const CAP: usize = 4 * POOL;

/// The pair keys of one client id (its index key left out), with their remaining lifetimes.
fn pair_keys(redis: &RedisServer, client_b64: &str) -> Vec<(String, i64)> {
    let pattern = format!("pqrelay:2:{{{client_b64}}}:*");
    let out = std::process::Command::new("redis-cli")
        .args(["-u", &redis.url(), "--scan", "--pattern", &pattern])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|k| !k.ends_with(":index"))
        .map(|k| {
            let out = std::process::Command::new("redis-cli")
                .args(["-u", &redis.url(), "PTTL", k])
                .output()
                .unwrap();
            let ttl = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
            (k.to_owned(), ttl)
        })
        .collect()
}

#[tokio::test]
async fn one_client_id_pairing_20_times_25_pairs_keeps_its_cap_and_unused_pairs_are_short_lived() {
    let redis = RedisServer::start();
    let upstream = Upstream::start();
    let relay = Relay::start(
        &upstream.url(),
        &[
            ("REDIS_URL", &redis.url()),
            ("PAIR_RATE_PER_IP", "0"),
            ("PAIR_RATE_PER_CLIENT", "0"),
        ],
    );
    // One client id (its token re-sent on every discovery).
    let (token, offered) = discovered(&relay, None).await;
    let key = offered.choose(&[]).unwrap().clone();
    let mut last = None;
    for round in 0..20 {
        let pids: Vec<PairId> = (0..POOL).map(|_| PairId(random())).collect();
        let seed = DecapsulationSeed::from_bytes(random());
        let pending =
            ClientPairing::new(token.id(), &key, &random::<64>(), &seed, pids.clone()).unwrap();
        let resp = send_pairing(&relay, &token, &pending).await;
        assert_eq!(resp.status(), 200, "round {round}");
        last = Some(pending.complete(&resp.bytes().await.unwrap()).unwrap());
    }
    let client_b64 = token.id().to_b64();
    let stored = pair_keys(&redis, &client_b64);
    assert_eq!(stored.len(), CAP, "500 pairs paired, the cap kept");
    let unused_ms = UNUSED_PAIR_TTL.as_millis() as i64;
    for (key, ttl) in &stored {
        assert!(
            0 < *ttl && *ttl <= unused_ms,
            "{key}: never used, PTTL {ttl} ms"
        );
    }
    // The newest pairs are the ones kept: one of the last round works, and once used it lives
    // for the idle expiry (24 h), no longer the unused pairs' 10 minutes.
    let mut confirmed = last.unwrap();
    let (pid, pair) = confirmed.pairs.remove(0);
    let mut p = HandPair {
        token: token.clone(),
        pid,
        pair: Some(pair),
        key: key.id(),
    };
    let s = seal_request(&mut p, "GET", "/echo?used=1", &[], None);
    let (status, _, _) = open_answer(&s, send_sealed(&relay, &s).await).await;
    assert_eq!(status, 200);
    let used = format!("pqrelay:2:{{{client_b64}}}:{}", pid.to_b64());
    let ttl = pair_keys(&redis, &client_b64)
        .into_iter()
        .find(|(k, _)| *k == used)
        .expect("the used pair is kept")
        .1;
    assert!(
        ttl > unused_ms,
        "a used pair lives for the idle expiry: {ttl} ms"
    );
}

#[tokio::test]
async fn redis_store_drops_the_oldest_pairs_beyond_the_cap_and_expires_unused_ones() {
    let redis = RedisServer::start();
    let mut cfg = RedisConfig::new(
        redis.url(),
        false,
        b"state-secret-0123456789abcdefghij",
        &[],
    );
    cfg.max_pairs_per_client = 10;
    cfg.unused = Duration::from_millis(600);
    cfg.idle = Duration::from_secs(3600);
    let s = RedisStore::new(&cfg).unwrap();
    let c = client(7);
    for batch in 0..4u32 {
        let pairs: Vec<_> = (0..5).map(|i| (pid(batch * 5 + i), state(0, 1))).collect();
        s.insert(&c, &pairs).await.unwrap();
    }
    // 20 inserted, 10 kept: the two newest batches.
    for n in 0..20 {
        let kept = s.load(&c, &pid(n)).await.unwrap().is_some();
        assert_eq!(kept, n >= 10, "pair {n}");
    }
    // Use one; the others were never used and go after 600 ms.
    let v = s.load(&c, &pid(19)).await.unwrap().unwrap().version;
    assert!(s
        .compare_and_set(&c, &pid(19), &v, &state(1, 1))
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for n in 10..19 {
        assert!(
            s.load(&c, &pid(n)).await.unwrap().is_none(),
            "unused pair {n} kept"
        );
    }
    assert!(
        s.load(&c, &pid(19)).await.unwrap().is_some(),
        "used pair dropped"
    );
}
