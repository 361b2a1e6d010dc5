//! Multi-domain: one relay serving several sites, chosen by the request's `Host` (`DOMAIN_MAP`).
//!
//! # Configuration
//!
//! `DOMAIN_MAP` (environment, JSON) or `domainMap:` (YAML) maps a host name to a site:
//!
//! ```yaml
//! domainMap:
//!   shop.example.com:
//!     upstream: http://10.0.1.10:3000
//!     corsOrigins: [https://shop.example.com]
//!     clientIdSecret: <32+ random characters>
//!     clientIdPreviousSecrets: []     # optional
//!     passThroughRoutes: [/health]    # optional; default: the top-level setting
//!     mteRoutes: [/api/*]             # optional; default: the top-level setting
//!     headers: {x-site: shop}         # optional; default: the top-level setting
//! ```
//!
//! Keys are host names without port, matched case-insensitively (a trailing dot is ignored).
//! Every site needs its own `upstream`, `corsOrigins` and `clientIdSecret`; secrets must differ
//! between sites. Everything not listed here (store, limits, logging, pool size, CORS methods)
//! is the relay's top-level setting.
//!
//! # Separation
//!
//! Each [`Site`] is a complete [`RelayState`] built from the top-level configuration with the
//! site's values laid over it, so per-request code works unchanged on `&RelayState`:
//!
//! - client ids are signed with the site's secret, so a client id of one site is refused on
//!   another (566);
//! - pair state goes through a [`NamespacedStore`]: the store key of a client id is
//!   `HMAC-SHA256(key = "pqrelay/1 domain" || host, msg = id)[..16]`, so two sites sharing one
//!   memory store or one Redis never see each other's pairs, even with equal raw ids;
//! - upstreams, CORS origins, routes and `HEADERS` are the site's.
//!
//! A request whose `Host` is not in the map is answered `421 misdirected_request`
//! ([`misdirected`]). Without `DOMAIN_MAP` nothing changes: [`select`] answers
//! [`Selection::Default`].

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderName, HeaderValue};
use pingora_http::RequestHeader;
use pingora_proxy::Session;
use pqrelay_protocol::{ClientId, PairId, ServerPair};
use serde_yaml::Value;
use sha2::Sha256;

use crate::config::{Config, Secret};
use crate::ctx::RequestCtx;
use crate::error::ErrorKind;
use crate::routes::RoutePattern;
use crate::state::RelayState;
use crate::store::{PairStore, StoreError, Stored, Version};
use crate::upstream::{parse_upstreams, UpstreamSpec};

/// A site: the relay's state for one host of `DOMAIN_MAP`.
pub type Site = RelayState;

/// A site chosen for a request (cheap to clone): its host and its state.
#[derive(Clone)]
pub struct SiteRef {
    /// The host (the `DOMAIN_MAP` key, normalised).
    pub host: Arc<str>,
    /// The site's state.
    pub state: Arc<Site>,
}

impl std::fmt::Debug for SiteRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SiteRef({})", self.host)
    }
}

/// The keys a `DOMAIN_MAP` entry may have.
const ENTRY_KEYS: &[&str] = &[
    "upstream",
    "corsOrigins",
    "clientIdSecret",
    "clientIdPreviousSecrets",
    "passThroughRoutes",
    "mteRoutes",
    "headers",
];

/// One `DOMAIN_MAP` entry, validated. Absent optional settings fall back to the top level.
#[derive(Debug, Clone)]
pub struct DomainConfig {
    /// The host name (lowercase, no port, no trailing dot).
    pub host: String,
    /// The site's upstreams.
    pub upstream: Vec<UpstreamSpec>,
    /// The site's CORS origins (normalised).
    pub cors_origins: Vec<String>,
    /// Signs the site's client ids.
    pub client_id_secret: Secret,
    /// Secrets still accepted for the site's client ids.
    pub client_id_previous_secrets: Vec<Secret>,
    /// `passThroughRoutes`; `None` = the top-level setting.
    pub pass_through_routes: Option<Vec<RoutePattern>>,
    /// `mteRoutes`; `None` = the top-level setting.
    pub mte_routes: Option<Vec<RoutePattern>>,
    /// `headers`; `None` = the top-level setting.
    pub headers: Option<Vec<(HeaderName, HeaderValue)>>,
}

