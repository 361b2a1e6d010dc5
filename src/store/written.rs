//! What this relay wrote last to a shared store, per pair: the sealed blob and the state in it.
//!
//! The Redis store answers a [`super::PairStore::load`] from here when it can, so an exchange
//! on a pair this relay advanced last costs one Redis round trip (the compare-and-set) instead
//! of two. The entry is taken out when read: a compare-and-set that wins puts the next one
//! back, one that loses leaves nothing, so the next read goes to Redis. Whether Redis still
//! holds the blob is always decided by the compare-and-set script, never by this memory.
//!
//! Bounded: [`SHARDS`] shards of [`SHARD_CAPACITY`] entries (about 190 bytes each); a full
//! shard is emptied (its pairs are then read from Redis once more).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;

use parking_lot::Mutex;
use pqrelay_protocol::state::BLOB_SIZE;
use pqrelay_protocol::{ClientId, PairId, ServerPair};

/// Shards (a power of two).
pub(super) const SHARDS: usize = 16;
/// Entries per shard.
pub(super) const SHARD_CAPACITY: usize = 4096;

/// One remembered write.
pub(super) struct Entry {
    /// The blob as written (it is the pair's version).
    pub(super) blob: [u8; BLOB_SIZE],
    /// The state sealed in it.
    pub(super) pair: ServerPair,
}

/// One shard: the remembered writes of some pairs.
type Shard = Mutex<HashMap<(ClientId, PairId), Entry>>;

/// See the [module docs](self).
pub(super) struct Written {
    shards: Box<[Shard]>,
    hasher: RandomState,
}

impl Written {
    /// An empty memory.
    pub(super) fn new() -> Written {
        Written {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, client: &ClientId, pair: &PairId) -> &Shard {
        let i = self.hasher.hash_one((client, pair)) as usize & (SHARDS - 1);
        &self.shards[i]
    }

    /// Remembers that `blob` (holding `pair`) is what this relay wrote last.
    pub(super) fn put(&self, client: &ClientId, pid: &PairId, entry: Entry) {
        let mut shard = self.shard(client, pid).lock();
        if shard.len() >= SHARD_CAPACITY && !shard.contains_key(&(*client, *pid)) {
            shard.clear();
        }
        shard.insert((*client, *pid), entry);
    }

    /// Takes the remembered write of a pair out, if any.
    pub(super) fn take(&self, client: &ClientId, pid: &PairId) -> Option<Entry> {
        self.shard(client, pid).lock().remove(&(*client, *pid))
    }
}

#[cfg(test)]
mod tests {
    use pqrelay_protocol::ChainKey;

    use super::*;

    fn entry(fill: u8) -> Entry {
        Entry {
            blob: [fill; BLOB_SIZE],
            pair: ServerPair::from_parts(
                1,
                ChainKey::from_bytes([fill; 32]),
                pqrelay_protocol::Kid([0; 8]),
            ),
        }
    }

    #[test]
    fn written_is_taken_once() {
        let w = Written::new();
        let (c, p) = (ClientId([1; 16]), PairId([2; 16]));
        assert!(w.take(&c, &p).is_none());
        w.put(&c, &p, entry(7));
        assert_eq!(w.take(&c, &p).map(|e| e.blob), Some([7; BLOB_SIZE]));
        assert!(w.take(&c, &p).is_none());
    }

    #[test]
    fn written_stays_bounded() {
        let w = Written::new();
        let c = ClientId([1; 16]);
        for n in 0..(SHARDS * SHARD_CAPACITY * 2) as u32 {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&n.to_le_bytes());
            w.put(&c, &PairId(id), entry(1));
        }
        let held: usize = w.shards.iter().map(|s| s.lock().len()).sum();
        assert!(held <= SHARDS * SHARD_CAPACITY, "{held}");
    }
}
