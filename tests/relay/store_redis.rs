//! The Redis pair store against real `redis-server` processes: the shared store behaviour,
//! sealing at rest, secrets, idle expiry, Redis down and restarted, TLS, and Redis Cluster.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pqrelay::store::{from_config, PairStore, RedisConfig, RedisStore, StoreConfig, StoreError};
use pqrelay_protocol::{ChainKey, ServerPair};
use pqrelay_testkit::redis::{RedisCluster, RedisServer};

use crate::util::machine;
use crate::util::store_suite::{self, client, pid, state};

const SECRET: &[u8] = b"state-secret-0123456789abcdefghij";
const OTHER: &[u8] = b"other-secret-0123456789abcdefghij";

fn config(url: &str) -> RedisConfig {
    RedisConfig::new(url, false, SECRET, &[])
}

fn store(url: &str) -> RedisStore {
    RedisStore::new(&config(url)).expect("store")
}

/// A chain key with no repeated bytes, easy to search for in a blob.
fn distinctive_state(next: u64) -> ServerPair {
    let mut ck = [0u8; 32];
    for (i, b) in ck.iter_mut().enumerate() {
        *b = 0x40 + i as u8;
    }
    ServerPair::from_parts(
        next,
        ChainKey::from_bytes(ck),
        pqrelay_protocol::Kid([0; 8]),
    )
}

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection")
}

#[tokio::test]
async fn redis_round_trip() {
    let server = RedisServer::start();
    store_suite::round_trip(&store(&server.url())).await;
}

#[tokio::test]
async fn redis_insert_many() {
    let server = RedisServer::start();
    store_suite::insert_many(&store(&server.url())).await;
}