impl DomainConfig {
    /// The site's effective configuration: `global` with this entry's values laid over it
    /// (and no domain map of its own).
    pub fn apply(&self, global: &Config) -> Config {
        let mut c = global.clone();
        c.domain_map = None;
        c.outbound_token = None;
        c.upstream = self.upstream.clone();
        c.cors_origins = self.cors_origins.clone();
        c.client_id_secret = self.client_id_secret.clone();
        c.client_id_previous_secrets = self.client_id_previous_secrets.clone();
        if let Some(r) = &self.pass_through_routes {
            c.pass_through_routes = r.clone();
        }
        if let Some(r) = &self.mte_routes {
            c.mte_routes = Some(r.clone());
        }
        if let Some(h) = &self.headers {
            c.headers = h.clone();
        }
        c
    }
}

/// A problem in `DOMAIN_MAP`: the path (`<host>.<field>`) and what is wrong.
pub type DomainProblem = (String, String);

/// Parses and validates a `DOMAIN_MAP` value (the YAML mapping, or the environment's JSON
/// parsed as YAML). Every problem names the domain and the field.
pub fn parse(value: &Value) -> Result<Vec<DomainConfig>, Vec<DomainProblem>> {
    let mut problems: Vec<DomainProblem> = Vec::new();
    let Value::Mapping(map) = value else {
        return Err(vec![(
            String::new(),
            "must be a mapping of host names to site settings".into(),
        )]);
    };
    if map.is_empty() {
        return Err(vec![(String::new(), "must name at least one host".into())]);
    }
    let mut out: Vec<DomainConfig> = Vec::new();
    for (k, v) in map {
        let Some(raw_host) = k.as_str() else {
            problems.push((format!("{k:?}"), "host names must be strings".into()));
            continue;
        };
        let host = match normalize_host(raw_host) {
            Some(h) => h,
            None => {
                problems.push((
                    raw_host.to_owned(),
                    "is not a host name (write it without scheme, port or path)".into(),
                ));
                continue;
            }
        };
        if out.iter().any(|d| d.host == host) {
            problems.push((host.clone(), "is listed twice".into()));
            continue;
        }
        let mut p = |field: &str, msg: String| problems.push((format!("{host}.{field}"), msg));
        let Value::Mapping(entry) = v else {
            p("", "must be a mapping of settings".into());
            continue;
        };
        for key in entry.keys() {
            let name = key.as_str().unwrap_or_default();
            if !ENTRY_KEYS.contains(&name) {
                p(
                    name,
                    format!("unknown key (a site takes {})", ENTRY_KEYS.join(", ")),
                );
            }
        }
        let upstream = match entry.get("upstream").and_then(text) {
            Some(s) => parse_upstreams(&s).map_err(|e| p("upstream", e)).ok(),
            None => {
                p("upstream", "is required".into());
                None
            }
        };
        let cors_origins = match entry.get("corsOrigins").map(list) {
            Some(Ok(items)) if !items.is_empty() => {
                let mut v = Vec::new();
                for item in items {
                    match crate::config::normalize_origin(&item) {
                        Ok(o) => v.push(o),
                        Err(e) => p("corsOrigins", format!("{item:?}: {e}")),
                    }
                }
                Some(v)
            }
            Some(Ok(_)) | None => {
                p("corsOrigins", "is required (at least one origin)".into());
                None
            }
            Some(Err(e)) => {
                p("corsOrigins", e.into());
                None
            }
        };
        let secret = match entry.get("clientIdSecret").and_then(text) {
            Some(s) if s.chars().count() >= crate::config::MIN_SECRET_LEN => Some(Secret::new(s)),
            Some(_) => {
                p(
                    "clientIdSecret",
                    format!(
                        "must be at least {} characters",
                        crate::config::MIN_SECRET_LEN
                    ),
                );
                None
            }
            None => {
                p("clientIdSecret", "is required".into());
                None
            }
        };
        let previous = match entry.get("clientIdPreviousSecrets").map(list) {
            None => Vec::new(),
            Some(Ok(v)) => v.into_iter().map(Secret::new).collect(),
            Some(Err(e)) => {
                p("clientIdPreviousSecrets", e.into());
                Vec::new()
            }
        };
        let mut routes = |field: &str| -> Option<Vec<RoutePattern>> {
            let items = match entry.get(field).map(list)? {
                Ok(v) => v,
                Err(e) => {
                    p(field, e.into());
                    return None;
                }
            };
            let mut v = Vec::new();
            for item in items {
                match RoutePattern::parse(&item) {
                    Ok(r) => v.push(r),
                    Err(e) => p(field, format!("{item:?}: {e}")),
                }
            }
            Some(v)
        };
        let pass_through_routes = routes("passThroughRoutes");
        let mte_routes = routes("mteRoutes");
        let headers = entry.get("headers").map(|h| {
            parse_headers(h).unwrap_or_else(|e| {
                p("headers", e);
                Vec::new()
            })
        });
        if let (Some(upstream), Some(cors_origins), Some(client_id_secret)) =
            (upstream, cors_origins, secret)
        {
            out.push(DomainConfig {
                host,
                upstream,
                cors_origins,
                client_id_secret,
                client_id_previous_secrets: previous,
                pass_through_routes,
                mte_routes,
                headers,
            });
        }
    }
    for (i, a) in out.iter().enumerate() {
        if let Some(b) = out[..i]
            .iter()
            .find(|b| b.client_id_secret == a.client_id_secret)
        {
            problems.push((
                format!("{}.clientIdSecret", a.host),
                format!(
                    "must differ from the secret of {} (client ids must not be valid on both)",
                    b.host
                ),
            ));
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn list(v: &Value) -> Result<Vec<String>, &'static str> {
    match v {
        Value::String(s) => Ok(s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()),
        Value::Sequence(items) => items
            .iter()
            .map(|i| text(i).ok_or("must be a list of strings"))
            .collect(),
        _ => Err("must be a list of strings (or one comma-separated string)"),
    }
}

fn parse_headers(v: &Value) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let Value::Mapping(m) = v else {
        return Err("must be a mapping of header names to values".into());
    };
    let mut out = Vec::new();
    for (k, v) in m {
        let (Some(k), Some(v)) = (
            k.as_str(),
            text(v).or_else(|| v.as_bool().map(|b| b.to_string())),
        ) else {
            return Err("header names and values must be strings".into());
        };
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("{k:?} is not a valid header name"))?;
        if crate::config::FORBIDDEN_EXTRA_HEADERS.contains(&name.as_str())
            || name.as_str().starts_with("x-mte-")
        {
            return Err(format!("header {k:?} cannot be set"));
        }
        let value =
            HeaderValue::from_str(&v).map_err(|_| format!("header {k:?} has an invalid value"))?;
        out.push((name, value));
    }
    Ok(out)
}

