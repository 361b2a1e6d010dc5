//! Configuration as plain data, at the bottom of the relay: the settings
//! ([`fields`]: one table for environment variables, YAML keys, `domainMap` entries and the
//! docs), reading them ([`load`], through `sources` and `loader`), their value types ([`values`]), the edge [`limits`],
//! Pingora's server settings ([`server`]) and showing them ([`show`]). Nothing here touches a
//! request.
//!
//! Names follow the vendor guide: environment variables in `UPPER_SNAKE`, YAML keys in
//! `camelCase` (`upstream`, `clientIdSecret`, `corsOrigins`, `redisURL`, ...). The environment
//! overrides the file.

pub mod fields;
pub mod limits;
pub mod load;
mod loader;
mod server;
pub mod show;
mod sources;
pub mod values;

use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use pingora_core::server::configuration::ServerConf;

pub use limits::Limits;
pub use load::{load, DEFAULT_PORT};
pub use loader::MIN_SECRET_LEN;
pub use sources::{ConfigErrors, ConfigProblem, Sources};
pub use values::{LogFormat, RemoteRelay, RoutePattern, Secret, TrustedProxies, UpstreamSpec};

/// The settings of one site: the whole relay without `DOMAIN_MAP`, else one host of it.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    /// Upstreams, round-robin balanced when more than one.
    pub upstream: Vec<UpstreamSpec>,
    /// Origins allowed to make cross-origin requests, normalised (`scheme://host[:port]`).
    pub cors_origins: Vec<String>,
    /// Signs client ids.
    pub client_id_secret: Secret,
    /// Secrets still accepted for client ids (rotation).
    pub client_id_previous_secrets: Vec<Secret>,
    /// Routes proxied untouched.
    pub pass_through_routes: Vec<RoutePattern>,
    /// When set, only these routes are MTE routes; everything else not passed through 404s.
    pub mte_routes: Option<Vec<RoutePattern>>,
    /// Headers added to every upstream request and every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `RELAY_KEYS`: the key values (files already read), current first; empty = derived
    /// from the client-id secrets (PROTOCOL.md §4).
    pub relay_keys: Vec<Secret>,
}

impl Default for SiteConfig {
    fn default() -> Self {
        SiteConfig {
            upstream: Vec::new(),
            cors_origins: Vec::new(),
            client_id_secret: Secret::new(String::new()),
            client_id_previous_secrets: Vec::new(),
            pass_through_routes: Vec::new(),
            mte_routes: None,
            headers: Vec::new(),
            relay_keys: Vec::new(),
        }
    }
}

impl SiteConfig {
    /// The site's relay keys (PROTOCOL.md §4): `RELAY_KEYS`, else derived from the client-id
    /// secrets (current, then previous); `true` when derived.
    pub fn relay_key_set(
        &self,
    ) -> (
        Result<pqrelay_protocol::RelayKeySet, pqrelay_protocol::RelayKeyError>,
        bool,
    ) {
        use pqrelay_protocol::RelayKeySet;
        if self.relay_keys.is_empty() {
            let secrets = std::iter::once(&self.client_id_secret)
                .chain(&self.client_id_previous_secrets)
                .map(|s| s.expose().as_bytes());
            (RelayKeySet::from_client_id_secrets(secrets), true)
        } else {
            let values = self.relay_keys.iter().map(Secret::expose);
            (RelayKeySet::from_values(values), false)
        }
    }
}

/// The relay's effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The top-level site (every request without `DOMAIN_MAP`).
    pub site: SiteConfig,
    /// `DOMAIN_MAP`: one site per host (normalised), in the order given; `None` = one site.
    pub domain_map: Option<Vec<(String, SiteConfig)>>,
    /// AWS region (informational; pqrelay calls no AWS API).
    pub aws_region: Option<String>,
    /// Redis URL for shared state; `None` means in-memory state.
    pub redis_url: Option<Secret>,
    /// Redis Cluster mode: the URL names one node, the others are discovered.
    pub redis_cluster: bool,
    /// Time limit of one Redis operation.
    pub redis_timeout: Duration,
    /// PEM file of CA certificates for `rediss://`.
    pub redis_ca_file: Option<PathBuf>,
    /// Seals pair state at rest in Redis; `None` = `CLIENT_ID_SECRET`.
    pub state_secret: Option<Secret>,
    /// Address to listen on.
    pub host: String,
    /// Port to listen on.
    pub port: u16,
    /// Port of the Prometheus metrics listener (on `host`); `None` = off.
    pub metrics_port: Option<u16>,
    /// Debug logging.
    pub debug: bool,
    /// Methods allowed cross-origin, always including OPTIONS and HEAD.
    pub cors_methods: Vec<String>,
    /// Pairs per pairing request (the vendor's encoder pool size).
    pub max_pool_size: usize,
    /// Log line format.
    pub log_format: LogFormat,
    /// PEM file of CA certificates trusted for https upstreams instead of the system roots.
    pub upstream_ca_file: Option<PathBuf>,
    /// Demo mode (serves the demo page).
    pub demo: bool,
    /// `OUTBOUND_TOKEN`: enables outbound mode; `None` = off.
    pub outbound_token: Option<Secret>,
    /// `OUTBOUND_UPSTREAMS`: the remote relays outbound requests may go to, with their pins.
    pub outbound_upstreams: Vec<RemoteRelay>,
    /// `PLAIN_HEADERS`: plain request headers forwarded on MTE routes (lowercase names).
    pub plain_headers: Vec<HeaderName>,
    /// Edge limits: sizes, timeouts, pairing rates.
    pub limits: Limits,
    /// `TRUSTED_PROXIES`: whose `X-Forwarded-For` / `X-Forwarded-Proto` are believed.
    pub trusted_proxies: TrustedProxies,
    /// `PROXY_PROTOCOL`: every connection starts with a PROXY protocol header.
    pub proxy_protocol: bool,
    /// `PUBLIC_HOSTS`: request hosts (normalised) forwarded in `X-Forwarded-Host`.
    pub public_hosts: Vec<String>,
}

impl Config {
    /// The secret sealing shared state (`STATE_SECRET`, else the top-level
    /// `CLIENT_ID_SECRET`).
    pub fn state_secret(&self) -> &Secret {
        self.state_secret
            .as_ref()
            .unwrap_or(&self.site.client_id_secret)
    }
}

/// A loaded configuration: ours, Pingora's, and non-fatal warnings.
#[derive(Debug)]
pub struct Loaded {
    /// The relay's settings.
    pub config: Config,
    /// Pingora's server settings.
    pub server_conf: ServerConf,
    /// Warnings to log at startup (e.g. a short secret).
    pub warnings: Vec<String>,
    /// The config file used, if any.
    pub file: Option<PathBuf>,
}
