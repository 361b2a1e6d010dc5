//! The in-memory pair store: the shared store behaviour plus its own bounds (capacity, idle
//! expiry, pairs per client).

use std::sync::Arc;
use std::time::Duration;

use pqrelay::store::{from_config, MemoryConfig, MemoryStore, PairStore, StoreConfig, StoreError};

use crate::util::store_suite::{self, client, pid, state};

fn store(capacity: usize, idle: Duration, per_client: usize) -> MemoryStore {
    MemoryStore::new(&MemoryConfig {
        capacity,
        idle,
        max_pairs_per_client: per_client,
    })
}

fn default_store() -> MemoryStore {
    MemoryStore::new(&MemoryConfig::default())
}

#[tokio::test]
async fn memory_round_trip() {
    store_suite::round_trip(&default_store()).await;
}

#[tokio::test]
async fn memory_insert_many() {
    store_suite::insert_many(&default_store()).await;
}

#[tokio::test]
async fn memory_pair_id_in_use_is_refused() {
    store_suite::pair_id_in_use_is_refused(&default_store()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_cas_race_one_winner_per_version() {
    store_suite::cas_race(Arc::new(default_store()), 16, 200).await;
}

#[tokio::test]
async fn memory_from_config_is_memory() {
    let s = from_config(&StoreConfig::new(25)).unwrap();
    assert_eq!(s.kind(), "memory");
    store_suite::round_trip(&*s).await;
}

#[tokio::test]
async fn memory_idle_pairs_expire() {
    let s = store(100, Duration::from_secs(1), 100);
    let (c, p) = (client(1), pid(1));
    s.insert(&c, &[(p, state(0, 1)), (pid(2), state(0, 2))])
        .await
        .unwrap();
    let v = s.load(&c, &p).await.unwrap().unwrap().version;
    // A write refreshes the pair: keep pid(1) busy while pid(2) idles.
    let mut v = v;
    for n in 1..=3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(s.compare_and_set(&c, &p, &v, &state(n, 1)).await.unwrap());
        v = s.load(&c, &p).await.unwrap().unwrap().version;
    }
    assert!(
        s.load(&c, &pid(2)).await.unwrap().is_none(),
        "idle pair kept"
    );
    assert!(s.load(&c, &p).await.unwrap().is_some(), "busy pair dropped");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(s.load(&c, &p).await.unwrap().is_none());
    assert!(!s.compare_and_set(&c, &p, &v, &state(9, 1)).await.unwrap());
    assert!(s.is_empty());
}

#[tokio::test]
async fn memory_sweep_drops_expired_pairs_of_other_clients() {
    let s = store(100, Duration::from_secs(1), 100);
    for n in 0..10 {
        s.insert(&client(n), &[(pid(n), state(0, 1))])
            .await
            .unwrap();
    }
    assert_eq!(s.len(), 10);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // Any write past the sweep time drops every expired pair of its shard (one shard here).
    s.insert(&client(99), &[(pid(99), state(0, 1))])
        .await
        .unwrap();
    assert_eq!(s.len(), 1);
}

#[tokio::test]
async fn memory_full_store_evicts_least_recently_written() {
    let s = store(10, Duration::from_secs(3600), 100);
    assert_eq!(s.capacity(), 10);
    for n in 0..10 {
        s.insert(&client(n), &[(pid(n), state(0, 1))])
            .await
            .unwrap();
    }
    // Client 0 advances its pair: it becomes the most recently written... within the same
    // second, so order among equal times follows write order (versions).
    let v = s.load(&client(0), &pid(0)).await.unwrap().unwrap().version;
    assert!(s
        .compare_and_set(&client(0), &pid(0), &v, &state(1, 1))
        .await
        .unwrap());
    for n in 10..13 {
        s.insert(&client(n), &[(pid(n), state(0, 1))])
            .await
            .unwrap();
        assert!(s.len() <= 10);
        assert!(s.load(&client(n), &pid(n)).await.unwrap().is_some());
    }
    assert_eq!(s.len(), 10);
    assert!(s.load(&client(0), &pid(0)).await.unwrap().is_some());
    for n in 1..4 {
        assert!(s.load(&client(n), &pid(n)).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn memory_full_store_evicts_by_age() {
    let s = store(4, Duration::from_secs(3600), 100);
    s.insert(&client(0), &[(pid(0), state(0, 1)), (pid(1), state(0, 1))])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    s.insert(&client(1), &[(pid(2), state(0, 1)), (pid(3), state(0, 1))])
        .await
        .unwrap();
    // Client 0's pid(1) is refreshed: now pid(0) is the oldest.
    let v = s.load(&client(0), &pid(1)).await.unwrap().unwrap().version;
    assert!(s
        .compare_and_set(&client(0), &pid(1), &v, &state(1, 1))
        .await
        .unwrap());
    s.insert(&client(2), &[(pid(4), state(0, 1))])
        .await
        .unwrap();
    assert_eq!(s.len(), 4);
    assert!(s.load(&client(0), &pid(0)).await.unwrap().is_none());
    for (c, p) in [(0, 1), (1, 2), (1, 3), (2, 4)] {
        assert!(s.load(&client(c), &pid(p)).await.unwrap().is_some());
    }
}

#[tokio::test]
async fn memory_client_over_its_bound_loses_its_oldest_pairs() {
    let s = default_store_with_per_client(3);
    let c = client(7);
    for n in 0..5 {
        s.insert(&c, &[(pid(n), state(0, n as u8))]).await.unwrap();
    }
    assert_eq!(s.len(), 3);
    for n in 0..2 {
        assert!(s.load(&c, &pid(n)).await.unwrap().is_none());
    }
    for n in 2..5 {
        assert!(s.load(&c, &pid(n)).await.unwrap().is_some());
    }
    // A batch replaces the oldest ones but keeps all of itself; another client is untouched.
    s.insert(&client(8), &[(pid(0), state(0, 0))])
        .await
        .unwrap();
    s.insert(&c, &[(pid(10), state(0, 1)), (pid(11), state(0, 1))])
        .await
        .unwrap();
    for n in [4, 10, 11] {
        assert!(s.load(&c, &pid(n)).await.unwrap().is_some());
    }
    assert!(s.load(&client(8), &pid(0)).await.unwrap().is_some());
    assert_eq!(s.len(), 4);
    // Pairing an existing pair id is refused and counts nothing.
    let refused = s.insert(&c, &[(pid(10), state(0, 2))]).await;
    assert!(
        matches!(refused, Err(StoreError::PairIdInUse)),
        "{refused:?}"
    );
    assert_eq!(s.len(), 4);
}

fn default_store_with_per_client(n: usize) -> MemoryStore {
    store(1000, Duration::from_secs(3600), n)
}

#[tokio::test]
async fn memory_insert_larger_than_bounds_is_full() {
    let s = default_store_with_per_client(3);
    let pairs: Vec<_> = (0..4).map(|n| (pid(n), state(0, 1))).collect();
    assert_eq!(s.insert(&client(1), &pairs).await, Err(StoreError::Full));
    assert!(s.is_empty());
    let s = store(2, Duration::from_secs(3600), 100);
    let pairs: Vec<_> = (0..3).map(|n| (pid(n), state(0, 1))).collect();
    assert_eq!(s.insert(&client(1), &pairs).await, Err(StoreError::Full));
}

#[tokio::test]
async fn memory_many_clients_stay_within_capacity() {
    let s = store(50_000, Duration::from_secs(3600), 100);
    for n in 0..60_000u32 {
        s.insert(&client(n), &[(pid(n), state(0, 1))])
            .await
            .unwrap();
    }
    assert!(s.len() <= s.capacity(), "{} > {}", s.len(), s.capacity());
    assert!(s.len() >= 49_000, "evicted too much: {}", s.len());
    assert!(s
        .load(&client(59_999), &pid(59_999))
        .await
        .unwrap()
        .is_some());
}
