//! Configuration from environment variables and a YAML file.
//!
//! Names follow the vendor guide: environment variables in `UPPER_SNAKE`, YAML keys in
//! `camelCase` (`upstream`, `clientIdSecret`, `corsOrigins`, `redisURL`, ...). The environment
//! overrides the file. One YAML file may also carry Pingora's own `ServerConf` keys, which are
//! `snake_case` (`threads`, `pid_file`, `grace_period_seconds`, ...): Pingora ignores our keys
//! and we hand it its own, so the same file works for `--config` and Pingora's `-c`.
//!
//! Every problem becomes one [`ConfigProblem`] that names the YAML key, the environment
//! variable, where the value came from and what is wrong; [`load`] reports all of them at once.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use http::{HeaderName, HeaderValue};
use pingora_core::server::configuration::ServerConf;
use serde_yaml::{Mapping, Value};

use crate::routes::RoutePattern;
use crate::upstream::{parse_upstreams, UpstreamSpec};

/// Recommended minimum length of `CLIENT_ID_SECRET`.
pub const MIN_SECRET_LEN: usize = 32;
/// Default listening port.
pub const DEFAULT_PORT: u16 = 8080;
/// Default `MAX_POOL_SIZE`.
pub const DEFAULT_MAX_POOL_SIZE: usize = 25;
/// Default `CORS_METHODS`.
pub const DEFAULT_CORS_METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE"];
/// Methods always allowed by CORS, whatever `CORS_METHODS` says.
pub const ALWAYS_ALLOWED_METHODS: &[&str] = &["OPTIONS", "HEAD"];
/// Default graceful-shutdown grace period (Pingora's own default is 300 s).
pub const DEFAULT_GRACE_PERIOD_SECONDS: u64 = 5;

/// A secret string: never printed, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub(crate) fn new(s: String) -> Secret {
        Secret(s)
    }

    /// The secret itself. Use only to compute with it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A masked description such as `******** (32 chars)`.
    pub fn masked(&self) -> String {
        format!("******** ({} chars)", self.0.chars().count())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (CloudWatch Logs Insights friendly).
    Json,
}

/// The relay's effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Upstreams, round-robin balanced when more than one.
    pub upstream: Vec<UpstreamSpec>,
    /// Origins allowed to make cross-origin requests, normalised (`scheme://host[:port]`).
    pub cors_origins: Vec<String>,
    /// Signs client ids.
    pub client_id_secret: Secret,
    /// Secrets still accepted for client ids (rotation).
    pub client_id_previous_secrets: Vec<Secret>,
    /// AWS region (informational; pqrelay calls no AWS API).
    pub aws_region: Option<String>,
    /// Redis URL for shared state; `None` means in-memory state.
    pub redis_url: Option<Secret>,
    /// Redis Cluster mode (`REDIS_CLUSTER`): the URL names one node, the others are discovered.
    pub redis_cluster: bool,
    /// Time limit of one Redis operation in milliseconds (`REDIS_TIMEOUT_MS`); `None` = the
    /// store's default.
    pub redis_timeout_ms: Option<u64>,
    /// PEM file of CA certificates for `rediss://` (`REDIS_CA_FILE`).
    pub redis_ca_file: Option<PathBuf>,
    /// Seals pair state at rest in Redis (`STATE_SECRET`); `None` = `CLIENT_ID_SECRET`.
    pub state_secret: Option<Secret>,
    /// Address to listen on.
    pub host: String,
    /// Port to listen on.
    pub port: u16,
    /// Port of the Prometheus metrics listener (`METRICS_PORT`, on `host`); `None` = off.
    pub metrics_port: Option<u16>,
    /// Debug logging.
    pub debug: bool,
    /// Routes proxied untouched.
    pub pass_through_routes: Vec<RoutePattern>,
    /// When set, only these routes are MTE routes; everything else not passed through 404s.
    pub mte_routes: Option<Vec<RoutePattern>>,
    /// Methods allowed cross-origin, always including OPTIONS and HEAD.
    pub cors_methods: Vec<String>,
    /// Headers added to every upstream request and every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Pairs per client (the vendor's encoder pool size).
    pub max_pool_size: usize,
    /// Log line format.
    pub log_format: LogFormat,
    /// PEM file of CA certificates trusted for https upstreams instead of the system roots.
    pub upstream_ca_file: Option<PathBuf>,
    /// Demo mode (enables the demo page route).
    pub demo: bool,
    /// `OUTBOUND_TOKEN`: enables outbound mode ([`crate::outbound`]); `None` = off.
    pub outbound_token: Option<Secret>,
    /// `OUTBOUND_UPSTREAMS`: the remote relays outbound requests may go to.
    pub outbound_upstreams: Vec<UpstreamSpec>,
    /// `DOMAIN_MAP`: one site per host ([`crate::domains`]); `None` = one site.
    pub domain_map: Option<Vec<crate::domains::DomainConfig>>,
    /// Edge limits: sizes, timeouts, pairing rates ([`crate::limits`]).
    pub limits: crate::limits::Limits,
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

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// YAML key (`upstream`), or the offending key for unknown keys.
    pub key: String,
    /// Environment variable (`UPSTREAM`), empty when none applies.
    pub env: &'static str,
    /// Where the value came from (`environment`, `config file x.yaml`, ...).
    pub source: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origin = if self.source.is_empty() {
            String::new()
        } else {
            format!("from {}", self.source)
        };
        let parts: Vec<&str> = [self.env, origin.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        write!(
            f,
            "config error: {} ({}): {}",
            self.key,
            parts.join(", "),
            self.message
        )
    }
}

/// All problems found while loading; `Display` prints one line per problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigProblem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A setting: its YAML key, environment variable and other YAML spellings accepted.
struct Field {
    key: &'static str,
    env: &'static str,
    aliases: &'static [&'static str],
}

const fn field(key: &'static str, env: &'static str) -> Field {
    Field {
        key,
        env,
        aliases: &[],
    }
}

