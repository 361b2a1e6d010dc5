//! Shared state of the running relay.

use std::sync::Arc;

use crate::client_id::ClientIdSigner;
use crate::config::Config;
use crate::store::{PairStore, RedisConfig, StoreConfig};
use crate::upstream::Upstreams;

/// Everything request handling needs, shared by all requests.
pub struct RelayState {
    /// The effective configuration.
    pub config: Config,
    /// Issues and verifies client ids.
    pub signer: ClientIdSigner,
    /// The upstream balancer.
    pub upstreams: Upstreams,
    /// Where pair states live (memory by default, Redis with `REDIS_URL`).
    pub store: Arc<dyn PairStore>,
    /// The `DOMAIN_MAP` sites, each a state of its own; `None` without a domain map.
    pub sites: Option<crate::domains::Sites>,
    /// Outbound mode (`OUTBOUND_TOKEN`); `None` when off.
    pub outbound: Option<crate::outbound::Outbound>,
}

impl RelayState {
    /// Builds the state: the signer from the configured secrets, the upstreams resolved, the
    /// pair store built from the configuration (no server is contacted yet).
    pub fn new(config: Config) -> Result<RelayState, String> {
        let store = crate::store::from_config(&store_config(&config)).map_err(|e| e.to_string())?;
        RelayState::with_store(config, store)
    }

    /// Builds the state around a given pair store.
    pub fn with_store(config: Config, store: Arc<dyn PairStore>) -> Result<RelayState, String> {
        let signer = ClientIdSigner::new(
            config.client_id_secret.expose().as_bytes(),
            config
                .client_id_previous_secrets
                .iter()
                .map(|s| s.expose().as_bytes().to_vec())
                .collect(),
        );
        let upstreams = crate::upstream::Upstreams::resolve(&config.upstream)?;
        let sites = crate::domains::Sites::build(&config, &store)?;
        let outbound = crate::outbound::Outbound::new(&config)?;
        Ok(RelayState {
            config,
            signer,
            upstreams,
            store,
            sites,
            outbound,
        })
    }
}

/// The store settings of a configuration: Redis when `REDIS_URL` is set (pair state sealed
/// with `STATE_SECRET`, by default `CLIENT_ID_SECRET`), memory otherwise.
pub fn store_config(config: &Config) -> StoreConfig {
    let base = StoreConfig::new(config.max_pool_size);
    let Some(url) = &config.redis_url else {
        return base;
    };
    let secret = config
        .state_secret
        .as_ref()
        .unwrap_or(&config.client_id_secret);
    let mut redis = RedisConfig::new(
        url.expose(),
        config.redis_cluster,
        secret.expose().as_bytes(),
        &[],
    );
    if let Some(ms) = config.redis_timeout_ms {
        redis.timeout = std::time::Duration::from_millis(ms);
    }
    redis.ca_file = config.redis_ca_file.clone();
    base.with_redis(redis)
}
