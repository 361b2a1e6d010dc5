//! The in-memory pair store (the default, one relay process): bounded, sharded, idle expiry.
//!
//! # Layout
//!
//! Pairs live in [`SHARDS`] shards chosen by a hash of the client id, each a
//! `parking_lot::Mutex<HashMap<ClientId, Vec<Slot>>>`. A client's pairs sit together in one small
//! vector (at most [`MemoryConfig::max_pairs_per_client`]), so a load or compare-and-set is one
//! hash lookup plus a scan of that client's few pairs, under one shard's lock. A slot holds the
//! pair id, the state `(e, ck_e)` (40 bytes, zeroized when dropped), its version and the time of
//! its last write as a `u32` count of seconds since the store was created: 72 bytes. Versions are
//! [`Version::Memory`] numbers from one atomic write counter, so every write of a pair (pairing,
//! re-pairing, compare-and-set) gets a version never seen before.
//!
//! # Bounds and eviction policy
//!
//! - **Idle expiry** ([`MemoryConfig::idle`], default 24 h): a pair that has not been written
//!   (paired or advanced) for that long is gone, with one-second resolution. Expiry is checked on
//!   every access; a shard is also swept for expired pairs when it is written to and its last
//!   sweep is older than [`SWEEP_INTERVAL_MAX`] (or half the idle time, if shorter), and when it is
//!   full. There is no background task.
//! - **Capacity** ([`MemoryConfig::capacity`], default [`DEFAULT_CAPACITY`] pairs): split evenly
//!   over the shards (each holds `ceil(capacity / shards)`). When pairing would overfill a shard,
//!   its expired pairs are dropped first; if it is still full of live pairs, the least recently
//!   written pairs of that shard are evicted (never the ones being stored) — at least the number
//!   needed and, to amortise the scan, 1/64 of the shard. Pairing never fails for lack of room,
//!   except when one request alone holds more pairs than a shard (then [`StoreError::Full`]).
//! - **Per client** ([`MemoryConfig::max_pairs_per_client`]): when a client pairs beyond it, its
//!   least recently written pairs are dropped. Clients re-pair a broken pair under a fresh pair
//!   id, so without this bound a client's dead pairs would linger until idle expiry. The bound
//!   should leave room for several pools sharing one client id (browser tabs share the token):
//!   [`MemoryConfig::new`] uses [`POOLS_PER_CLIENT`] × `MAX_POOL_SIZE`.
//!
//! Reads do not refresh a pair (as in Redis, where only writes reset the TTL): a pair is "used"
//! when an exchange advanced it.
//!
//! Memory: about 72 bytes per pair in its client's vector plus, per client, a 40-byte map bucket
//! (the map is at most 7/8 full) and one heap allocation. Moved or freed memory is not scrubbed.

use std::collections::hash_map::{Entry, RandomState};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use pqrelay_protocol::{ClientId, PairId, ServerPair};

use super::{PairStore, StoreError, Stored, Version};

/// Number of shards of a large store (a power of two).
pub const SHARDS: usize = 64;
/// Below this many pairs per shard the store uses fewer shards (small stores evict exactly).
const MIN_PAIRS_PER_SHARD: usize = 4096;
/// Default capacity in pairs.
pub const DEFAULT_CAPACITY: usize = 1_000_000;
/// Default idle expiry of a pair (PROTOCOL.md §12).
pub const DEFAULT_IDLE: Duration = Duration::from_secs(24 * 60 * 60);
/// Pools of `MAX_POOL_SIZE` pairs one client id may hold at once (e.g. several browser tabs).
pub const POOLS_PER_CLIENT: usize = 4;
/// Longest time between two sweeps of a shard for expired pairs (while it is written to).
pub const SWEEP_INTERVAL_MAX: Duration = Duration::from_secs(60);
/// A full shard evicts at least this fraction (1/N) of its capacity at once.
const EVICT_FRACTION: usize = 64;

/// Bounds of a [`MemoryStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryConfig {
    /// Most pairs held (rounded up to a multiple of the shard count). At least 1.
    pub capacity: usize,
    /// A pair not written for this long is gone (one-second resolution; at least 1 s).
    pub idle: Duration,
    /// Most pairs of one client id; older ones are dropped first. At least 1.
    pub max_pairs_per_client: usize,
}