const UPSTREAM: Field = field("upstream", "UPSTREAM");
const CORS_ORIGINS: Field = field("corsOrigins", "CORS_ORIGINS");
const CLIENT_ID_SECRET: Field = field("clientIdSecret", "CLIENT_ID_SECRET");
const CLIENT_ID_PREVIOUS_SECRETS: Field =
    field("clientIdPreviousSecrets", "CLIENT_ID_PREVIOUS_SECRETS");
const AWS_REGION: Field = field("awsRegion", "AWS_REGION");
const REDIS_URL: Field = Field {
    key: "redisURL",
    env: "REDIS_URL",
    aliases: &["redisUrl"],
};
const REDIS_CLUSTER: Field = field("redisCluster", "REDIS_CLUSTER");
const REDIS_TIMEOUT_MS: Field = field("redisTimeoutMs", "REDIS_TIMEOUT_MS");
const REDIS_CA_FILE: Field = field("redisCaFile", "REDIS_CA_FILE");
const STATE_SECRET: Field = field("stateSecret", "STATE_SECRET");
const HOST: Field = field("host", "HOST");
const PORT: Field = field("port", "PORT");
const METRICS_PORT: Field = field("metricsPort", "METRICS_PORT");
const DEBUG: Field = field("debug", "DEBUG");
const PASS_THROUGH_ROUTES: Field = field("passThroughRoutes", "PASS_THROUGH_ROUTES");
const MTE_ROUTES: Field = field("mteRoutes", "MTE_ROUTES");
const CORS_METHODS: Field = field("corsMethods", "CORS_METHODS");
const HEADERS: Field = field("headers", "HEADERS");
const MAX_POOL_SIZE: Field = field("maxPoolSize", "MAX_POOL_SIZE");
const LOG_FORMAT: Field = field("logFormat", "LOG_FORMAT");
const UPSTREAM_CA_FILE: Field = field("upstreamCaFile", "UPSTREAM_CA_FILE");
const DEMO: Field = field("demo", "DEMO");
const OUTBOUND_TOKEN: Field = field("outboundToken", "OUTBOUND_TOKEN");
const OUTBOUND_UPSTREAMS: Field = field("outboundUpstreams", "OUTBOUND_UPSTREAMS");
const DOMAIN_MAP: Field = field("domainMap", "DOMAIN_MAP");
const MAX_HEADER_BYTES: Field = field("maxHeaderBytes", "MAX_HEADER_BYTES");
const MAX_URL_BYTES: Field = field("maxUrlBytes", "MAX_URL_BYTES");
const HEADER_TIMEOUT_MS: Field = field("headerTimeoutMs", "HEADER_TIMEOUT_MS");
const CLIENT_TIMEOUT_MS: Field = field("clientTimeoutMs", "CLIENT_TIMEOUT_MS");
const UPSTREAM_CONNECT_TIMEOUT_MS: Field =
    field("upstreamConnectTimeoutMs", "UPSTREAM_CONNECT_TIMEOUT_MS");
const UPSTREAM_READ_TIMEOUT_MS: Field = field("upstreamReadTimeoutMs", "UPSTREAM_READ_TIMEOUT_MS");
const PAIR_RATE_PER_IP: Field = field("pairRatePerIp", "PAIR_RATE_PER_IP");
const PAIR_RATE_PER_CLIENT: Field = field("pairRatePerClient", "PAIR_RATE_PER_CLIENT");

/// Every pqrelay setting, for unknown-key detection and documentation.
const FIELDS: &[&Field] = &[
    &UPSTREAM,
    &CORS_ORIGINS,
    &CLIENT_ID_SECRET,
    &CLIENT_ID_PREVIOUS_SECRETS,
    &AWS_REGION,
    &REDIS_URL,
    &REDIS_CLUSTER,
    &REDIS_TIMEOUT_MS,
    &REDIS_CA_FILE,
    &STATE_SECRET,
    &HOST,
    &PORT,
    &METRICS_PORT,
    &DEBUG,
    &PASS_THROUGH_ROUTES,
    &MTE_ROUTES,
    &CORS_METHODS,
    &HEADERS,
    &MAX_POOL_SIZE,
    &LOG_FORMAT,
    &UPSTREAM_CA_FILE,
    &DEMO,
    &OUTBOUND_TOKEN,
    &OUTBOUND_UPSTREAMS,
    &DOMAIN_MAP,
    &MAX_HEADER_BYTES,
    &MAX_URL_BYTES,
    &HEADER_TIMEOUT_MS,
    &CLIENT_TIMEOUT_MS,
    &UPSTREAM_CONNECT_TIMEOUT_MS,
    &UPSTREAM_READ_TIMEOUT_MS,
    &PAIR_RATE_PER_IP,
    &PAIR_RATE_PER_CLIENT,
];

/// Pingora settings that may also come from the environment.
const PINGORA_ENV: &[(&str, &str)] = &[
    ("PID_FILE", "pid_file"),
    ("UPGRADE_SOCK", "upgrade_sock"),
    ("THREADS", "threads"),
];

/// Headers that HEADERS may not set: they would break framing or routing.
pub(crate) const FORBIDDEN_EXTRA_HEADERS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "host",
    "upgrade",
    "keep-alive",
    "te",
    "trailer",
];

/// A raw value and where it came from.
enum Raw {
    Env(String),
    Yaml(Value),
}

/// Where raw values come from: environment snapshot, optional YAML file, defaults.
pub struct Sources {
    env: HashMap<String, String>,
    file: Option<(PathBuf, Mapping)>,
    defaults: HashMap<&'static str, String>,
}

impl Sources {
    /// Reads the process environment and the YAML file at `file`, if any.
    pub fn new(env: HashMap<String, String>, file: Option<&Path>) -> Result<Sources, ConfigErrors> {
        let file = match file {
            None => None,
            Some(path) => Some((path.to_path_buf(), read_yaml(path)?)),
        };
        Ok(Sources {
            env,
            file,
            defaults: HashMap::new(),
        })
    }

    /// Adds a default for an environment variable, used when neither the environment nor the
    /// file sets it (demo mode fills in UPSTREAM, CLIENT_ID_SECRET and CORS_ORIGINS this way).
    pub fn set_default(&mut self, env: &'static str, value: String) {
        self.defaults.insert(env, value);
    }

