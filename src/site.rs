//! Sites: what serves a request's `Host`. Without `DOMAIN_MAP` there is one site, the relay's
//! top-level settings; with it, one [`Site`] per host, each with its own client-id secrets,
//! upstreams, routes and headers, and a view of the pair store namespaced by host
//! ([`NamespacedStore`]) so that two sites never see each other's pairs.

use std::collections::HashMap;
use std::sync::Arc;

use pqrelay_protocol::{ClientId, ClientIdSigner, ClientIdToken, RelayKeySet};

use crate::config::{Config, SiteConfig};
use crate::store::{NamespacedStore, PairStore};
use crate::upstream::Upstreams;

/// Issues a fresh client id (OS randomness) signed with the site's current secret.
pub(crate) fn issue_client_id(signer: &ClientIdSigner) -> Result<ClientIdToken, getrandom::Error> {
    let mut id = [0u8; 16];
    getrandom::getrandom(&mut id)?;
    Ok(signer.issue(ClientId(id)))
}

/// One site's state.
pub(crate) struct Site {
    /// The `DOMAIN_MAP` host; `None` for the relay's top-level site.
    pub host: Option<Arc<str>>,
    /// The site's settings.
    pub config: SiteConfig,
    /// Signs and verifies its client ids (current secret, then the previous ones).
    pub signer: ClientIdSigner,
    /// Its relay keys, current first (PROTOCOL.md §4).
    pub relay_keys: RelayKeySet,
    /// Its upstream balancer.
    pub upstreams: Upstreams,
    /// Its pair store (namespaced by host for `DOMAIN_MAP` sites).
    pub store: Arc<dyn PairStore>,
}

impl Site {
    /// Builds a site: resolves its upstreams (blocking DNS, once).
    pub(crate) fn new(
        host: Option<&str>,
        config: SiteConfig,
        store: Arc<dyn PairStore>,
    ) -> Result<Site, String> {
        let upstreams = Upstreams::resolve(&config.upstream)?;
        let relay_keys = config
            .relay_key_set()
            .0
            .map_err(|e| format!("relay keys: {e}"))?;
        let previous = config.client_id_previous_secrets.iter().map(|s| s.expose());
        let signer = ClientIdSigner::new(config.client_id_secret.expose().as_bytes(), previous);
        Ok(Site {
            host: host.map(Arc::from),
            signer,
            relay_keys,
            config,
            upstreams,
            store,
        })
    }
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Site({})", self.host.as_deref().unwrap_or("*"))
    }
}

/// The sites of a relay: the top-level one and those of `DOMAIN_MAP`.
pub(crate) struct Sites {
    /// The top-level site (every request when there is no `DOMAIN_MAP`).
    pub top: Arc<Site>,
    by_host: Option<HashMap<String, Arc<Site>>>,
}

/// Which site serves a request.
pub(crate) enum Selection {
    /// The site of the request's host (or the top-level site without `DOMAIN_MAP`).
    Site(Arc<Site>),
    /// `DOMAIN_MAP` is set and the host is not in it (421).
    Unknown,
}

impl Sites {
    /// Builds every site around one shared `store`.
    pub(crate) fn build(config: &Config, store: &Arc<dyn PairStore>) -> Result<Sites, String> {
        let top = Arc::new(Site::new(None, config.site.clone(), store.clone())?);
        let by_host = match &config.domain_map {
            None => None,
            Some(map) => {
                let mut by_host = HashMap::new();
                for (host, site) in map {
                    let store: Arc<dyn PairStore> =
                        Arc::new(NamespacedStore::new(store.clone(), host));
                    let site = Site::new(Some(host), site.clone(), store)
                        .map_err(|e| format!("domainMap.{host}: {e}"))?;
                    by_host.insert(host.clone(), Arc::new(site));
                }
                Some(by_host)
            }
        };
        Ok(Sites { top, by_host })
    }

    /// The site for a request whose host (normalised with
    /// [`crate::config::values::normalize_host`]) `host` gives; called only with `DOMAIN_MAP`
    /// (without it every request is the top-level site's).
    pub(crate) fn select(&self, host: impl FnOnce() -> Option<String>) -> Selection {
        let Some(by_host) = &self.by_host else {
            return Selection::Site(self.top.clone());
        };
        match host().and_then(|h| by_host.get(&h)) {
            Some(site) => Selection::Site(site.clone()),
            None => Selection::Unknown,
        }
    }

    /// Every site, the top-level one first, then the hosts sorted.
    pub(crate) fn all(&self) -> Vec<&Arc<Site>> {
        let mut hosts: Vec<&Arc<Site>> = self.by_host.iter().flat_map(|m| m.values()).collect();
        hosts.sort_by(|a, b| a.host.cmp(&b.host));
        std::iter::once(&self.top).chain(hosts).collect()
    }
}