#[tokio::test]
async fn redis_pair_id_in_use_is_refused() {
    let server = RedisServer::start();
    store_suite::pair_id_in_use_is_refused(&store(&server.url())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_cas_race_one_winner_per_version() {
    let server = RedisServer::start();
    store_suite::cas_race(Arc::new(store(&server.url())), 16, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_two_relays_share_pairs_and_race() {
    // Two stores (two relays) on one Redis: one sees the other's writes; CAS races across them.
    let server = RedisServer::start();
    let a = store(&server.url());
    let b = store(&server.url());
    let (c, p) = (client(1), pid(1));
    a.insert(&c, &[(p, state(0, 1))]).await.unwrap();
    let seen = b.load(&c, &p).await.unwrap().expect("b sees a's pair");
    assert_eq!(seen.pair, state(0, 1));
    let from_a = a.load(&c, &p).await.unwrap().unwrap();
    assert_eq!(from_a.version, seen.version);
    assert!(b
        .compare_and_set(&c, &p, &seen.version, &state(1, 2))
        .await
        .unwrap());
    assert!(!a
        .compare_and_set(&c, &p, &from_a.version, &state(1, 3))
        .await
        .unwrap());
    assert_eq!(a.load(&c, &p).await.unwrap().unwrap().pair, state(1, 2));
}

#[tokio::test]
async fn redis_load_recent_remembers_own_writes_and_loses_to_another_relays() {
    // The exchange's read: this relay's own last write comes from memory (no GET), once; a
    // write by another relay since makes the remembered version lose its compare-and-set.
    let server = RedisServer::start();
    let a = store(&server.url());
    let b = store(&server.url());
    let (c, p) = (client(7), pid(7));
    a.insert(&c, &[(p, state(0, 1))]).await.unwrap();
    let mine = a.load_recent(&c, &p).await.unwrap().unwrap();
    assert!(mine.remembered);
    assert_eq!(mine.pair, state(0, 1));
    let in_redis = b.load(&c, &p).await.unwrap().unwrap();
    assert!(!in_redis.remembered);
    assert_eq!(mine.version, in_redis.version);
    let again = a.load_recent(&c, &p).await.unwrap().unwrap();
    assert!(!again.remembered, "handed out once");
    assert!(a
        .compare_and_set(&c, &p, &again.version, &state(1, 2))
        .await
        .unwrap());

    let stale = a.load_recent(&c, &p).await.unwrap().unwrap();
    assert!(stale.remembered);
    assert_eq!(stale.pair, state(1, 2));
    let seen = b.load(&c, &p).await.unwrap().unwrap();
    assert!(b
        .compare_and_set(&c, &p, &seen.version, &state(2, 3))
        .await
        .unwrap());
    assert!(!a
        .compare_and_set(&c, &p, &stale.version, &state(2, 9))
        .await
        .unwrap());
    let fresh = a.load_recent(&c, &p).await.unwrap().unwrap();
    assert!(!fresh.remembered);
    assert_eq!(fresh.pair, state(2, 3));
    // A plain load always asks Redis, so expiry and other writers are seen.
    assert!(!a.load(&c, &p).await.unwrap().unwrap().remembered);
}

#[tokio::test]
async fn redis_values_are_sealed_81_byte_blobs_with_ttl() {
    let server = RedisServer::start();
    let mut cfg = config(&server.url());
    cfg.idle = Duration::from_secs(3600);
    cfg.unused = Duration::from_secs(600);
    let s = RedisStore::new(&cfg).unwrap();
    let (c, p) = (client(9), pid(9));
    s.insert(&c, &[(p, distinctive_state(7))]).await.unwrap();
    let key = RedisStore::key(&c, &p);
    assert_eq!(key, format!("pqrelay:2:{{{}}}:{}", c.to_b64(), p.to_b64()));
    let mut conn = raw(&server.url()).await;
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("pqrelay:2:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.sort();
    let mut want = vec![key.clone(), RedisStore::index_key(&c)];
    want.sort();
    assert_eq!(keys, want);
    let blob: Vec<u8> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(blob.len(), 81);
    let state_bytes = distinctive_state(7).to_bytes();
    let ck = &state_bytes[9..];
    for window in [ck, &ck[..8], &ck[24..], &state_bytes[..9]] {
        assert!(
            !blob.windows(window.len()).any(|w| w == window),
            "plain state bytes in the blob"
        );
    }
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        ttl > 590_000 && ttl <= 600_000,
        "a pair never used lives 10 min: ttl {ttl}"
    );
    // A fresh salt per write: advancing the pair gives another blob, and the idle TTL.
    let seen = s.load(&c, &p).await.unwrap().unwrap();
    assert!(s
        .compare_and_set(&c, &p, &seen.version, &distinctive_state(7))
        .await
        .unwrap());
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        ttl > 3_590_000 && ttl <= 3_600_000,
        "a used pair lives an hour idle: ttl {ttl}"
    );
    let again: Vec<u8> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_ne!(again, blob);
    // The stored version is the blob itself.
    let stored = s.load(&c, &p).await.unwrap().unwrap();
    assert_eq!(stored.version, pqrelay::store::Version::Sealed(again));
}

#[tokio::test]
async fn redis_blob_under_another_secret_is_unreadable() {
    let server = RedisServer::start();
    let a = store(&server.url());
    let (c, p) = (client(2), pid(2));
    a.insert(&c, &[(p, state(3, 3))]).await.unwrap();
    let b = RedisStore::new(&RedisConfig::new(server.url(), false, OTHER, &[])).unwrap();
    assert_eq!(b.load(&c, &p).await.unwrap_err(), StoreError::Unreadable);
    // A blob moved to another pair's key does not open either (ids are in the AAD).
    let mut conn = raw(&server.url()).await;
    let _: () = redis::cmd("COPY")
        .arg(RedisStore::key(&c, &p))
        .arg(RedisStore::key(&c, &pid(3)))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        a.load(&c, &pid(3)).await.unwrap_err(),
        StoreError::Unreadable
    );
    // Garbage is unreadable, not a crash.
    let _: () = redis::cmd("SET")
        .arg(RedisStore::key(&c, &pid(4)))
        .arg("garbage")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        a.load(&c, &pid(4)).await.unwrap_err(),
        StoreError::Unreadable
    );
}

#[tokio::test]
async fn redis_previous_secret_still_opens_and_writes_move_to_the_current() {
    let server = RedisServer::start();
    let old = RedisStore::new(&RedisConfig::new(server.url(), false, OTHER, &[])).unwrap();
    let (c, p) = (client(3), pid(3));
    old.insert(&c, &[(p, state(4, 4))]).await.unwrap();
    let rotated =
        RedisStore::new(&RedisConfig::new(server.url(), false, SECRET, &[OTHER])).unwrap();
    let got = rotated.load(&c, &p).await.unwrap().expect("opens");
    assert_eq!(got.pair, state(4, 4));
    assert!(rotated
        .compare_and_set(&c, &p, &got.version, &state(5, 5))
        .await
        .unwrap());
    // Now sealed under the current secret only.
    assert_eq!(old.load(&c, &p).await.unwrap_err(), StoreError::Unreadable);
    assert_eq!(
        store(&server.url())
            .load(&c, &p)
            .await
            .unwrap()
            .unwrap()
            .pair,
        state(5, 5)
    );
}

#[tokio::test]
async fn redis_idle_pairs_expire_and_writes_refresh() {
    let server = RedisServer::start();
    let mut cfg = config(&server.url());
    cfg.idle = Duration::from_millis(800);
    let s = RedisStore::new(&cfg).unwrap();
    let c = client(4);
    s.insert(&c, &[(pid(1), state(0, 1)), (pid(2), state(0, 2))])
        .await
        .unwrap();
    for n in 1..=3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let v = s.load(&c, &pid(1)).await.unwrap().unwrap().version;
        assert!(s
            .compare_and_set(&c, &pid(1), &v, &state(n, 1))
            .await
            .unwrap());
    }
    assert!(
        s.load(&c, &pid(2)).await.unwrap().is_none(),
        "idle pair kept"
    );
    assert!(
        s.load(&c, &pid(1)).await.unwrap().is_some(),
        "busy pair dropped"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(s.load(&c, &pid(1)).await.unwrap().is_none());
}

#[tokio::test]
async fn redis_down_is_unavailable_quickly() {
    let _turn = machine::timed();
    // Nothing listens: construction succeeds (the relay starts), every call fails fast.
    let port = pqrelay_testkit::free_port();
    let s = store(&format!("redis://127.0.0.1:{port}"));
    for _ in 0..3 {
        let started = Instant::now();
        let err = s.load(&client(1), &pid(1)).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }
    assert!(matches!(s.ping().await, Err(StoreError::Unavailable(_))));
}

#[tokio::test]
async fn redis_unreachable_host_times_out() {
    let _turn = machine::timed();
    // A blackholed address (TEST-NET-1): the call gives up after the configured timeout.
    let mut cfg = config("redis://192.0.2.1:6379");
    cfg.timeout = Duration::from_millis(300);
    let s = RedisStore::new(&cfg).unwrap();
    let started = Instant::now();
    let err = s
        .insert(&client(1), &[(pid(1), state(0, 1))])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn redis_restarted_store_recovers_without_recreation() {
    let _turn = machine::timed();
    let mut server = RedisServer::start();
    let s = store(&server.url());
    let (c, p) = (client(5), pid(5));
    s.insert(&c, &[(p, state(0, 1))]).await.unwrap();
    server.stop();
    let started = Instant::now();
    let err = s.load(&c, &p).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert!(matches!(s.ping().await, Err(StoreError::Unavailable(_))));
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match s.insert(&c, &[(p, state(0, 2))]).await {
            Ok(()) => break,
            Err(e) => assert!(Instant::now() < deadline, "never recovered: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s.load(&c, &p).await.unwrap().unwrap().pair, state(0, 2));
    s.ping().await.unwrap();
}

#[tokio::test]
async fn redis_started_before_redis_connects_later() {
    let port = pqrelay_testkit::free_port();
    let s = store(&format!("redis://127.0.0.1:{port}"));
    assert!(s.ping().await.is_err());
    let _server = RedisServer::start_with(port, &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.ping().await.is_err() {
        assert!(Instant::now() < deadline, "never connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store_suite::round_trip(&s).await;
}

#[test]
fn redis_store_works_from_any_runtime_and_outside_one() {
    // Built outside any runtime, used from two short-lived runtimes in turn (like Pingora's
    // per-service runtimes): the connection lives on the store's own runtime.
    let server = RedisServer::start();
    let s = store(&server.url());
    for n in 0..2u32 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            s.insert(&client(n), &[(pid(n), state(0, 1))])
                .await
                .unwrap();
            assert!(s.load(&client(n), &pid(n)).await.unwrap().is_some());
        });
        drop(rt);
    }
}

#[tokio::test]
async fn redis_from_config_and_kind() {
    let server = RedisServer::start();
    let s = from_config(&StoreConfig::new(25).with_redis(config(&server.url()))).unwrap();
    assert_eq!(s.kind(), "redis");
    store_suite::round_trip(&*s).await;
}

#[test]
fn redis_config_is_validated_and_never_shows_the_url() {
    let bad = RedisConfig::new("http://user:hunter2@h:1", false, SECRET, &[]);
    let err = RedisStore::new(&bad).unwrap_err().to_string();
    assert!(!err.contains("hunter2"), "{err}");
    let unix_cluster = RedisConfig::new("unix:///tmp/redis.sock", true, SECRET, &[]);
    assert!(RedisStore::new(&unix_cluster).is_err());
    let mut ca_plain = RedisConfig::new("redis://h:1", false, SECRET, &[]);
    ca_plain.ca_file = Some("/nonexistent.pem".into());
    assert!(RedisStore::new(&ca_plain).is_err());
    let mut missing_ca = RedisConfig::new("rediss://h:1", false, SECRET, &[]);
    missing_ca.ca_file = Some("/nonexistent.pem".into());
    assert!(RedisStore::new(&missing_ca).is_err());
    let ok = RedisConfig::new("redis://:hunter2@h:1", false, SECRET, &[OTHER]);
    let shown = format!("{ok:?} {:?}", RedisStore::new(&ok).unwrap());
    assert!(
        !shown.contains("hunter2") && !shown.contains("0123456789"),
        "{shown}"
    );
}

#[tokio::test]
async fn redis_tls_round_trip() {
    let server = RedisServer::start_tls();
    let tls = server.tls.as_ref().unwrap();
    let mut cfg = config(&server.url());
    cfg.ca_file = Some(tls.ca.clone());
    let s = RedisStore::new(&cfg).unwrap();
    store_suite::round_trip(&s).await;
    // Without the CA the server's certificate is not trusted: unavailable, not connected.
    let untrusted = store(&server.url());
    assert!(matches!(
        untrusted.ping().await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_round_trip_race_and_slots() {
    if pqrelay_testkit::redis::missing("redis-cli") {
        return;
    }
    let cluster = RedisCluster::start();
    let s = Arc::new(RedisStore::new(&RedisConfig::new(cluster.url(), true, SECRET, &[])).unwrap());
    assert_eq!(s.kind(), "redis-cluster");
    store_suite::round_trip(&*s).await;
    store_suite::insert_many(&*s).await;
    store_suite::pair_id_in_use_is_refused(&*s).await;
    store_suite::cas_race(s.clone(), 8, 25).await;
    // Many clients land on every node; a client's pairs share one node (hash tag).
    for n in 100..160 {
        let pairs: Vec<_> = (0..5).map(|i| (pid(i), state(0, 1))).collect();
        s.insert(&client(n), &pairs).await.unwrap();
    }
    let mut total = 0;
    for node in &cluster.nodes {
        let keys = node.cli(&["keys", "pqrelay:2:*"]);
        let keys: Vec<&str> = keys
            .lines()
            .filter(|l| !l.is_empty() && !l.ends_with(":index"))
            .collect();
        assert!(!keys.is_empty(), "a node holds no pair");
        total += keys.len();
        for n in 100..160 {
            let tag = format!("{{{}}}", client(n).to_b64());
            let here = keys.iter().filter(|k| k.contains(&tag)).count();
            assert!(here == 0 || here == 5, "client {n} split over nodes");
        }
    }
    assert!(total >= 60 * 5);
}