    fn file_name(&self) -> String {
        match &self.file {
            Some((p, _)) => format!("config file {}", p.display()),
            None => "config file".into(),
        }
    }

    fn get(&self, f: &Field) -> Option<(Raw, String)> {
        if let Some(v) = self.env.get(f.env).filter(|v| !v.trim().is_empty()) {
            return Some((Raw::Env(v.clone()), "environment".into()));
        }
        if let Some((_, map)) = &self.file {
            for k in std::iter::once(&f.key).chain(f.aliases) {
                if let Some(v) = map.get(*k) {
                    if !v.is_null() {
                        return Some((Raw::Yaml(v.clone()), self.file_name()));
                    }
                }
            }
        }
        self.defaults
            .get(f.env)
            .map(|v| (Raw::Env(v.clone()), "default".into()))
    }
}

fn read_yaml(path: &Path) -> Result<Mapping, ConfigErrors> {
    let problem = |message: String| {
        ConfigErrors(vec![ConfigProblem {
            key: "configFile".into(),
            env: "CONFIG_FILE",
            source: format!("config file {}", path.display()),
            message,
        }])
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| problem(format!("cannot be read: {e}")))?;
    if text.trim().is_empty() {
        return Ok(Mapping::new());
    }
    match serde_yaml::from_str::<Value>(&text) {
        Ok(Value::Mapping(m)) => Ok(m),
        Ok(Value::Null) => Ok(Mapping::new()),
        Ok(_) => Err(problem("must be a YAML mapping of keys to values".into())),
        Err(e) => Err(problem(format!("is not valid YAML: {e}"))),
    }
}

/// Collects problems while each field is parsed.
struct Loader<'a> {
    src: &'a Sources,
    problems: Vec<ConfigProblem>,
    warnings: Vec<String>,
}

impl Loader<'_> {
    fn problem(&mut self, f: &Field, source: &str, message: impl Into<String>) {
        self.problems.push(ConfigProblem {
            key: f.key.into(),
            env: f.env,
            source: source.into(),
            message: message.into(),
        });
    }

    fn required<T>(
        &mut self,
        f: &Field,
        parse: impl FnOnce(&mut Self, Raw, &str) -> Option<T>,
    ) -> Option<T> {
        match self.src.get(f) {
            Some((raw, source)) => parse(self, raw, &source),
            None => {
                let message = format!(
                    "is required but not set: set the {} environment variable or `{}:` in the config file",
                    f.env, f.key
                );
                self.problem(f, "", message);
                None
            }
        }
    }

    /// [`required`](Self::required), or [`optional`](Self::optional) when `per_site` (a
    /// `DOMAIN_MAP` gives every site its own value).
    fn required_unless<T>(
        &mut self,
        per_site: bool,
        f: &Field,
        parse: impl FnOnce(&mut Self, Raw, &str) -> Option<T>,
    ) -> Option<Option<T>> {
        if per_site {
            self.optional(f, parse)
        } else {
            self.required(f, parse).map(Some)
        }
    }

    fn optional<T>(
        &mut self,
        f: &Field,
        parse: impl FnOnce(&mut Self, Raw, &str) -> Option<T>,
    ) -> Option<Option<T>> {
        match self.src.get(f) {
            Some((raw, source)) => parse(self, raw, &source).map(Some),
            None => Some(None),
        }
    }

    fn string(&mut self, f: &Field, raw: Raw, source: &str) -> Option<String> {
        match raw {
            Raw::Env(s) => Some(s.trim().to_owned()),
            Raw::Yaml(Value::String(s)) => Some(s.trim().to_owned()),
            Raw::Yaml(Value::Number(n)) => Some(n.to_string()),
            Raw::Yaml(Value::Bool(b)) => Some(b.to_string()),
            Raw::Yaml(_) => {
                self.problem(f, source, "must be a string");
                None
            }
        }
    }

    fn list(&mut self, f: &Field, raw: Raw, source: &str) -> Option<Vec<String>> {
        let split = |s: &str| -> Vec<String> {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        match raw {
            Raw::Env(s) | Raw::Yaml(Value::String(s)) => Some(split(&s)),
            Raw::Yaml(Value::Sequence(items)) => {
                let mut out = Vec::new();
                for item in items {
                    match item {
                        Value::String(s) => out.push(s.trim().to_owned()),
                        Value::Number(n) => out.push(n.to_string()),
                        _ => {
                            self.problem(f, source, "must be a list of strings");
                            return None;
                        }
                    }
                }
                Some(out.into_iter().filter(|s| !s.is_empty()).collect())
            }
            Raw::Yaml(_) => {
                self.problem(
                    f,
                    source,
                    "must be a list of strings (or one comma-separated string)",
                );
                None
            }
        }
    }

    fn bool(&mut self, f: &Field, raw: Raw, source: &str) -> Option<bool> {
        let text = match raw {
            Raw::Yaml(Value::Bool(b)) => return Some(b),
            Raw::Env(s) | Raw::Yaml(Value::String(s)) => s,
            Raw::Yaml(_) => String::new(),
        };
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" => Some(false),
            _ => {
                self.problem(
                    f,
                    source,
                    format!("{text:?} is not a boolean (use true or false)"),
                );
                None
            }
        }
    }

    fn number<T: std::str::FromStr + PartialOrd + fmt::Display>(
        &mut self,
        f: &Field,
        raw: Raw,
        source: &str,
        min: T,
        max: T,
    ) -> Option<T> {
        let text = self.string(f, raw, source)?;
        match text.parse::<T>() {
            Ok(n) if n >= min && n <= max => Some(n),
            _ => {
                self.problem(
                    f,
                    source,
                    format!("{text:?} is not a whole number from {min} to {max}"),
                );
                None
            }
        }
    }
}