impl MemoryConfig {
    /// The defaults for a relay with this `MAX_POOL_SIZE`: [`DEFAULT_CAPACITY`], [`DEFAULT_IDLE`],
    /// and [`POOLS_PER_CLIENT`] × `max_pool_size` pairs per client.
    pub fn new(max_pool_size: usize) -> MemoryConfig {
        MemoryConfig {
            capacity: DEFAULT_CAPACITY,
            idle: DEFAULT_IDLE,
            max_pairs_per_client: max_pool_size.saturating_mul(POOLS_PER_CLIENT).max(1),
        }
    }
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig::new(crate::config::load::DEFAULT_MAX_POOL_SIZE)
    }
}

/// One stored pair.
struct Slot {
    pid: PairId,
    pair: ServerPair,
    version: u64,
    /// Seconds since the store's epoch at the last write.
    written: u32,
}

#[derive(Default)]
struct Shard {
    clients: HashMap<ClientId, Vec<Slot>>,
    /// Pairs held in this shard.
    pairs: usize,
    /// Time (store seconds) at or after which the next write sweeps expired pairs.
    next_sweep: u32,
}

/// The in-memory [`PairStore`]. See the [module docs](self) for bounds and eviction.
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    /// Picks a client's shard.
    hasher: RandomState,
    shard_capacity: usize,
    idle_secs: u32,
    sweep_secs: u32,
    max_per_client: usize,
    /// The last version handed out.
    writes: AtomicU64,
    epoch: Instant,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("shards", &self.shards.len())
            .field("shard_capacity", &self.shard_capacity)
            .field("idle_secs", &self.idle_secs)
            .field("max_per_client", &self.max_per_client)
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store with these bounds (zero values are raised to their minimum).
    pub fn new(config: &MemoryConfig) -> MemoryStore {
        let capacity = config.capacity.max(1);
        let shards = (capacity / MIN_PAIRS_PER_SHARD)
            .clamp(1, SHARDS)
            .next_power_of_two();
        let shards = shards.min(SHARDS);
        let idle_secs = u32::try_from(config.idle.as_secs())
            .unwrap_or(u32::MAX)
            .max(1);
        let sweep_secs = (idle_secs / 2).clamp(1, SWEEP_INTERVAL_MAX.as_secs() as u32);
        MemoryStore {
            shards: (0..shards).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            shard_capacity: capacity.div_ceil(shards),
            idle_secs,
            sweep_secs,
            max_per_client: config.max_pairs_per_client.max(1),
            writes: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Pairs held now, expired ones not yet dropped included.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().pairs).sum()
    }

    /// Whether the store holds no pair.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Most pairs this store holds (the configured capacity rounded up to the shard count).
    pub fn capacity(&self) -> usize {
        self.shard_capacity * self.shards.len()
    }

    fn shard(&self, client: &ClientId) -> &Mutex<Shard> {
        let hash = self.hasher.hash_one(client);
        // The shard count is a power of two: take the top bits (the map uses the low ones).
        let bits = self.shards.len().trailing_zeros();
        let index = if bits == 0 {
            0
        } else {
            (hash >> (64 - bits)) as usize
        };
        &self.shards[index]
    }

    /// Seconds since the store's epoch (saturating after 136 years).
    fn now(&self) -> u32 {
        u32::try_from(self.epoch.elapsed().as_secs()).unwrap_or(u32::MAX)
    }

    fn next_version(&self) -> u64 {
        self.writes.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn expired(&self, slot: &Slot, now: u32) -> bool {
        now.saturating_sub(slot.written) > self.idle_secs
    }

    /// The pair's slot if it is stored and live. An expired one is dropped on the way (a client
    /// left without pairs keeps an empty vector until the next sweep).
    fn live_slot<'a>(
        &self,
        shard: &'a mut Shard,
        client: &ClientId,
        pair: &PairId,
        now: u32,
    ) -> Option<&'a mut Slot> {
        let slots = shard.clients.get_mut(client)?;
        let i = slots.iter().position(|s| s.pid == *pair)?;
        if self.expired(&slots[i], now) {
            slots.swap_remove(i);
            shard.pairs -= 1;
            return None;
        }
        slots.get_mut(i)
    }

    /// Drops every expired pair of a shard, and clients left without pairs.
    fn sweep(&self, shard: &mut Shard, now: u32) {
        let mut removed = 0;
        shard.clients.retain(|_, slots| {
            let before = slots.len();
            slots.retain(|s| !self.expired(s, now));
            if slots.len() != before {
                removed += before - slots.len();
                slots.shrink_to_fit();
            }
            !slots.is_empty()
        });
        shard.pairs -= removed;
        shard.next_sweep = now.saturating_add(self.sweep_secs);
    }

    /// Makes the shard hold at most `shard_capacity` pairs: expired ones go first, then the least
    /// recently written ones, never a slot whose version is `keep_from` or newer.
    fn make_room(&self, shard: &mut Shard, now: u32, keep_from: u64) {
        if shard.pairs <= self.shard_capacity {
            return;
        }
        self.sweep(shard, now);
        let over = shard.pairs.saturating_sub(self.shard_capacity);
        if over == 0 {
            return;
        }
        // Order by (time of last write, version): the version breaks ties within a second in
        // write order, and makes the cut exact.
        let mut ages: Vec<(u32, u64)> = shard
            .clients
            .values()
            .flatten()
            .filter(|s| s.version < keep_from)
            .map(|s| (s.written, s.version))
            .collect();
        if ages.is_empty() {
            return;
        }
        let want = over
            .max(self.shard_capacity / EVICT_FRACTION)
            .min(ages.len());
        let (_, &mut newest_evicted, _) = ages.select_nth_unstable(want - 1);
        let mut removed = 0;
        shard.clients.retain(|_, slots| {
            let before = slots.len();
            slots.retain(|s| s.version >= keep_from || (s.written, s.version) > newest_evicted);
            if slots.len() != before {
                removed += before - slots.len();
                slots.shrink_to_fit();
            }
            !slots.is_empty()
        });
        shard.pairs -= removed;
    }
}

