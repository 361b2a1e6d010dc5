//! The running relay's shared state: its configuration, its sites, the pair store they
//! share and the pairing pool. Built once at startup; every request reads it.

use std::sync::Arc;

use crate::config::Config;
use crate::pairing_pool::PairingPool;
use crate::site::Sites;
use crate::store::{PairStore, StoreConfig};

/// Everything request handling needs, shared by all requests.
pub(crate) struct RelayState {
    /// The effective configuration (relay-wide settings; each site has its own copy of its
    /// site settings).
    pub config: Config,
    /// The sites.
    pub sites: Sites,
    /// Where pair states live (memory by default, Redis with `REDIS_URL`), un-namespaced.
    pub store: Arc<dyn PairStore>,
    /// Where pairing key exchanges run, `PAIRING_CONCURRENCY` at most.
    pub pairing_pool: PairingPool,
    /// Whether [`RelayState::store`] is shared with other relays, asked once: the memory
    /// store answers by counting its pairs under every shard's lock.
    shares_state: bool,
}

impl RelayState {
    /// Builds the state with the configured store (no server is contacted yet).
    pub(crate) fn new(config: Config) -> Result<RelayState, String> {
        let store = crate::store::from_config(&StoreConfig::from_config(&config))
            .map_err(|e| e.to_string())?;
        RelayState::with_store(config, store)
    }

    /// Builds the state around a given pair store.
    pub(crate) fn with_store(
        config: Config,
        store: Arc<dyn PairStore>,
    ) -> Result<RelayState, String> {
        let sites = Sites::build(&config, &store)?;
        let pairing_pool = PairingPool::new(config.limits.pairing_concurrency);
        Ok(RelayState {
            shares_state: store.pairs().is_none(),
            pairing_pool,
            config,
            sites,
            store,
        })
    }

    /// Whether pair state is shared with other relays (Redis), as opposed to this process's
    /// memory.
    pub(crate) fn shares_state(&self) -> bool {
        self.shares_state
    }
}
