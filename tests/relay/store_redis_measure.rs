//! Measurements of the Redis store against a local `redis-server` (run with `--nocapture`):
//! bytes per pair in Redis (`MEMORY USAGE` of one key, and the `used_memory` growth for 100,000
//! pairs) and the latency of one load + compare-and-set.

use std::time::{Duration, Instant};

use pqrelay::store::{PairStore, RedisConfig, RedisStore};
use pqrelay_testkit::redis::RedisServer;

use crate::util::machine;
use crate::util::store_suite::{client, pid, state};

const PAIRS: u32 = 100_000;
const PER_CLIENT: u32 = 25;
const ROUNDS: usize = 2_000;

fn used_memory(server: &RedisServer) -> u64 {
    server
        .cli(&["info", "memory"])
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_bytes_per_pair_and_latency() {
    let _turn = machine::heavy();
    let server = RedisServer::start();
    let s = RedisStore::new(&RedisConfig::new(server.url(), false, b"measure", &[])).unwrap();
    s.ping().await.unwrap();
    let before = used_memory(&server);
    for c in 0..PAIRS / PER_CLIENT {
        let pairs: Vec<_> = (0..PER_CLIENT)
            .map(|i| (pid(c * PER_CLIENT + i), state(0, 1)))
            .collect();
        s.insert(&client(c), &pairs).await.unwrap();
    }
    let after = used_memory(&server);
    let key = RedisStore::key(&client(0), &pid(0));
    let usage: u64 = server
        .cli(&["memory", "usage", &key])
        .trim()
        .parse()
        .expect("MEMORY USAGE");
    let delta = (after - before) as f64 / f64::from(PAIRS);
    println!("redis: MEMORY USAGE of one pair key: {usage} bytes");
    println!("redis: used_memory growth for {PAIRS} pairs: {delta:.1} bytes/pair");
    // The pair key, plus its entry in the client's index (PROTOCOL.md §14).
    assert!(usage < 300 && delta < 400.0);

    let (c, p) = (client(0), pid(0));
    let mut times: Vec<Duration> = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let got = s.load(&c, &p).await.unwrap().unwrap();
        let next = state(got.pair.next_counter() + 1, 1);
        assert!(s
            .compare_and_set(&c, &p, &got.version, &next)
            .await
            .unwrap());
        times.push(started.elapsed());
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)].as_micros();
    println!(
        "redis: load + compare-and-set, {ROUNDS} sequential rounds: p50 {} µs, p90 {} µs, p99 {} µs",
        at(0.5),
        at(0.9),
        at(0.99)
    );

    // Baseline: the same two commands on a plain connection from the test's runtime (no
    // sealing, no hop to the store's runtime).
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let script = redis::Script::new(pqrelay::store::redis::CAS_SCRIPT);
    let mut base: Vec<Duration> = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let blob: Vec<u8> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let won: i64 = script
            .key(&key)
            .key(RedisStore::index_key(&client(0)))
            .arg(&blob)
            .arg(&blob)
            .arg(86_400_000u64)
            .arg(1u64)
            .invoke_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(won, 1);
        base.push(started.elapsed());
    }
    base.sort();
    println!(
        "redis: plain GET + EVALSHA baseline: p50 {} µs, p90 {} µs",
        base[ROUNDS / 2].as_micros(),
        base[ROUNDS * 9 / 10].as_micros()
    );
}