/// Loads and validates the configuration. All problems are reported together.
pub fn load(src: &Sources) -> Result<Loaded, ConfigErrors> {
    let mut l = Loader {
        src,
        problems: Vec::new(),
        warnings: Vec::new(),
    };

    // With DOMAIN_MAP every site names its own upstream, CORS origins and client-id secret:
    // the top-level ones are optional then (unset: no upstream, no origin, a random secret).
    let per_site = src.get(&DOMAIN_MAP).is_some();
    let upstream = l.required_unless(per_site, &UPSTREAM, |l, raw, source| {
        let text = l.string(&UPSTREAM, raw, source)?;
        match parse_upstreams(&text) {
            Ok(v) => Some(v),
            Err(e) => {
                l.problem(&UPSTREAM, source, e);
                None
            }
        }
    });

    let cors_origins = l.required_unless(per_site, &CORS_ORIGINS, |l, raw, source| {
        let items = l.list(&CORS_ORIGINS, raw, source)?;
        if items.is_empty() {
            l.problem(&CORS_ORIGINS, source, "must list at least one origin");
            return None;
        }
        let mut out = Vec::new();
        for item in items {
            match normalize_origin(&item) {
                Ok(o) => out.push(o),
                Err(e) => l.problem(&CORS_ORIGINS, source, format!("{item:?}: {e}")),
            }
        }
        Some(out)
    });

    let client_id_secret = l.required_unless(per_site, &CLIENT_ID_SECRET, |l, raw, source| {
        let s = l.string(&CLIENT_ID_SECRET, raw, source)?;
        let n = s.chars().count();
        if n < MIN_SECRET_LEN {
            l.warnings.push(format!(
                "warning: clientIdSecret (env CLIENT_ID_SECRET) is only {n} characters; {MIN_SECRET_LEN} or more are recommended"
            ));
        }
        Some(Secret(s))
    });

    let client_id_previous_secrets = l
        .optional(&CLIENT_ID_PREVIOUS_SECRETS, |l, raw, source| {
            l.list(&CLIENT_ID_PREVIOUS_SECRETS, raw, source)
        })
        .map(|v| v.unwrap_or_default().into_iter().map(Secret).collect());

    let aws_region = l.optional(&AWS_REGION, |l, raw, source| {
        let s = l.string(&AWS_REGION, raw, source)?;
        if is_aws_region(&s) {
            Some(s)
        } else {
            l.problem(
                &AWS_REGION,
                source,
                format!("{s:?} is not an AWS region name (for example us-east-1)"),
            );
            None
        }
    });

    let redis_url = l.optional(&REDIS_URL, |l, raw, source| {
        let s = l.string(&REDIS_URL, raw, source)?;
        if ["redis://", "rediss://", "redis+unix://", "unix://"]
            .iter()
            .any(|p| s.starts_with(p))
        {
            Some(Secret(s))
        } else {
            l.problem(
                &REDIS_URL,
                source,
                "must start with redis://, rediss:// or unix://",
            );
            None
        }
    });

    let host = l
        .optional(&HOST, |l, raw, source| {
            let s = l.string(&HOST, raw, source)?;
            if s.parse::<std::net::IpAddr>().is_ok() {
                Some(s)
            } else {
                l.problem(
                    &HOST,
                    source,
                    format!("{s:?} is not an IP address (for example 0.0.0.0)"),
                );
                None
            }
        })
        .map(|v| v.unwrap_or_else(|| "0.0.0.0".into()));

    let port = l
        .optional(&PORT, |l, raw, source| {
            l.number::<u16>(&PORT, raw, source, 1, u16::MAX)
        })
        .map(|v| v.unwrap_or(DEFAULT_PORT));

    let metrics_port = l.optional(&METRICS_PORT, |l, raw, source| {
        let m = l.number::<u16>(&METRICS_PORT, raw, source, 1, u16::MAX)?;
        if port == Some(m) {
            l.problem(
                &METRICS_PORT,
                source,
                format!("{m} is also the relay's PORT; metrics need a port of their own"),
            );
            return None;
        }
        Some(m)
    });

    let debug = l
        .optional(&DEBUG, |l, raw, source| l.bool(&DEBUG, raw, source))
        .map(|v| v.unwrap_or(false));

    let pass_through_routes = l
        .optional(&PASS_THROUGH_ROUTES, |l, raw, source| {
            routes(l, &PASS_THROUGH_ROUTES, raw, source)
        })
        .map(Option::unwrap_or_default);

    let mte_routes = l.optional(&MTE_ROUTES, |l, raw, source| {
        routes(l, &MTE_ROUTES, raw, source)
    });

    let cors_methods = l
        .optional(&CORS_METHODS, |l, raw, source| {
            let items = l.list(&CORS_METHODS, raw, source)?;
            let mut out = Vec::new();
            for m in items {
                let up = m.to_ascii_uppercase();
                if http::Method::from_bytes(up.as_bytes()).is_err() {
                    l.problem(
                        &CORS_METHODS,
                        source,
                        format!("{m:?} is not an HTTP method"),
                    );
                } else if !out.contains(&up) {
                    out.push(up);
                }
            }
            Some(out)
        })
        .map(|v| {
            let mut methods =
                v.unwrap_or_else(|| DEFAULT_CORS_METHODS.iter().map(|s| s.to_string()).collect());
            for m in ALWAYS_ALLOWED_METHODS {
                if !methods.iter().any(|x| x == m) {
                    methods.push(m.to_string());
                }
            }
            methods
        });

    let headers = l
        .optional(&HEADERS, |l, raw, source| headers(l, raw, source))
        .map(Option::unwrap_or_default);

    let max_pool_size = l
        .optional(&MAX_POOL_SIZE, |l, raw, source| {
            l.number::<usize>(&MAX_POOL_SIZE, raw, source, 1, 10_000)
        })
        .map(|v| v.unwrap_or(DEFAULT_MAX_POOL_SIZE));

    let log_format = l
        .optional(&LOG_FORMAT, |l, raw, source| {
            let s = l.string(&LOG_FORMAT, raw, source)?;
            match s.to_ascii_lowercase().as_str() {
                "text" => Some(LogFormat::Text),
                "json" => Some(LogFormat::Json),
                _ => {
                    l.problem(
                        &LOG_FORMAT,
                        source,
                        format!("{s:?} is not a log format (use text or json)"),
                    );
                    None
                }
            }
        })
        .map(|v| v.unwrap_or(LogFormat::Text));

    let upstream_ca_file = l.optional(&UPSTREAM_CA_FILE, |l, raw, source| {
        pem_file(l, &UPSTREAM_CA_FILE, raw, source)
    });

    let redis_cluster = l
        .optional(&REDIS_CLUSTER, |l, raw, source| {
            l.bool(&REDIS_CLUSTER, raw, source)
        })
        .map(|v| v.unwrap_or(false));

    let redis_timeout_ms = l.optional(&REDIS_TIMEOUT_MS, |l, raw, source| {
        l.number::<u64>(&REDIS_TIMEOUT_MS, raw, source, 1, 60_000)
    });

    let redis_ca_file = l.optional(&REDIS_CA_FILE, |l, raw, source| {
        pem_file(l, &REDIS_CA_FILE, raw, source)
    });

    let state_secret = l.optional(&STATE_SECRET, |l, raw, source| {
        let s = l.string(&STATE_SECRET, raw, source)?;
        if s.chars().count() < MIN_SECRET_LEN {
            l.warnings.push(format!(
                "STATE_SECRET is shorter than {MIN_SECRET_LEN} characters; use a long random value"
            ));
        }
        Some(Secret(s))
    });

    if matches!(
        (&client_id_secret, &redis_url, &state_secret),
        (Some(None), Some(Some(_)), Some(None))
    ) {
        let message = "is required with REDIS_URL when DOMAIN_MAP is set and there is no \
             top-level CLIENT_ID_SECRET: it seals the pair state every relay shares";
        l.problem(&STATE_SECRET, "", message);
    }

    let demo = l
        .optional(&DEMO, |l, raw, source| l.bool(&DEMO, raw, source))
        .map(|v| v.unwrap_or(false));

    let (outbound_token, outbound_upstreams, domain_map) = outbound_and_domains(&mut l);

    let limits = limits(&mut l);

    check_unknown_keys(&mut l);
    let server_conf = server_conf(&mut l, upstream_ca_file.as_ref().and_then(|p| p.as_ref()));

    let config = (|| {
        Some(Config {
            upstream: upstream?.unwrap_or_default(),
            cors_origins: cors_origins?.unwrap_or_default(),
            client_id_secret: client_id_secret?.map_or_else(random_secret, Some)?,
            client_id_previous_secrets: client_id_previous_secrets?,
            aws_region: aws_region?,
            redis_url: redis_url?,
            redis_cluster: redis_cluster?,
            redis_timeout_ms: redis_timeout_ms?,
            redis_ca_file: redis_ca_file?,
            state_secret: state_secret?,
            host: host?,
            port: port?,
            metrics_port: metrics_port?,
            debug: debug?,
            pass_through_routes: pass_through_routes?,
            mte_routes: mte_routes?,
            cors_methods: cors_methods?,
            headers: headers?,
            max_pool_size: max_pool_size?,
            log_format: log_format?,
            upstream_ca_file: upstream_ca_file?,
            demo: demo?,
            outbound_token: outbound_token?,
            outbound_upstreams: outbound_upstreams?,
            domain_map: domain_map?,
            limits: limits?,
        })
    })();
    match (config, server_conf) {
        (Some(config), Some(server_conf)) if l.problems.is_empty() => Ok(Loaded {
            config,
            server_conf,
            warnings: l.warnings,
            file: src.file.as_ref().map(|(p, _)| p.clone()),
        }),
        _ => Err(ConfigErrors(l.problems)),
    }
}

