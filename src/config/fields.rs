//! The one table of settings. Every setting is listed once, with its YAML key, environment
//! variable, default, whether a `DOMAIN_MAP` site may set it, and a line of help; the table
//! drives reading the environment, the YAML file and `domainMap` entries ([`super::load`]),
//! unknown-key detection, `pqrelay check-config` and the configuration reference in
//! `docs/CONFIGURATION.md` ([`super::show`]: a test fails when the file differs).

/// Whether a setting must be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// It has a default (or means "off" when unset).
    Optional,
    /// It must be set.
    Required,
    /// It must be set unless `DOMAIN_MAP` gives every site its own value.
    RequiredUnlessDomainMap,
}

/// Where a setting applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The whole relay.
    Relay,
    /// One site: a `DOMAIN_MAP` entry may set its own value; the top-level one is its default.
    Site,
    /// One site, never inherited: every `DOMAIN_MAP` entry gives its own (upstream, origins,
    /// secrets), the top-level value serves only requests outside a domain map.
    SiteOwn,
}

impl Scope {
    /// The reference's word for it.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Relay => "relay",
            Scope::Site => "site",
            Scope::SiteOwn => "site (own)",
        }
    }
}

/// The section of the configuration reference a setting is listed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// The settings of the vendor guide.
    Seed,
    /// Relay keys, client ids and pair state.
    Keys,
    /// Limits and timeouts of the public edge.
    Edge,
    /// Outbound mode and several sites.
    Modes,
    /// Logs, metrics, TLS files, the demo.
    Operations,
    /// Pingora's own server settings.
    Pingora,
}

impl Group {
    /// Every group, in the reference's order, with its heading.
    pub const ALL: &'static [(Group, &'static str)] = &[
        (Group::Seed, "The vendor guide's settings"),
        (Group::Keys, "Keys, client ids and state"),
        (Group::Edge, "Edge limits and timeouts"),
        (Group::Modes, "Outbound mode and several sites"),
        (Group::Operations, "Operations"),
        (Group::Pingora, "Pingora server settings"),
    ];
}

/// One setting.
#[derive(Debug)]
pub struct Field {
    /// YAML key (`upstream`, `corsOrigins`; snake_case for Pingora's own keys).
    pub key: &'static str,
    /// Environment variable (`UPSTREAM`).
    pub env: &'static str,
    /// Other YAML spellings accepted.
    pub aliases: &'static [&'static str],
    /// Whether it must be given.
    pub need: Need,
    /// Where it applies.
    pub scope: Scope,
    /// Whether its value is a secret (masked by `check-config`; from a secret store in
    /// deployments).
    pub secret: bool,
    /// Its default, as the reference shows it.
    pub default: &'static str,
    /// The reference's section.
    pub group: Group,
    /// One line of help.
    pub help: &'static str,
}

macro_rules! fields {
    ($($name:ident: $key:literal, $env:literal, [$($alias:literal),*], $need:ident, $scope:ident,
       $secret:literal, $default:literal, $group:ident, $help:literal;)*) => {
        $(
            #[doc = concat!("`", $env, "` / `", $key, "`: ", $help)]
            pub const $name: Field = Field {
                key: $key,
                env: $env,
                aliases: &[$($alias),*],
                need: Need::$need,
                scope: Scope::$scope,
                secret: $secret,
                default: $default,
                group: Group::$group,
                help: $help,
            };
        )*

        /// Every setting, in the order of the reference and of `check-config`.
        pub const FIELDS: &[&Field] = &[$(&$name),*];
    };
}