#[async_trait]
impl PairStore for MemoryStore {
    async fn insert(
        &self,
        client: &ClientId,
        pairs: &[(PairId, ServerPair)],
    ) -> Result<(), StoreError> {
        if pairs.len() > self.shard_capacity || pairs.len() > self.max_per_client {
            return Err(StoreError::Full);
        }
        if pairs.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let mut guard = self.shard(client).lock();
        let shard = &mut *guard;
        if now >= shard.next_sweep {
            self.sweep(shard, now);
        }
        // Versions handed out from here on belong to this request: they are newer than every
        // version already in this shard (all were assigned under this lock).
        let keep_from = self.writes.load(Ordering::Relaxed) + 1;
        let in_use = shard.clients.get(client).is_some_and(|slots| {
            slots
                .iter()
                .any(|s| !self.expired(s, now) && pairs.iter().any(|(pid, _)| *pid == s.pid))
        });
        if in_use {
            return Err(StoreError::PairIdInUse);
        }
        let slots = match shard.clients.entry(*client) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(Vec::with_capacity(pairs.len())),
        };
        let mut added: isize = 0;
        for (pid, pair) in pairs {
            let version = self.next_version();
            if let Some(slot) = slots.iter_mut().find(|s| s.pid == *pid) {
                slot.pair = pair.clone();
                slot.version = version;
                slot.written = now;
                continue;
            }
            if slots.len() >= self.max_per_client {
                // Drop the client's least recently written pair that is not part of this request.
                let oldest = slots
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.version < keep_from)
                    .min_by_key(|(_, s)| (s.written, s.version))
                    .map(|(i, _)| i);
                if let Some(i) = oldest {
                    slots.swap_remove(i);
                    added -= 1;
                }
            }
            if slots.len() == slots.capacity() {
                slots.reserve_exact(pairs.len().min(self.max_per_client - slots.len()).max(1));
            }
            slots.push(Slot {
                pid: *pid,
                pair: pair.clone(),
                version,
                written: now,
            });
            added += 1;
        }
        shard.pairs = shard.pairs.wrapping_add_signed(added);
        self.make_room(shard, now, keep_from);
        Ok(())
    }

    async fn load(&self, client: &ClientId, pair: &PairId) -> Result<Option<Stored>, StoreError> {
        let now = self.now();
        let mut guard = self.shard(client).lock();
        let shard = &mut *guard;
        let Some(slot) = self.live_slot(shard, client, pair, now) else {
            return Ok(None);
        };
        Ok(Some(Stored {
            pair: slot.pair.clone(),
            version: Version::Memory(slot.version),
            remembered: false,
        }))
    }

    async fn compare_and_set(
        &self,
        client: &ClientId,
        pair: &PairId,
        expected: &Version,
        next: &ServerPair,
    ) -> Result<bool, StoreError> {
        let Version::Memory(expected) = *expected else {
            return Ok(false);
        };
        let now = self.now();
        let mut guard = self.shard(client).lock();
        let shard = &mut *guard;
        let Some(slot) = self.live_slot(shard, client, pair, now) else {
            return Ok(false);
        };
        if slot.version != expected {
            return Ok(false);
        }
        slot.pair = next.clone();
        slot.version = self.next_version();
        slot.written = now;
        if now >= shard.next_sweep {
            self.sweep(shard, now);
        }
        Ok(true)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    fn pairs(&self) -> Option<usize> {
        Some(self.len())
    }
}
