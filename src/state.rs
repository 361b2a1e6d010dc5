//! Shared state of the running relay.

use crate::client_id::ClientIdSigner;
use crate::config::Config;
use crate::upstream::Upstreams;

/// Everything request handling needs, shared by all requests.
pub struct RelayState {
    /// The effective configuration.
    pub config: Config,
    /// Issues and verifies client ids.
    pub signer: ClientIdSigner,
    /// The upstream balancer.
    pub upstreams: Upstreams,
}

impl RelayState {
    /// Builds the state: the signer from the configured secrets, the upstreams resolved.
    pub fn new(config: Config) -> Result<RelayState, String> {
        let signer = ClientIdSigner::new(
            config.client_id_secret.expose().as_bytes(),
            config
                .client_id_previous_secrets
                .iter()
                .map(|s| s.expose().as_bytes().to_vec())
                .collect(),
        );
        let upstreams = crate::upstream::Upstreams::resolve(&config.upstream)?;
        Ok(RelayState {
            config,
            signer,
            upstreams,
        })
    }
}