fields! {
    UPSTREAM: "upstream", "UPSTREAM", [], RequiredUnlessDomainMap, SiteOwn, false, "required", Seed,
        "Host, IP or `http(s)://` origin of the API; a comma-separated list is balanced round-robin with health checks.";
    CORS_ORIGINS: "corsOrigins", "CORS_ORIGINS", [], RequiredUnlessDomainMap, SiteOwn, false, "required", Seed,
        "Origins allowed cross-origin (comma list / YAML list); reflected exactly, with credentials; `*` is refused.";
    CLIENT_ID_SECRET: "clientIdSecret", "CLIENT_ID_SECRET", [], RequiredUnlessDomainMap, SiteOwn, true, "required", Seed,
        "Signs client ids (HMAC-SHA256); 32 characters or more (shorter is a warning).";
    AWS_REGION: "awsRegion", "AWS_REGION", [], Optional, Relay, false, "none", Seed,
        "Accepted for compatibility and validated; informational (pqrelay calls no AWS API).";
    REDIS_URL: "redisURL", "REDIS_URL", ["redisUrl"], Optional, Relay, true, "in-memory state", Seed,
        "Shared state store for several relays (`redis://`, `rediss://`, `unix://`); unset keeps state in memory.";
    PORT: "port", "PORT", [], Optional, Relay, false, "8080", Seed,
        "Listening port.";
    DEBUG: "debug", "DEBUG", [], Optional, Relay, false, "false", Seed,
        "Debug logging (pqrelay's own lines; never secrets, keys or bodies).";
    PASS_THROUGH_ROUTES: "passThroughRoutes", "PASS_THROUGH_ROUTES", [], Optional, Site, false, "none", Seed,
        "Routes proxied untouched (`*` for one segment; a trailing `*` for the rest of the path).";
    MTE_ROUTES: "mteRoutes", "MTE_ROUTES", [], Optional, Site, false, "every other route", Seed,
        "When set, only these routes are encrypted routes; every other path not passed through is 404.";
    CORS_METHODS: "corsMethods", "CORS_METHODS", [], Optional, Relay, false, "GET,POST,PUT,DELETE (and OPTIONS, HEAD)", Seed,
        "Methods allowed cross-origin; OPTIONS and HEAD always are.";
    HEADERS: "headers", "HEADERS", [], Optional, Site, false, "none", Seed,
        "Headers added to every upstream request and every response (environment: a JSON object).";
    MAX_POOL_SIZE: "maxPoolSize", "MAX_POOL_SIZE", [], Optional, Relay, false, "25", Seed,
        "Pairs per pairing request (the vendor's encoder pool size, 1–255), announced by discovery; a client holds at most 4 × this many.";
    HOST: "host", "HOST", [], Optional, Relay, false, "0.0.0.0", Operations,
        "Listening address.";
    CLIENT_ID_PREVIOUS_SECRETS: "clientIdPreviousSecrets", "CLIENT_ID_PREVIOUS_SECRETS", [], Optional, SiteOwn, true, "none", Keys,
        "Secrets still accepted after a rotation; client ids signed with them are re-signed with the current one.";
    RELAY_KEYS: "relayKeys", "RELAY_KEYS", [], Optional, SiteOwn, true, "derived from the client-id secrets", Keys,
        "The relay's keys, current first (comma list): each a file path (written by `pqrelay keygen`) or a key value of 43+ characters of A-Z a-z 0-9 - _; clients pin their fingerprints.";
    STATE_SECRET: "stateSecret", "STATE_SECRET", [], Optional, Relay, true, "CLIENT_ID_SECRET", Keys,
        "Seals pair state at rest in Redis (every relay sharing the Redis needs the same one).";
    REDIS_CLUSTER: "redisCluster", "REDIS_CLUSTER", [], Optional, Relay, false, "false", Keys,
        "Redis Cluster mode (ElastiCache cluster mode enabled): REDIS_URL names one node, the others are discovered.";
    REDIS_TIMEOUT_MS: "redisTimeoutMs", "REDIS_TIMEOUT_MS", [], Optional, Relay, false, "1000", Keys,
        "Time limit of one Redis operation in milliseconds (1–60000), connecting included.";
    REDIS_CA_FILE: "redisCaFile", "REDIS_CA_FILE", [], Optional, Relay, false, "system and Mozilla roots", Keys,
        "PEM CA certificates trusted for `rediss://`.";
    MAX_HEADER_BYTES: "maxHeaderBytes", "MAX_HEADER_BYTES", [], Optional, Relay, false, "32768", Edge,
        "All request header fields together (name + value + 4 per field), 1024–1048576; 431 beyond.";
    MAX_URL_BYTES: "maxUrlBytes", "MAX_URL_BYTES", [], Optional, Relay, false, "12288", Edge,
        "The request-target as sent (a sealed 8 KiB URL is about 11 KiB), 256–1048576; 414 beyond.";
    HEADER_TIMEOUT_MS: "headerTimeoutMs", "HEADER_TIMEOUT_MS", [], Optional, Relay, false, "10000", Edge,
        "A request head must be complete within this many milliseconds (slowloris), 1–3600000.";
    CLIENT_TIMEOUT_MS: "clientTimeoutMs", "CLIENT_TIMEOUT_MS", [], Optional, Relay, false, "30000", Edge,
        "Longest wait for one body read from or response write to the client, in milliseconds, 1–3600000.";
    UPSTREAM_CONNECT_TIMEOUT_MS: "upstreamConnectTimeoutMs", "UPSTREAM_CONNECT_TIMEOUT_MS", [], Optional, Relay, false, "5000", Edge,
        "Connecting to the upstream (and, in outbound mode, to a remote relay), in milliseconds, 1–3600000.";
    UPSTREAM_READ_TIMEOUT_MS: "upstreamReadTimeoutMs", "UPSTREAM_READ_TIMEOUT_MS", [], Optional, Relay, false, "60000", Edge,
        "One read from or write to the upstream (also an SSE stream's longest silence), in milliseconds, 1–3600000.";
    PAIR_RATE_PER_IP: "pairRatePerIp", "PAIR_RATE_PER_IP", [], Optional, Relay, false, "50", Edge,
        "Pairing requests per second from one client IP address (0 = off), 0–1000000; 429 beyond.";
    PAIR_RATE_PER_CLIENT: "pairRatePerClient", "PAIR_RATE_PER_CLIENT", [], Optional, Relay, false, "30", Edge,
        "Pairing requests per second for one client id (0 = off), 0–1000000; 429 beyond.";
    TRUSTED_PROXIES: "trustedProxies", "TRUSTED_PROXIES", [], Optional, Relay, false, "none", Edge,
        "Load balancers and proxies (CIDRs or addresses, comma list / YAML list) whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed; the client address (per-IP limits, access log, upstream `X-Forwarded-For`) is the first untrusted hop from the right.";
    PROXY_PROTOCOL: "proxyProtocol", "PROXY_PROTOCOL", [], Optional, Relay, false, "false", Edge,
        "Every connection starts with a PROXY protocol v1 or v2 header (AWS NLB); its source address is the peer. Connections without one are closed.";
    PUBLIC_HOSTS: "publicHosts", "PUBLIC_HOSTS", [], Optional, Relay, false, "none", Edge,
        "Host names the upstream may see in `X-Forwarded-Host` (besides `DOMAIN_MAP` hosts); for any other `Host` none is sent.";
    PAIRING_CONCURRENCY: "pairingConcurrency", "PAIRING_CONCURRENCY", [], Optional, Relay, false, "4 × CPU count", Edge,
        "Pairings admitted at once, 1–65536; their key exchange runs off the proxy threads, on at most 4 × CPU count pairing threads (more admitted pairings wait for one); beyond, 503 `pairing_busy` with `Retry-After: 1` (never queued).";
    PLAIN_HEADERS: "plainHeaders", "PLAIN_HEADERS", [], Optional, Relay, false, "cookie", Edge,
        "Plain (unsealed) request headers still forwarded on MTE routes; every other plain header is dropped (only sealed headers speak for the client).";
    OUTBOUND_TOKEN: "outboundToken", "OUTBOUND_TOKEN", [], Optional, Relay, true, "off", Modes,
        "Enables outbound mode: services send plain requests with `x-mte-outbound-token: <token>` and the relay seals them to a remote relay.";
    OUTBOUND_UPSTREAMS: "outboundUpstreams", "OUTBOUND_UPSTREAMS", [], Optional, Relay, false, "none", Modes,
        "The remote relays outbound requests may go to (comma-separated origins, each optionally `;pin=sha256:…` one or more times); required with OUTBOUND_TOKEN.";
    DOMAIN_MAP: "domainMap", "DOMAIN_MAP", [], Optional, Relay, false, "one site", Modes,
        "Several sites by `Host` (environment: JSON): each host its own settings of scope `site`; unknown hosts get 421.";
    LOG_FORMAT: "logFormat", "LOG_FORMAT", [], Optional, Relay, false, "text", Operations,
        "`text` or `json` (one object per line, for CloudWatch).";
    METRICS_PORT: "metricsPort", "METRICS_PORT", [], Optional, Relay, false, "off", Operations,
        "Prometheus metrics at `http://HOST:METRICS_PORT/metrics` (keep the port private).";
    UPSTREAM_CA_FILE: "upstreamCaFile", "UPSTREAM_CA_FILE", [], Optional, Relay, false, "system roots", Operations,
        "PEM CA certificates trusted for `https://` upstreams and remote relays instead of the system's.";
    DEMO: "demo", "DEMO", [], Optional, Relay, false, "false", Operations,
        "Serves the demo page at `/demo/` (`pqrelay demo` sets it).";
    THREADS: "threads", "THREADS", [], Optional, Relay, false, "CPU count", Pingora,
        "Worker threads (Pingora `threads`).";
    PID_FILE: "pid_file", "PID_FILE", [], Optional, Relay, false, "/tmp/pqrelay.pid", Pingora,
        "Pingora's pid file (daemon and upgrade modes).";
    UPGRADE_SOCK: "upgrade_sock", "UPGRADE_SOCK", [], Optional, Relay, false, "/tmp/pqrelay_upgrade.sock", Pingora,
        "Pingora's socket for handing listeners to a new process (`pqrelay -u`).";
}

/// The field with this YAML key or alias.
pub fn by_key(key: &str) -> Option<&'static Field> {
    FIELDS
        .iter()
        .copied()
        .find(|f| f.key == key || f.aliases.contains(&key))
}

/// The field with this environment variable.
pub fn by_env(env: &str) -> Option<&'static Field> {
    FIELDS.iter().copied().find(|f| f.env == env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_variables_are_unique() {
        let mut keys: Vec<&str> = FIELDS
            .iter()
            .flat_map(|f| f.aliases.iter().copied().chain([f.key]))
            .collect();
        let mut envs: Vec<&str> = FIELDS.iter().map(|f| f.env).collect();
        let (k, e) = (keys.len(), envs.len());
        keys.sort_unstable();
        keys.dedup();
        envs.sort_unstable();
        envs.dedup();
        assert_eq!((keys.len(), envs.len()), (k, e));
    }
}