/// A random secret for a top-level `CLIENT_ID_SECRET` left unset beside a `DOMAIN_MAP` (the
/// top-level signer then serves no request: every host is a site or refused).
fn random_secret() -> Option<Secret> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).ok()?;
    Some(Secret(bytes.iter().map(|b| format!("{b:02x}")).collect()))
}

/// `OUTBOUND_TOKEN`, `OUTBOUND_UPSTREAMS` (required with the token) and `DOMAIN_MAP` (JSON in
/// the environment, a mapping in YAML; problems are named `domainMap.<host>.<field>`).
#[allow(clippy::type_complexity)]
fn outbound_and_domains(
    l: &mut Loader<'_>,
) -> (
    Option<Option<Secret>>,
    Option<Vec<UpstreamSpec>>,
    Option<Option<Vec<crate::domains::DomainConfig>>>,
) {
    let token = l.optional(&OUTBOUND_TOKEN, |l, raw, source| {
        let s = l.string(&OUTBOUND_TOKEN, raw, source)?;
        if s.chars().count() < MIN_SECRET_LEN {
            l.warnings.push(format!(
                "warning: outboundToken (env OUTBOUND_TOKEN) is shorter than {MIN_SECRET_LEN} characters; use a long random value"
            ));
        }
        Some(Secret(s))
    });
    let upstreams = l
        .optional(&OUTBOUND_UPSTREAMS, |l, raw, source| {
            let items = l.list(&OUTBOUND_UPSTREAMS, raw, source)?;
            match parse_upstreams(&items.join(",")) {
                Ok(v) => Some(v),
                Err(e) => {
                    l.problem(&OUTBOUND_UPSTREAMS, source, e);
                    None
                }
            }
        })
        .map(Option::unwrap_or_default);
    if matches!(token, Some(Some(_))) && matches!(&upstreams, Some(v) if v.is_empty()) {
        let message =
            "must list the remote relays (comma-separated origins) when OUTBOUND_TOKEN is set";
        l.problem(&OUTBOUND_UPSTREAMS, "", message);
    }
    let domains = l.optional(&DOMAIN_MAP, |l, raw, source| {
        let value = match raw {
            Raw::Yaml(Value::String(s)) | Raw::Env(s) => match serde_yaml::from_str::<Value>(&s) {
                Ok(v) => v,
                Err(e) => {
                    l.problem(&DOMAIN_MAP, source, format!("is not valid JSON: {e}"));
                    return None;
                }
            },
            Raw::Yaml(v) => v,
        };
        match crate::domains::parse(&value) {
            Ok(v) => Some(v),
            Err(problems) => {
                for (path, message) in problems {
                    let key = if path.is_empty() {
                        DOMAIN_MAP.key.to_owned()
                    } else {
                        format!("{}.{path}", DOMAIN_MAP.key)
                    };
                    l.problems.push(ConfigProblem {
                        key,
                        env: DOMAIN_MAP.env,
                        source: source.into(),
                        message,
                    });
                }
                None
            }
        }
    });
    (token, upstreams, domains)
}