/// A host name as matched: lowercase, no port, no trailing dot. `None` when it is not one.
pub fn normalize_host(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // An IPv6 literal, with or without port.
        &raw[..rest.find(']')? + 2]
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => raw,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b));
    ok.then_some(host)
}

/// The sites of a relay, by host.
pub struct Sites {
    by_host: HashMap<String, SiteRef>,
}

impl Sites {
    /// Builds every site of `config.domain_map` around one shared `store` (each site sees it
    /// through its own [`NamespacedStore`]). `Ok(None)` without a domain map.
    pub fn build(config: &Config, store: &Arc<dyn PairStore>) -> Result<Option<Sites>, String> {
        let Some(map) = &config.domain_map else {
            return Ok(None);
        };
        let mut by_host = HashMap::new();
        for d in map {
            let store: Arc<dyn PairStore> = Arc::new(NamespacedStore::new(store.clone(), &d.host));
            let site = RelayState::with_store(d.apply(config), store)
                .map_err(|e| format!("domainMap.{}: {e}", d.host))?;
            let site = SiteRef {
                host: d.host.as_str().into(),
                state: Arc::new(site),
            };
            by_host.insert(d.host.clone(), site);
        }
        Ok(Some(Sites { by_host }))
    }

    /// The site for a host (already normalised with [`normalize_host`]).
    pub fn get(&self, host: &str) -> Option<&SiteRef> {
        self.by_host.get(host)
    }

