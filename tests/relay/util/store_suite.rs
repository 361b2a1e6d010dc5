//! Behaviour every `PairStore` must have, run against each store by the `store_*` modules.

use std::collections::HashSet;
use std::sync::Arc;

use pqrelay::store::{PairStore, StoreError, Version};
use pqrelay_protocol::{ChainKey, ClientId, Kid, PairId, ServerPair};

/// A pair state with a recognisable chain key.
pub fn state(next: u64, fill: u8) -> ServerPair {
    ServerPair::from_parts(next, ChainKey::from_bytes([fill; 32]), Kid([0; 8]))
}

/// A client id unique to `n`.
pub fn client(n: u32) -> ClientId {
    let mut id = [0xc1; 16];
    id[..4].copy_from_slice(&n.to_be_bytes());
    ClientId(id)
}

/// A pair id unique to `n`.
pub fn pid(n: u32) -> PairId {
    let mut id = [0xa7; 16];
    id[12..].copy_from_slice(&n.to_be_bytes());
    PairId(id)
}

/// Insert, load, compare-and-set, load again; a stale version loses; missing pairs are `None`.
pub async fn round_trip(store: &dyn PairStore) {
    let (c, p) = (client(1), pid(1));
    assert!(store.load(&c, &p).await.unwrap().is_none());
    store.insert(&c, &[(p, state(0, 1))]).await.unwrap();
    let got = store.load(&c, &p).await.unwrap().expect("stored");
    assert_eq!(got.pair, state(0, 1));
    assert!(store
        .compare_and_set(&c, &p, &got.version, &state(1, 2))
        .await
        .unwrap());
    let again = store.load(&c, &p).await.unwrap().expect("still stored");
    assert_eq!(again.pair, state(1, 2));
    assert_ne!(again.version, got.version);
    // The old version lost.
    assert!(!store
        .compare_and_set(&c, &p, &got.version, &state(9, 9))
        .await
        .unwrap());
    assert_eq!(store.load(&c, &p).await.unwrap().unwrap().pair, state(1, 2));
    // Another client's or pair's id finds nothing; CAS on a missing pair is false.
    assert!(store.load(&client(2), &p).await.unwrap().is_none());
    assert!(store.load(&c, &pid(2)).await.unwrap().is_none());
    assert!(!store
        .compare_and_set(&c, &pid(2), &again.version, &state(2, 2))
        .await
        .unwrap());
    store.ping().await.unwrap();
}

/// Several pairs in one insert are all stored.
pub async fn insert_many(store: &dyn PairStore) {
    let c = client(3);
    let pairs: Vec<_> = (0..20).map(|i| (pid(i), state(0, i as u8))).collect();
    store.insert(&c, &pairs).await.unwrap();
    for (p, s) in &pairs {
        assert_eq!(&store.load(&c, p).await.unwrap().unwrap().pair, s);
    }
}

/// A pairing that names a pair id in use stores nothing and leaves that pair as it was: a
/// pair is never replaced (PROTOCOL.md §6 step 6).
pub async fn pair_id_in_use_is_refused(store: &dyn PairStore) {
    let (c, p, fresh) = (client(4), pid(4), pid(40));
    store.insert(&c, &[(p, state(5, 1))]).await.unwrap();
    let old = store.load(&c, &p).await.unwrap().unwrap();
    let refused = store
        .insert(&c, &[(fresh, state(0, 7)), (p, state(0, 7))])
        .await;
    assert!(
        matches!(refused, Err(StoreError::PairIdInUse)),
        "{refused:?}"
    );
    assert!(
        store.load(&c, &fresh).await.unwrap().is_none(),
        "all or nothing"
    );
    let kept = store.load(&c, &p).await.unwrap().unwrap();
    assert_eq!(kept.pair, state(5, 1));
    assert!(store
        .compare_and_set(&c, &p, &old.version, &state(6, 1))
        .await
        .unwrap());
}

/// Many tasks race on one pair: for each version exactly one compare-and-set wins, and the
/// counter ends at the number of wins.
pub async fn cas_race(store: Arc<dyn PairStore>, tasks: u32, rounds: u32) {
    let (c, p) = (client(5), pid(5));
    store.insert(&c, &[(p, state(0, 0))]).await.unwrap();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut wins = Vec::new();
            let mut losses = 0u32;
            for _ in 0..rounds {
                let got = store.load(&c, &p).await.unwrap().unwrap();
                let n = got.pair.next_counter();
                tokio::task::yield_now().await;
                if store
                    .compare_and_set(&c, &p, &got.version, &state(n + 1, (n + 1) as u8))
                    .await
                    .unwrap()
                {
                    wins.push((got.version, n));
                } else {
                    losses += 1;
                }
            }
            (wins, losses)
        }));
    }
    let mut versions: HashSet<Version> = HashSet::new();
    let mut counters = HashSet::new();
    let (mut total, mut lost) = (0u64, 0u32);
    for h in handles {
        let (wins, losses) = h.await.unwrap();
        lost += losses;
        for (v, n) in wins {
            assert!(versions.insert(v), "two wins from one version");
            assert!(counters.insert(n), "two wins from counter {n}");
            total += 1;
        }
    }
    let end = store.load(&c, &p).await.unwrap().unwrap().pair;
    assert_eq!(end.next_counter(), total);
    assert_eq!(total + u64::from(lost), u64::from(tasks * rounds));
    assert!(lost > 0, "the race never happened ({tasks} tasks)");
}