/// The edge limits ([`crate::limits::Limits`]): sizes in bytes, timeouts in milliseconds,
/// pairing rates per second (0 = unlimited).
fn limits(l: &mut Loader<'_>) -> Option<crate::limits::Limits> {
    use crate::limits::Limits;
    let d = Limits::default();
    let bytes = |l: &mut Loader<'_>, f: &Field, min: usize, default: usize| {
        l.optional(f, |l, raw, source| {
            l.number::<usize>(f, raw, source, min, 1 << 20)
        })
        .map(|v| v.unwrap_or(default))
    };
    let max_header_bytes = bytes(l, &MAX_HEADER_BYTES, 1024, d.max_header_bytes);
    let max_url_bytes = bytes(l, &MAX_URL_BYTES, 256, d.max_url_bytes);
    let ms = |l: &mut Loader<'_>, f: &Field, default: std::time::Duration| {
        l.optional(f, |l, raw, source| {
            l.number::<u64>(f, raw, source, 1, 3_600_000)
        })
        .map(|v| v.map_or(default, std::time::Duration::from_millis))
    };
    let header_timeout = ms(l, &HEADER_TIMEOUT_MS, d.header_timeout);
    let client_timeout = ms(l, &CLIENT_TIMEOUT_MS, d.client_timeout);
    let upstream_connect_timeout = ms(l, &UPSTREAM_CONNECT_TIMEOUT_MS, d.upstream_connect_timeout);
    let upstream_read_timeout = ms(l, &UPSTREAM_READ_TIMEOUT_MS, d.upstream_read_timeout);
    let rate = |l: &mut Loader<'_>, f: &Field, default: u32| {
        l.optional(f, |l, raw, source| {
            l.number::<u32>(f, raw, source, 0, 1_000_000)
        })
        .map(|v| v.unwrap_or(default))
    };
    let pair_rate_per_ip = rate(l, &PAIR_RATE_PER_IP, d.pair_rate_per_ip);
    let pair_rate_per_client = rate(l, &PAIR_RATE_PER_CLIENT, d.pair_rate_per_client);
    Some(Limits {
        max_header_bytes: max_header_bytes?,
        max_url_bytes: max_url_bytes?,
        header_timeout: header_timeout?,
        client_timeout: client_timeout?,
        upstream_connect_timeout: upstream_connect_timeout?,
        upstream_read_timeout: upstream_read_timeout?,
        pair_rate_per_ip: pair_rate_per_ip?,
        pair_rate_per_client: pair_rate_per_client?,
    })
}

/// A readable PEM file holding at least one certificate.
fn pem_file(l: &mut Loader<'_>, f: &Field, raw: Raw, source: &str) -> Option<PathBuf> {
    let s = l.string(f, raw, source)?;
    match std::fs::read_to_string(&s) {
        Ok(text) if text.contains("-----BEGIN CERTIFICATE-----") => Some(PathBuf::from(s)),
        Ok(_) => {
            l.problem(f, source, format!("{s:?} holds no PEM certificate"));
            None
        }
        Err(e) => {
            l.problem(f, source, format!("{s:?} cannot be read: {e}"));
            None
        }
    }
}

fn routes(l: &mut Loader<'_>, f: &Field, raw: Raw, source: &str) -> Option<Vec<RoutePattern>> {
    let items = l.list(f, raw, source)?;
    let mut out = Vec::new();
    for item in items {
        match RoutePattern::parse(&item) {
            Ok(p) => out.push(p),
            Err(e) => l.problem(f, source, format!("{item:?}: {e}")),
        }
    }
    Some(out)
}

fn headers(l: &mut Loader<'_>, raw: Raw, source: &str) -> Option<Vec<(HeaderName, HeaderValue)>> {
    let f = &HEADERS;
    let pairs: Vec<(String, String)> = match raw {
        Raw::Env(s) | Raw::Yaml(Value::String(s)) => {
            match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&s) {
                Ok(map) => {
                    let mut out = Vec::new();
                    for (k, v) in map {
                        match v {
                            serde_json::Value::String(s) => out.push((k, s)),
                            serde_json::Value::Number(n) => out.push((k, n.to_string())),
                            serde_json::Value::Bool(b) => out.push((k, b.to_string())),
                            _ => l.problem(
                                f,
                                source,
                                format!("header {k:?} must have a string value"),
                            ),
                        }
                    }
                    out
                }
                Err(e) => {
                    l.problem(
                        f,
                        source,
                        format!(
                            r#"must be a JSON object such as {{"x-service-name":"mte-relay"}}: {e}"#
                        ),
                    );
                    return None;
                }
            }
        }
        Raw::Yaml(Value::Mapping(m)) => {
            let mut out = Vec::new();
            for (k, v) in m {
                let name = match k {
                    Value::String(s) => s,
                    _ => {
                        l.problem(f, source, "header names must be strings");
                        continue;
                    }
                };
                match v {
                    Value::String(s) => out.push((name, s)),
                    Value::Number(n) => out.push((name, n.to_string())),
                    Value::Bool(b) => out.push((name, b.to_string())),
                    _ => l.problem(
                        f,
                        source,
                        format!("header {name:?} must have a string value"),
                    ),
                }
            }
            out
        }
        Raw::Yaml(_) => {
            l.problem(f, source, "must be a mapping of header names to values");
            return None;
        }
    };
    let mut out = Vec::new();
    for (k, v) in pairs {
        let name = match HeaderName::from_bytes(k.as_bytes()) {
            Ok(n) => n,
            Err(_) => {
                l.problem(f, source, format!("{k:?} is not a valid header name"));
                continue;
            }
        };
        if FORBIDDEN_EXTRA_HEADERS.contains(&name.as_str())
            || name.as_str().starts_with("x-mte-relay")
        {
            l.problem(f, source, format!("header {k:?} cannot be set by HEADERS"));
            continue;
        }
        match HeaderValue::from_str(&v) {
            Ok(val) => out.push((name, val)),
            Err(_) => l.problem(f, source, format!("header {k:?} has an invalid value")),
        }
    }
    Some(out)
}

