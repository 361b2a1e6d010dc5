//! Pair state stores (PROTOCOL.md §10): where the relay keeps each pair's `(e, ck_e)`.
//!
//! One trait, [`PairStore`], with two implementations: `memory` (the default: bounded, idle
//! expiry, one process) and `redis` (when `REDIS_URL` is set: shared by every relay behind a load
//! balancer, sealed at rest). The exchange reads a pair with [`PairStore::load`], ratchets and
//! opens the request's header block, then commits with [`PairStore::compare_and_set`]; losing
//! the compare-and-set means another request used the pair concurrently (564).

mod measured;
pub mod memory;
mod namespaced;
pub mod outbound;
pub mod outbound_memory;
pub mod outbound_redis;
pub mod redis;
mod written;

use std::sync::Arc;

use async_trait::async_trait;
use pqrelay_protocol::{ClientId, PairId, ServerPair};

pub use measured::MeasuredStore;
pub use memory::{MemoryConfig, MemoryStore};
pub use namespaced::NamespacedStore;
pub use redis::{RedisConfig, RedisStore};

use crate::config::Config;
use crate::error::ErrorKind;

/// A pair's state as read from a store, with the version a later compare-and-set checks.
#[derive(Debug)]
pub struct Stored {
    /// The state `(e, ck_e)`.
    pub pair: ServerPair,
    /// Opaque version of exactly this stored value.
    pub version: Version,
    /// Answered by [`PairStore::load_recent`] from this relay's memory of its own last write
    /// (Redis only): the shared store may have moved on since, so an exchange that fails on it
    /// is tried once more on a fresh [`PairStore::load`] (see [`redis`]).
    pub remembered: bool,
}

/// What a compare-and-set compares: it changes on every write of a pair, including re-pairing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Version {
    /// In memory: a number unique to each write.
    Memory(u64),
    /// In Redis: the sealed blob that was read (73 bytes; a fresh salt per write).
    Sealed(Vec<u8>),
}

/// Why a store operation failed. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be reached or answered an error (503 `state_store_unavailable`).
    Unavailable(String),
    /// A stored blob did not open under any configured secret (569 `repair_required`).
    Unreadable,
    /// The memory store is full and nothing could be evicted (503).
    Full,
    /// A pair id of a pairing request is held already: nothing was stored (400
    /// `invalid_pairing`; a pair is never replaced).
    PairIdInUse,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Unavailable(why) => write!(f, "state store unavailable: {why}"),
            StoreError::Unreadable => f.write_str("stored pair state does not open"),
            StoreError::Full => f.write_str("state store full"),
            StoreError::PairIdInUse => f.write_str("a pair id is in use"),
        }
    }
}

impl std::error::Error for StoreError {}

impl StoreError {
    /// The error row a refusal caused by this failure answers with: unreachable or full → 503
    /// `state_store_unavailable`, unreadable state → 569 `repair_required`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Unreadable => ErrorKind::REPAIR_REQUIRED,
            StoreError::PairIdInUse => ErrorKind::INVALID_PAIRING,
            _ => ErrorKind::STATE_STORE_UNAVAILABLE,
        }
    }
}

/// Where pair states live. Implementations are cheap to share (`Arc<dyn PairStore>`).
#[async_trait]
pub trait PairStore: Send + Sync {
    /// Stores freshly paired states, all or nothing: [`StoreError::PairIdInUse`] (nothing
    /// stored) when one of the pair ids is held already.
    async fn insert(
        &self,
        client: &ClientId,
        pairs: &[(PairId, ServerPair)],
    ) -> Result<(), StoreError>;

    /// Reads one pair; `Ok(None)` when there is none (expired, never paired: 563).
    async fn load(&self, client: &ClientId, pair: &PairId) -> Result<Option<Stored>, StoreError>;

    /// Like [`PairStore::load`], but a shared store may answer from this relay's memory of its
    /// own last write of the pair ([`Stored::remembered`]) instead of asking the server; only
    /// a [`PairStore::compare_and_set`] tells whether it is still current. The exchange reads
    /// through this.
    async fn load_recent(
        &self,
        client: &ClientId,
        pair: &PairId,
    ) -> Result<Option<Stored>, StoreError> {
        self.load(client, pair).await
    }

    /// Replaces the pair's state with `next` only if it is still exactly `expected`, refreshing
    /// its idle expiry. `Ok(false)` when another write came first (or the pair is gone).
    async fn compare_and_set(
        &self,
        client: &ClientId,
        pair: &PairId,
        expected: &Version,
        next: &ServerPair,
    ) -> Result<bool, StoreError>;

    /// Checks that the store answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// The relay key fingerprints last announced for `site` by a relay sharing this store,
    /// after announcing `ours` when given (so that relays with different keys on one Redis say
    /// so). `Ok(None)` when nothing was announced, and always for a store no other relay sees.
    async fn relay_keys(
        &self,
        site: &str,
        ours: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        let _ = (site, ours);
        Ok(None)
    }

    /// A short name for logs and metrics (`memory`, `redis`, `redis-cluster`).
    fn kind(&self) -> &'static str;

    /// Pairs held now, when the store can tell cheaply (the memory store); `None` otherwise
    /// (Redis: counting keys would scan the server).
    fn pairs(&self) -> Option<usize> {
        None
    }
}

/// Which store to build and its settings; see [`from_config`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreConfig {
    /// Bounds of the memory store (used when no Redis is configured).
    pub memory: MemoryConfig,
    /// Redis settings: when set, pairs live in Redis and `memory` is unused.
    pub redis: Option<RedisConfig>,
}

impl StoreConfig {
    /// A memory store with the defaults for this `MAX_POOL_SIZE` (see [`MemoryConfig::new`]).
    pub fn new(max_pool_size: usize) -> StoreConfig {
        StoreConfig {
            memory: MemoryConfig::new(max_pool_size),
            redis: None,
        }
    }

    /// The same, with pairs in Redis.
    pub fn with_redis(mut self, redis: RedisConfig) -> StoreConfig {
        self.redis = Some(redis);
        self
    }

    /// The store a configuration asks for: Redis when `REDIS_URL` is set (pair state sealed
    /// with [`Config::state_secret`]), memory otherwise.
    pub fn from_config(config: &Config) -> StoreConfig {
        let base = StoreConfig::new(config.max_pool_size);
        let Some(url) = &config.redis_url else {
            return base;
        };
        let secret = config.state_secret().expose().as_bytes();
        let mut redis = RedisConfig::new(url.expose(), config.redis_cluster, secret, &[]);
        redis.timeout = config.redis_timeout;
        redis.max_pairs_per_client = memory::POOLS_PER_CLIENT * config.max_pool_size;
        redis.ca_file = config.redis_ca_file.clone();
        base.with_redis(redis)
    }
}

/// A store configuration that cannot work (the message names the setting, never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfigError(pub String);

impl std::fmt::Display for StoreConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreConfigError {}

/// Builds the configured store: Redis when [`StoreConfig::redis`] is set, else memory, inside a
/// [`MeasuredStore`] (metrics, recorded once enabled). Never
/// contacts a server (Redis is connected on first use, and again whenever needed), so the relay
/// starts while Redis is down. Call it from anywhere (no runtime needed).
pub fn from_config(config: &StoreConfig) -> Result<Arc<dyn PairStore>, StoreConfigError> {
    let store: Arc<dyn PairStore> = match &config.redis {
        Some(redis) => Arc::new(RedisStore::new(redis)?),
        None => Arc::new(MemoryStore::new(&config.memory)),
    };
    Ok(Arc::new(MeasuredStore::new(store)))
}