    /// Every site with its host, sorted by host.
    pub fn all(&self) -> Vec<(&str, &Arc<Site>)> {
        let mut v: Vec<_> = self
            .by_host
            .iter()
            .map(|(h, s)| (h.as_str(), &s.state))
            .collect();
        v.sort_by_key(|(h, _)| *h);
        v
    }
}

/// Which state serves a request.
pub enum Selection {
    /// No `DOMAIN_MAP`: the relay's own state.
    Default,
    /// The site of the request's host.
    Site(SiteRef),
    /// `DOMAIN_MAP` is set and the host is not in it (421).
    Unknown,
}

/// The request's host: `Host`, else the URI's authority; normalised.
pub fn request_host(req: &RequestHeader) -> Option<String> {
    let raw = req
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri.authority().map(|a| a.as_str().to_owned()))?;
    normalize_host(&raw)
}

/// Picks the state for a request (the hook of `request_filter`).
pub fn select(state: &RelayState, req: &RequestHeader) -> Selection {
    let Some(sites) = &state.sites else {
        return Selection::Default;
    };
    match request_host(req).and_then(|h| sites.get(&h).cloned()) {
        Some(site) => Selection::Site(site),
        None => Selection::Unknown,
    }
}

/// Answers a request for a host that is not in `DOMAIN_MAP`: 421 `misdirected_request`.
pub async fn misdirected(
    state: &RelayState,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> pingora_error::Result<bool> {
    let kind = ErrorKind::MISDIRECTED_REQUEST;
    crate::routes::send_error(
        state,
        session,
        ctx,
        kind,
        "this relay serves no site for the request's Host",
    )
    .await
}

/// A pair store seen through one site: every client id is replaced by a keyed hash of it
/// with the site's host, so sites sharing a store never share (or collide on) a key.
pub struct NamespacedStore {
    inner: Arc<dyn PairStore>,
    key: Hmac<Sha256>,
}

impl NamespacedStore {
    /// `inner` seen through the site `host`.
    pub fn new(inner: Arc<dyn PairStore>, host: &str) -> NamespacedStore {
        let mut k = b"pqrelay/1 domain".to_vec();
        k.extend_from_slice(host.as_bytes());
        // HMAC takes keys of any length.
        let key = <Hmac<Sha256> as KeyInit>::new_from_slice(&k)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        NamespacedStore { inner, key }
    }

    /// The store key of a client id.
    fn map(&self, client: &ClientId) -> ClientId {
        let mut mac = self.key.clone();
        mac.update(&client.0);
        let out = mac.finalize().into_bytes();
        let mut id = [0u8; 16];
        id.copy_from_slice(&out[..16]);
        ClientId(id)
    }
}

#[async_trait]
impl PairStore for NamespacedStore {
    async fn insert(
        &self,
        client: &ClientId,
        pairs: &[(PairId, ServerPair)],
    ) -> Result<(), StoreError> {
        self.inner.insert(&self.map(client), pairs).await
    }

    async fn load(&self, client: &ClientId, pair: &PairId) -> Result<Option<Stored>, StoreError> {
        self.inner.load(&self.map(client), pair).await
    }

    async fn load_recent(
        &self,
        client: &ClientId,
        pair: &PairId,
    ) -> Result<Option<Stored>, StoreError> {
        self.inner.load_recent(&self.map(client), pair).await
    }

    async fn compare_and_set(
        &self,
        client: &ClientId,
        pair: &PairId,
        expected: &Version,
        next: &ServerPair,
    ) -> Result<bool, StoreError> {
        self.inner
            .compare_and_set(&self.map(client), pair, expected, next)
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    const GOOD: &str = r#"
Shop.Example.com:
  upstream: http://127.0.0.1:3000
  corsOrigins: [https://shop.example.com]
  clientIdSecret: shop-secret-0123456789abcdefghijkl
blog.example.com:
  upstream: http://127.0.0.1:3001
  corsOrigins: https://blog.example.com
  clientIdSecret: blog-secret-0123456789abcdefghijkl
  passThroughRoutes: [/health]
  headers: {x-site: blog}
"#;

    #[test]
    fn domain_map_parses_and_normalises_hosts() {
        let v = parse(&yaml(GOOD)).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].host, "shop.example.com");
        assert!(v[0].pass_through_routes.is_none());
        assert_eq!(v[1].headers.as_ref().unwrap()[0].0, "x-site");
    }

    #[test]
    fn domain_map_json_from_the_environment_parses() {
        let json = r#"{"a.example":{"upstream":"http://127.0.0.1:1","corsOrigins":["https://a.example"],"clientIdSecret":"a-secret-0123456789abcdefghijklmn"}}"#;
        let v = parse(&serde_yaml::from_str(json).unwrap()).unwrap();
        assert_eq!(v[0].host, "a.example");
    }

    #[test]
    fn domain_map_problems_name_domain_and_field() {
        let bad = r#"
a.example:
  upstream: ftp://x
  corsOrigins: [https://a.example]
  clientIdSecret: same-secret-0123456789abcdefghijkl
  colour: blue
b.example:
  upstream: http://127.0.0.1:1
  corsOrigins: [https://b.example]
  clientIdSecret: same-secret-0123456789abcdefghijkl
c.example:
  corsOrigins: "*"
  clientIdSecret: short
"#;
        let e = parse(&yaml(bad)).unwrap_err();
        let keys: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
        for want in [
            "a.example.colour",
            "a.example.upstream",
            "c.example.upstream",
            "c.example.corsOrigins",
            "c.example.clientIdSecret",
        ] {
            assert!(keys.contains(&want), "{want} missing from {keys:?}");
        }
        // a.example failed, so only b's secret is checked against the others: nothing to say.
        assert!(parse(&yaml("[1]")).is_err());
    }

    #[test]
    fn equal_secrets_are_refused() {
        let s = r#"
a.example: {upstream: "http://127.0.0.1:1", corsOrigins: "https://a.example", clientIdSecret: same-secret-0123456789abcdefghijkl}
b.example: {upstream: "http://127.0.0.1:2", corsOrigins: "https://b.example", clientIdSecret: same-secret-0123456789abcdefghijkl}
"#;
        let e = parse(&yaml(s)).unwrap_err();
        assert_eq!(e[0].0, "b.example.clientIdSecret", "{e:?}");
    }

    #[test]
    fn hosts_lose_port_case_and_trailing_dot() {
        assert_eq!(
            normalize_host("A.Example.COM:8443").unwrap(),
            "a.example.com"
        );
        assert_eq!(normalize_host("a.example.com.").unwrap(), "a.example.com");
        assert_eq!(normalize_host("[::1]:80").unwrap(), "[::1]");
        assert!(normalize_host("").is_none());
        assert!(normalize_host("a/b").is_none());
    }

    #[tokio::test]
    async fn namespaced_stores_do_not_share_pairs() {
        let inner = crate::store::from_config(&crate::store::StoreConfig::new(4)).unwrap();
        let a = NamespacedStore::new(inner.clone(), "a.example");
        let b = NamespacedStore::new(inner, "b.example");
        let id = ClientId([7; 16]);
        let pid = PairId([9; 16]);
        let pair = ServerPair::from_parts(0, pqrelay_protocol::ChainKey::from_bytes([1; 32]));
        a.insert(&id, &[(pid, pair)]).await.unwrap();
        assert!(a.load(&id, &pid).await.unwrap().is_some());
        assert!(b.load(&id, &pid).await.unwrap().is_none());
    }
}