/// `scheme://host[:port]`, lower-cased, without a trailing slash.
pub(crate) fn normalize_origin(s: &str) -> Result<String, &'static str> {
    if s == "*" {
        return Err("wildcard origins are not allowed; list each origin");
    }
    let s = s.strip_suffix('/').unwrap_or(s);
    let uri: http::Uri = s
        .parse()
        .map_err(|_| "is not an origin such as https://www.example.com")?;
    let scheme = uri.scheme_str().map(str::to_ascii_lowercase);
    if !matches!(scheme.as_deref(), Some("http") | Some("https")) {
        return Err("must start with http:// or https://");
    }
    if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
        return Err("must be an origin (scheme://host[:port]) without a path");
    }
    let authority = uri
        .authority()
        .ok_or("is not an origin such as https://www.example.com")?;
    if authority.as_str().contains('@') {
        return Err("must not contain user info");
    }
    Ok(format!(
        "{}://{}",
        scheme.unwrap_or_default(),
        authority.as_str().to_ascii_lowercase()
    ))
}

fn is_aws_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn pingora_keys() -> Vec<String> {
    match serde_yaml::to_value(ServerConf::default()) {
        Ok(Value::Mapping(m)) => m
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

fn check_unknown_keys(l: &mut Loader<'_>) {
    let Some((_, map)) = &l.src.file else { return };
    let pingora = pingora_keys();
    let source = l.src.file_name();
    for k in map.keys() {
        let Some(k) = k.as_str() else {
            l.problems.push(ConfigProblem {
                key: format!("{k:?}"),
                env: "",
                source: source.clone(),
                message: "keys must be strings".into(),
            });
            continue;
        };
        let ours = FIELDS.iter().any(|f| f.key == k || f.aliases.contains(&k));
        if ours || pingora.iter().any(|p| p == k) {
            continue;
        }
        let hint = FIELDS
            .iter()
            .find(|f| squash(f.key) == squash(k))
            .map(|f| format!("; did you mean `{}`?", f.key))
            .unwrap_or_default();
        l.problems.push(ConfigProblem {
            key: k.to_owned(),
            env: "",
            source: source.clone(),
            message: format!("unknown key (neither a pqrelay nor a Pingora setting){hint}"),
        });
    }
}

/// Pingora's `ServerConf`: our defaults (work stealing off), then the file's snake_case keys,
/// then PID_FILE, UPGRADE_SOCK and THREADS from the environment.
fn server_conf(l: &mut Loader<'_>, ca_file: Option<&PathBuf>) -> Option<ServerConf> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut m = Mapping::new();
    let mut set = |k: &str, v: Value| {
        m.insert(Value::String(k.into()), v);
    };
    set("version", Value::from(1));
    set("threads", Value::from(threads as u64));
    // One single-threaded runtime per thread: a connection's task never moves between threads,
    // which costs ~12% less CPU per request than work stealing (docs/PERFORMANCE.md). SIGINT
    // is handled by `lifecycle::Signals` because Pingora's fast shutdown is unsafe with it.
    set("work_stealing", Value::from(false));
    set("pid_file", Value::from("/tmp/pqrelay.pid"));
    set("upgrade_sock", Value::from("/tmp/pqrelay_upgrade.sock"));
    set(
        "grace_period_seconds",
        Value::from(DEFAULT_GRACE_PERIOD_SECONDS),
    );
    set("graceful_shutdown_timeout_seconds", Value::from(5u64));
    if let Some(ca) = ca_file {
        set("ca_file", Value::from(ca.display().to_string()));
    }
    let pingora = pingora_keys();
    if let Some((_, file)) = &l.src.file {
        for (k, v) in file {
            if k.as_str().is_some_and(|k| pingora.iter().any(|p| p == k)) {
                m.insert(k.clone(), v.clone());
            }
        }
    }
    for (env, key) in PINGORA_ENV {
        if let Some(v) = l.src.env.get(*env).filter(|v| !v.trim().is_empty()) {
            let value = if *key == "threads" {
                match v.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Value::from(n),
                    _ => {
                        l.problems.push(ConfigProblem {
                            key: (*key).into(),
                            env,
                            source: "environment".into(),
                            message: format!("{v:?} is not a positive whole number"),
                        });
                        continue;
                    }
                }
            } else {
                Value::from(v.trim())
            };
            m.insert(Value::String((*key).into()), value);
        }
    }
    let source = if l.src.file.is_some() {
        l.src.file_name()
    } else {
        "defaults".into()
    };
    match serde_yaml::from_value::<ServerConf>(Value::Mapping(m)).map(ServerConf::validate) {
        Ok(Ok(conf)) => Some(conf),
        Ok(Err(e)) => {
            l.problems.push(ConfigProblem {
                key: "pingora".into(),
                env: "",
                source,
                message: e.to_string(),
            });
            None
        }
        Err(e) => {
            l.problems.push(ConfigProblem {
                key: "pingora".into(),
                env: "",
                source,
                message: format!("invalid Pingora server setting: {e}"),
            });
            None
        }
    }
}

impl Config {
    /// The effective configuration as YAML, secrets masked (for `pqrelay check-config`).
    pub fn to_masked_yaml(&self, server: &ServerConf) -> String {
        let routes =
            |r: &[RoutePattern]| -> Vec<String> { r.iter().map(|p| p.to_string()).collect() };
        let headers: serde_json::Map<String, serde_json::Value> = self
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    serde_json::Value::from(v.to_str().unwrap_or("<binary>")),
                )
            })
            .collect();
        let ours = serde_json::json!({
            "upstream": self.upstream.iter().map(|u| u.to_string()).collect::<Vec<_>>(),
            "corsOrigins": self.cors_origins,
            "clientIdSecret": self.client_id_secret.masked(),
            "clientIdPreviousSecrets": self.client_id_previous_secrets.iter().map(Secret::masked).collect::<Vec<_>>(),
            "awsRegion": self.aws_region,
            "redisURL": self.redis_url.as_ref().map(|u| mask_url(u.expose())),
            "redisCluster": self.redis_cluster,
            "redisTimeoutMs": self.redis_timeout_ms,
            "redisCaFile": self.redis_ca_file.as_ref().map(|p| p.display().to_string()),
            "stateSecret": self.state_secret.as_ref().map(Secret::masked),
            "host": self.host,
            "port": self.port,
            "metricsPort": self.metrics_port,
            "debug": self.debug,
            "passThroughRoutes": routes(&self.pass_through_routes),
            "mteRoutes": self.mte_routes.as_deref().map(routes),
            "corsMethods": self.cors_methods,
            "headers": headers,
            "maxPoolSize": self.max_pool_size,
            "logFormat": match self.log_format { LogFormat::Text => "text", LogFormat::Json => "json" },
            "upstreamCaFile": self.upstream_ca_file.as_ref().map(|p| p.display().to_string()),
            "demo": self.demo,
            "outboundToken": self.outbound_token.as_ref().map(Secret::masked),
            "outboundUpstreams": self.outbound_upstreams.iter().map(|u| u.to_string()).collect::<Vec<_>>(),
            "domainMap": self.domain_map.as_ref().map(|m| m.iter().map(|d| (d.host.clone(), serde_json::json!({
                "upstream": d.upstream.iter().map(|u| u.to_string()).collect::<Vec<_>>(),
                "corsOrigins": d.cors_origins,
                "clientIdSecret": d.client_id_secret.masked(),
            }))).collect::<serde_json::Map<_, _>>()),
            "maxHeaderBytes": self.limits.max_header_bytes,
            "maxUrlBytes": self.limits.max_url_bytes,
            "headerTimeoutMs": self.limits.header_timeout.as_millis() as u64,
            "clientTimeoutMs": self.limits.client_timeout.as_millis() as u64,
            "upstreamConnectTimeoutMs": self.limits.upstream_connect_timeout.as_millis() as u64,
            "upstreamReadTimeoutMs": self.limits.upstream_read_timeout.as_millis() as u64,
            "pairRatePerIp": self.limits.pair_rate_per_ip,
            "pairRatePerClient": self.limits.pair_rate_per_client,
        });
        let mut out = serde_yaml::to_string(&ours).unwrap_or_default();
        out.push_str("# Pingora server settings (snake_case keys)\n");
        if let Ok(Value::Mapping(m)) = serde_yaml::to_value(server) {
            let keep = [
                "threads",
                "pid_file",
                "upgrade_sock",
                "grace_period_seconds",
                "graceful_shutdown_timeout_seconds",
                "upstream_keepalive_pool_size",
                "ca_file",
                "daemon",
                "error_log",
                "work_stealing",
            ];
            let mut shown = Mapping::new();
            for k in keep {
                if let Some(v) = m.get(k) {
                    shown.insert(Value::from(k), v.clone());
                }
            }
            out.push_str(&serde_yaml::to_string(&shown).unwrap_or_default());
        }
        out
    }
}

/// Hides the password of a URL such as `redis://user:pass@host:6379`.
fn mask_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***@{}", &url[..s + 3], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const MINIMAL: &[(&str, &str)] = &[
        ("UPSTREAM", "https://api.my-company.com"),
        ("CLIENT_ID_SECRET", "2DkV4DDabehO8cifDktdF9elKJL0CKrk"),
        (
            "CORS_ORIGINS",
            "https://www.my-company.com,https://dashboard.my-company.com",
        ),
    ];

    #[test]
    fn minimal_env_loads_with_defaults() {
        let src = Sources::new(env(MINIMAL), None).unwrap();
        let c = load(&src).unwrap().config;
        assert_eq!(c.port, 8080);
        assert!(!c.debug);
        assert_eq!(c.max_pool_size, 25);
        assert_eq!(
            c.cors_methods,
            ["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD"]
        );
        assert!(c.mte_routes.is_none());
    }

    #[test]
    fn missing_required_values_name_field_and_variable() {
        let src = Sources::new(HashMap::new(), None).unwrap();
        let e = load(&src).unwrap_err().to_string();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 3, "{e}");
        assert!(lines[0].contains("upstream") && lines[0].contains("UPSTREAM"));
        assert!(lines[1].contains("corsOrigins") && lines[1].contains("CORS_ORIGINS"));
        assert!(lines[2].contains("clientIdSecret") && lines[2].contains("CLIENT_ID_SECRET"));
    }

    #[test]
    fn invalid_values_are_each_reported() {
        let mut e = env(MINIMAL);
        e.insert("PORT".into(), "http".into());
        e.insert("DEBUG".into(), "maybe".into());
        e.insert("HEADERS".into(), "not json".into());
        let src = Sources::new(e, None).unwrap();
        let err = load(&src).unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
    }

    #[test]
    fn short_secret_is_a_warning() {
        let mut e = env(MINIMAL);
        e.insert("CLIENT_ID_SECRET".into(), "short".into());
        let loaded = load(&Sources::new(e, None).unwrap()).unwrap();
        assert_eq!(loaded.warnings.len(), 1);
        assert!(!loaded.warnings[0].contains("short\""));
    }

    #[test]
    fn origins_are_normalised_and_wildcards_rejected() {
        assert_eq!(
            normalize_origin("https://WWW.Example.com/").unwrap(),
            "https://www.example.com"
        );
        assert!(normalize_origin("*").is_err());
        assert!(normalize_origin("https://x.com/path").is_err());
        assert!(normalize_origin("ftp://x.com").is_err());
    }

    #[test]
    fn regions_and_masking() {
        assert!(is_aws_region("us-east-1"));
        assert!(is_aws_region("ap-southeast-2"));
        assert!(!is_aws_region("useast1"));
        assert_eq!(mask_url("redis://u:p@h:6379"), "redis://***@h:6379");
        assert_eq!(mask_url("redis://h:6379"), "redis://h:6379");
    }
}
