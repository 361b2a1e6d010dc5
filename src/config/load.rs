//! Reading the configuration: environment variables over a YAML file over defaults, and the
//! entries of `DOMAIN_MAP`, all through the one field table ([`super::fields`]) and the same
//! parsers, so a site's `upstream` is read exactly like the top-level `UPSTREAM`.
//!
//! Every problem becomes one [`ConfigProblem`] that names the YAML key (for a site
//! `domainMap.<host>.<key>`), the environment variable, where the value came from and what is
//! wrong; [`load`] reports all of them at once.

use serde_yaml::Value;

use super::fields::{self as f, Field, Need, Scope, FIELDS};
use super::limits::Limits;
use super::loader::Loader;
use super::sources::{ConfigErrors, ConfigProblem, Origin, Raw, Sources};
use super::values::{
    is_aws_region, normalize_host, parse_remote_relays, parse_upstreams, LogFormat, Secret,
    TrustedProxies,
};
use super::{Config, Loaded, SiteConfig};

/// Default listening port.
pub const DEFAULT_PORT: u16 = 8080;
/// Default `MAX_POOL_SIZE`.
pub const DEFAULT_MAX_POOL_SIZE: usize = 25;
/// Default `REDIS_TIMEOUT_MS`.
pub const DEFAULT_REDIS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
/// Default `CORS_METHODS`.
pub const DEFAULT_CORS_METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE"];
/// Methods always allowed by CORS, whatever `CORS_METHODS` says.
pub const ALWAYS_ALLOWED_METHODS: &[&str] = &["OPTIONS", "HEAD"];

impl Loader<'_> {
    /// Reads one site's settings from `origin`. At the top level (`inherit` is `None`) the
    /// settings of scope `site (own)` are required unless `DOMAIN_MAP` is set; in a `DOMAIN_MAP`
    /// entry they are required, and settings of scope `site` default to `inherit`'s.
    fn site(&mut self, origin: &Origin<'_>, inherit: Option<&SiteConfig>) -> Option<SiteConfig> {
        let per_site = matches!(origin, Origin::Top(src) if src.get(&f::DOMAIN_MAP).is_some());
        let own = |field: &Field| match field.need {
            Need::Required => true,
            Need::RequiredUnlessDomainMap => inherit.is_some() || !per_site,
            Need::Optional => false,
        };
        let required = own(&f::UPSTREAM);
        let upstream = self.read(origin, &f::UPSTREAM, required, |l, raw, source| {
            let text = l.string(&f::UPSTREAM, raw, source)?;
            parse_upstreams(&text)
                .map_err(|e| l.problem(&f::UPSTREAM, source, e))
                .ok()
        });
        let required = own(&f::CORS_ORIGINS);
        let cors_origins = self.read(origin, &f::CORS_ORIGINS, required, |l, raw, source| {
            l.origins(&f::CORS_ORIGINS, raw, source)
        });
        let required = own(&f::CLIENT_ID_SECRET);
        let client_id_secret =
            self.read(origin, &f::CLIENT_ID_SECRET, required, |l, raw, source| {
                l.secret(&f::CLIENT_ID_SECRET, raw, source)
            });
        let previous = self.read(
            origin,
            &f::CLIENT_ID_PREVIOUS_SECRETS,
            false,
            |l, raw, s| {
                let items = l.list(&f::CLIENT_ID_PREVIOUS_SECRETS, raw, s)?;
                Some(items.into_iter().map(Secret::new).collect::<Vec<_>>())
            },
        );
        let pass_through = self.read(origin, &f::PASS_THROUGH_ROUTES, false, |l, raw, s| {
            l.routes(&f::PASS_THROUGH_ROUTES, raw, s)
        });
        let mte_routes = self.read(origin, &f::MTE_ROUTES, false, |l, raw, s| {
            l.routes(&f::MTE_ROUTES, raw, s)
        });
        let headers = self.read(origin, &f::HEADERS, false, |l, raw, s| {
            l.headers(&f::HEADERS, raw, s)
        });
        let relay_keys = self.read(origin, &f::RELAY_KEYS, false, |l, raw, s| {
            l.relay_keys(&f::RELAY_KEYS, raw, s)
        });
        let client_id_secret = match client_id_secret? {
            Some(s) => s,
            // Unset beside a DOMAIN_MAP: the top-level signer then serves no request (every
            // host is a site or refused), so a random secret will do.
            None => random_secret()?,
        };
        let site = SiteConfig {
            upstream: upstream?.unwrap_or_default(),
            cors_origins: cors_origins?.unwrap_or_default(),
            client_id_secret,
            client_id_previous_secrets: previous?.unwrap_or_default(),
            pass_through_routes: pass_through?
                .or_else(|| inherit.map(|s| s.pass_through_routes.clone()))
                .unwrap_or_default(),
            mte_routes: mte_routes?.or_else(|| inherit.and_then(|s| s.mte_routes.clone())),
            headers: headers?
                .or_else(|| inherit.map(|s| s.headers.clone()))
                .unwrap_or_default(),
            relay_keys: relay_keys?.unwrap_or_default(),
        };
        if let (Err(e), derived) = site.relay_key_set() {
            let field = match derived {
                true => &f::CLIENT_ID_PREVIOUS_SECRETS,
                false => &f::RELAY_KEYS,
            };
            self.problem(field, "", format!("the relay keys cannot be used: {e}"));
            return None;
        }
        Some(site)
    }

    /// `DOMAIN_MAP`: JSON in the environment, a mapping in YAML; every entry read by
    /// [`Loader::site`] with the top-level site to inherit from.
    fn domain_map(
        &mut self,
        top: Option<&SiteConfig>,
    ) -> Option<Option<Vec<(String, SiteConfig)>>> {
        let field = &f::DOMAIN_MAP;
        let Some((raw, source)) = self.src.get(field) else {
            return Some(None);
        };
        let value = match raw {
            Raw::Yaml(Value::String(s)) | Raw::Env(s) => match serde_yaml::from_str::<Value>(&s) {
                Ok(v) => v,
                Err(e) => {
                    self.problem(field, &source, format!("is not valid JSON: {e}"));
                    return None;
                }
            },
            Raw::Yaml(v) => v,
        };
        let Value::Mapping(map) = value else {
            let message = "must be a mapping of host names to site settings";
            self.problem(field, &source, message);
            return None;
        };
        if map.is_empty() {
            self.problem(field, &source, "must name at least one host");
            return None;
        }
        let failed = self.problems.len();
        let mut sites: Vec<(String, SiteConfig)> = Vec::new();
        for (k, v) in &map {
            let raw_host = k.as_str().unwrap_or_default();
            let Some(host) = normalize_host(raw_host) else {
                let problem = ConfigProblem {
                    key: format!("{}.{raw_host}", field.key),
                    env: field.env,
                    source: source.clone(),
                    message: "is not a host name (write it without scheme, port or path)".into(),
                };
                self.problems.push(problem);
                continue;
            };
            let entry_problem = |l: &mut Self, what: String, message: String| {
                l.problems.push(ConfigProblem {
                    key: format!("{}.{host}{what}", field.key),
                    env: field.env,
                    source: source.clone(),
                    message,
                });
            };
            if sites.iter().any(|(h, _)| *h == host) {
                entry_problem(self, String::new(), "is listed twice".into());
                continue;
            }
            let Value::Mapping(entry) = v else {
                entry_problem(self, String::new(), "must be a mapping of settings".into());
                continue;
            };
            let allowed: Vec<&str> = FIELDS
                .iter()
                .filter(|f| f.scope != Scope::Relay)
                .map(|f| f.key)
                .collect();
            for key in entry.keys() {
                let name = key.as_str().unwrap_or_default();
                if !f::by_key(name).is_some_and(|f| f.scope != Scope::Relay) {
                    let message = format!("unknown key (a site takes {})", allowed.join(", "));
                    entry_problem(self, format!(".{name}"), message);
                }
            }
            self.site = Some(host.clone());
            let origin = Origin::Entry {
                map: entry,
                source: &source,
            };
            let site = self.site(&origin, Some(top.unwrap_or(&SiteConfig::default())));
            self.site = None;
            if let Some(site) = site {
                sites.push((host, site));
            }
        }
        for (i, (host, site)) in sites.iter().enumerate() {
            if let Some((other, _)) = sites[..i]
                .iter()
                .find(|(_, s)| s.client_id_secret == site.client_id_secret)
            {
                self.problems.push(ConfigProblem {
                    key: format!("{}.{host}.{}", field.key, f::CLIENT_ID_SECRET.key),
                    env: field.env,
                    source: source.clone(),
                    message: format!(
                        "must differ from the secret of {other} (client ids must not be valid on both)"
                    ),
                });
            }
        }
        (self.problems.len() == failed).then_some(Some(sites))
    }
}

/// Loads and validates the configuration. All problems are reported together.
pub fn load(src: &Sources) -> Result<Loaded, ConfigErrors> {
    let mut l = Loader {
        src,
        problems: Vec::new(),
        warnings: Vec::new(),
        site: None,
    };
    let site = l.site(&Origin::Top(src), None);
    let domain_map = l.domain_map(site.as_ref());

    let aws_region = l.optional(&f::AWS_REGION, |l, raw, source| {
        let s = l.string(&f::AWS_REGION, raw, source)?;
        if is_aws_region(&s) {
            return Some(s);
        }
        let message = format!("{s:?} is not an AWS region name (for example us-east-1)");
        l.problem(&f::AWS_REGION, source, message);
        None
    });
    let redis_url = l.optional(&f::REDIS_URL, |l, raw, source| {
        let s = l.string(&f::REDIS_URL, raw, source)?;
        let schemes = ["redis://", "rediss://", "redis+unix://", "unix://"];
        if schemes.iter().any(|p| s.starts_with(p)) {
            return Some(Secret::new(s));
        }
        let message = "must start with redis://, rediss:// or unix://";
        l.problem(&f::REDIS_URL, source, message);
        None
    });
    let host = l.optional(&f::HOST, |l, raw, source| {
        let s = l.string(&f::HOST, raw, source)?;
        if s.parse::<std::net::IpAddr>().is_ok() {
            return Some(s);
        }
        let message = format!("{s:?} is not an IP address (for example 0.0.0.0)");
        l.problem(&f::HOST, source, message);
        None
    });
    let port = l.optional(&f::PORT, |l, raw, source| {
        l.number::<u16>(&f::PORT, raw, source, (1, u16::MAX))
    });
    let port = port.map(|p| p.unwrap_or(DEFAULT_PORT));
    let metrics_port = l.optional(&f::METRICS_PORT, |l, raw, source| {
        let m = l.number::<u16>(&f::METRICS_PORT, raw, source, (1, u16::MAX))?;
        if port == Some(m) {
            let message = format!("{m} is also the relay's PORT; metrics need a port of their own");
            l.problem(&f::METRICS_PORT, source, message);
            return None;
        }
        Some(m)
    });
    let debug = l.optional(&f::DEBUG, |l, raw, s| l.bool(&f::DEBUG, raw, s));
    let cors_methods = l.optional(&f::CORS_METHODS, |l, raw, source| {
        let mut out = Vec::new();
        for m in l.list(&f::CORS_METHODS, raw, source)? {
            let up = m.to_ascii_uppercase();
            if http::Method::from_bytes(up.as_bytes()).is_err() {
                l.problem(
                    &f::CORS_METHODS,
                    source,
                    format!("{m:?} is not an HTTP method"),
                );
            } else if !out.contains(&up) {
                out.push(up);
            }
        }
        Some(out)
    });
    let max_pool_size = l.optional(&f::MAX_POOL_SIZE, |l, raw, source| {
        l.number::<usize>(&f::MAX_POOL_SIZE, raw, source, (1, 255))
    });
    let log_format = l.optional(&f::LOG_FORMAT, |l, raw, source| {
        let s = l.string(&f::LOG_FORMAT, raw, source)?;
        match s.to_ascii_lowercase().as_str() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => {
                let message = format!("{s:?} is not a log format (use text or json)");
                l.problem(&f::LOG_FORMAT, source, message);
                None
            }
        }
    });
    let upstream_ca_file = l.optional(&f::UPSTREAM_CA_FILE, |l, raw, s| {
        l.pem_file(&f::UPSTREAM_CA_FILE, raw, s)
    });
    let redis_cluster = l.optional(&f::REDIS_CLUSTER, |l, raw, s| {
        l.bool(&f::REDIS_CLUSTER, raw, s)
    });
    let redis_timeout_ms = l.optional(&f::REDIS_TIMEOUT_MS, |l, raw, source| {
        l.number::<u64>(&f::REDIS_TIMEOUT_MS, raw, source, (1, 60_000))
    });
    let redis_ca_file = l.optional(&f::REDIS_CA_FILE, |l, raw, s| {
        l.pem_file(&f::REDIS_CA_FILE, raw, s)
    });
    let state_secret = l.optional(&f::STATE_SECRET, |l, raw, s| {
        l.secret(&f::STATE_SECRET, raw, s)
    });
    let top_secret_set = src.get(&f::CLIENT_ID_SECRET).is_some();
    if !top_secret_set && matches!(redis_url, Some(Some(_))) && matches!(state_secret, Some(None)) {
        let message = "is required with REDIS_URL when DOMAIN_MAP is set and there is no \
             top-level CLIENT_ID_SECRET: it seals the pair state every relay shares";
        l.problem(&f::STATE_SECRET, "", message);
    }
    let demo = l.optional(&f::DEMO, |l, raw, s| l.bool(&f::DEMO, raw, s));
    let outbound_token = l.optional(&f::OUTBOUND_TOKEN, |l, raw, s| {
        l.secret(&f::OUTBOUND_TOKEN, raw, s)
    });
    let outbound_upstreams = l.optional(&f::OUTBOUND_UPSTREAMS, |l, raw, source| {
        let items = l.list(&f::OUTBOUND_UPSTREAMS, raw, source)?;
        parse_remote_relays(&items)
            .map_err(|e| l.problem(&f::OUTBOUND_UPSTREAMS, source, e))
            .ok()
    });
    let plain_headers = l.optional(&f::PLAIN_HEADERS, |l, raw, source| {
        l.header_names(&f::PLAIN_HEADERS, raw, source)
    });
    if matches!(outbound_token, Some(Some(_))) && matches!(&outbound_upstreams, Some(None)) {
        let message =
            "must list the remote relays (comma-separated origins) when OUTBOUND_TOKEN is set";
        l.problem(&f::OUTBOUND_UPSTREAMS, "", message);
    }
    let trusted_proxies = l.optional(&f::TRUSTED_PROXIES, |l, raw, source| {
        let items = l.list(&f::TRUSTED_PROXIES, raw, source)?;
        TrustedProxies::parse(&items)
            .map_err(|e| l.problem(&f::TRUSTED_PROXIES, source, e))
            .ok()
    });
    let proxy_protocol = l.optional(&f::PROXY_PROTOCOL, |l, raw, s| {
        l.bool(&f::PROXY_PROTOCOL, raw, s)
    });
    let public_hosts = l.optional(&f::PUBLIC_HOSTS, |l, raw, source| {
        let mut hosts = Vec::new();
        for item in l.list(&f::PUBLIC_HOSTS, raw, source)? {
            match normalize_host(&item) {
                Some(h) => hosts.push(h),
                None => {
                    let message =
                        format!("{item:?} is not a host name (write it without scheme or path)");
                    l.problem(&f::PUBLIC_HOSTS, source, message);
                }
            }
        }
        Some(hosts)
    });
    let limits = limits(&mut l);
    check_unknown_keys(&mut l);
    let ca_file = upstream_ca_file.as_ref().and_then(|p| p.as_ref());
    let server_conf = super::server::server_conf(src, ca_file)
        .map_err(|problems| l.problems.extend(problems))
        .ok();

    let config = (|| {
        Some(Config {
            site: site?,
            domain_map: domain_map?,
            aws_region: aws_region?,
            redis_url: redis_url?,
            redis_cluster: redis_cluster?.unwrap_or(false),
            redis_timeout: redis_timeout_ms?
                .map_or(DEFAULT_REDIS_TIMEOUT, std::time::Duration::from_millis),
            redis_ca_file: redis_ca_file?,
            state_secret: state_secret?,
            host: host?.unwrap_or_else(|| "0.0.0.0".into()),
            port: port?,
            metrics_port: metrics_port?,
            debug: debug?.unwrap_or(false),
            cors_methods: with_always_allowed(cors_methods?),
            max_pool_size: max_pool_size?.unwrap_or(DEFAULT_MAX_POOL_SIZE),
            log_format: log_format?.unwrap_or(LogFormat::Text),
            upstream_ca_file: upstream_ca_file?,
            demo: demo?.unwrap_or(false),
            outbound_token: outbound_token?,
            outbound_upstreams: outbound_upstreams?.unwrap_or_default(),
            plain_headers: plain_headers?.unwrap_or_else(|| vec![http::header::COOKIE]),
            limits: limits?,
            trusted_proxies: trusted_proxies?.unwrap_or_default(),
            proxy_protocol: proxy_protocol?.unwrap_or(false),
            public_hosts: public_hosts?.unwrap_or_default(),
        })
    })();
    match (config, server_conf) {
        (Some(config), Some(server_conf)) if l.problems.is_empty() => Ok(Loaded {
            config,
            server_conf,
            warnings: l.warnings,
            file: src.file_path(),
        }),
        _ => Err(ConfigErrors(l.problems)),
    }
}

/// `CORS_METHODS` (or its default) plus the methods always allowed.
fn with_always_allowed(methods: Option<Vec<String>>) -> Vec<String> {
    let mut methods =
        methods.unwrap_or_else(|| DEFAULT_CORS_METHODS.iter().map(|s| s.to_string()).collect());
    for m in ALWAYS_ALLOWED_METHODS {
        if !methods.iter().any(|x| x == m) {
            methods.push(m.to_string());
        }
    }
    methods
}

/// A random secret for a top-level `CLIENT_ID_SECRET` left unset beside a `DOMAIN_MAP`.
fn random_secret() -> Option<Secret> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).ok()?;
    Some(Secret::new(
        bytes.iter().map(|b| format!("{b:02x}")).collect(),
    ))
}

/// The edge limits: sizes in bytes, timeouts in milliseconds, pairing rates per second.
fn limits(l: &mut Loader<'_>) -> Option<Limits> {
    let d = Limits::default();
    let bytes = |l: &mut Loader<'_>, f: &Field, min: usize, default: usize| {
        l.optional(f, |l, raw, source| l.number(f, raw, source, (min, 1 << 20)))
            .map(|v| v.unwrap_or(default))
    };
    let ms = |l: &mut Loader<'_>, f: &Field, default: std::time::Duration| {
        l.optional(f, |l, raw, source| {
            l.number::<u64>(f, raw, source, (1, 3_600_000))
        })
        .map(|v| v.map_or(default, std::time::Duration::from_millis))
    };
    let rate = |l: &mut Loader<'_>, f: &Field, default: u32| {
        l.optional(f, |l, raw, source| l.number(f, raw, source, (0, 1_000_000)))
            .map(|v| v.unwrap_or(default))
    };
    Some(Limits {
        max_header_bytes: bytes(l, &f::MAX_HEADER_BYTES, 1024, d.max_header_bytes)?,
        max_url_bytes: bytes(l, &f::MAX_URL_BYTES, 256, d.max_url_bytes)?,
        header_timeout: ms(l, &f::HEADER_TIMEOUT_MS, d.header_timeout)?,
        client_timeout: ms(l, &f::CLIENT_TIMEOUT_MS, d.client_timeout)?,
        upstream_connect_timeout: ms(
            l,
            &f::UPSTREAM_CONNECT_TIMEOUT_MS,
            d.upstream_connect_timeout,
        )?,
        upstream_read_timeout: ms(l, &f::UPSTREAM_READ_TIMEOUT_MS, d.upstream_read_timeout)?,
        pair_rate_per_ip: rate(l, &f::PAIR_RATE_PER_IP, d.pair_rate_per_ip)?,
        pair_rate_per_client: rate(l, &f::PAIR_RATE_PER_CLIENT, d.pair_rate_per_client)?,
        pairing_concurrency: l
            .optional(&f::PAIRING_CONCURRENCY, |l, raw, source| {
                let range = (1, super::limits::MAX_PAIRING_CONCURRENCY);
                l.number(&f::PAIRING_CONCURRENCY, raw, source, range)
            })?
            .unwrap_or(d.pairing_concurrency),
    })
}

fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Every key of the file must be a pqrelay setting or a Pingora one.
fn check_unknown_keys(l: &mut Loader<'_>) {
    let Some(map) = l.src.file() else { return };
    let pingora = super::server::pingora_keys();
    let source = l.src.file_name();
    let mut problems = Vec::new();
    for k in map.keys() {
        let Some(k) = k.as_str() else {
            problems.push(ConfigProblem {
                key: format!("{k:?}"),
                env: "",
                source: source.clone(),
                message: "keys must be strings".into(),
            });
            continue;
        };
        if f::by_key(k).is_some() || pingora.iter().any(|p| p == k) {
            continue;
        }
        let hint = FIELDS
            .iter()
            .find(|f| squash(f.key) == squash(k))
            .map(|f| format!("; did you mean `{}`?", f.key))
            .unwrap_or_default();
        problems.push(ConfigProblem {
            key: k.to_owned(),
            env: "",
            source: source.clone(),
            message: format!("unknown key (neither a pqrelay nor a Pingora setting){hint}"),
        });
    }
    l.problems.extend(problems);
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

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

    fn load_env(pairs: HashMap<String, String>) -> Result<Loaded, ConfigErrors> {
        load(&Sources::new(pairs, None).unwrap())
    }

    #[test]
    fn minimal_env_loads_with_defaults() {
        let c = load_env(env(MINIMAL)).unwrap().config;
        assert_eq!(c.port, 8080);
        assert!(!c.debug);
        assert_eq!(c.max_pool_size, 25);
        assert_eq!(
            c.cors_methods,
            ["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD"]
        );
        assert!(c.site.mte_routes.is_none());
    }

    #[test]
    fn pairing_concurrency_defaults_per_cpu_and_refuses_zero() {
        let c = load_env(env(MINIMAL)).unwrap().config;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_cpu = crate::config::limits::PAIRINGS_PER_CPU;
        assert_eq!(c.limits.pairing_concurrency, per_cpu * cpus);
        let mut set = env(MINIMAL);
        set.insert("PAIRING_CONCURRENCY".into(), "3".into());
        assert_eq!(load_env(set).unwrap().config.limits.pairing_concurrency, 3);
        let mut zero = env(MINIMAL);
        zero.insert("PAIRING_CONCURRENCY".into(), "0".into());
        let e = load_env(zero).unwrap_err().to_string();
        assert!(
            e.contains("pairingConcurrency") && e.contains("PAIRING_CONCURRENCY"),
            "{e}"
        );
    }

    #[test]
    fn missing_required_values_name_field_and_variable() {
        let e = load_env(HashMap::new()).unwrap_err().to_string();
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
        let err = load_env(e).unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
    }

    #[test]
    fn client_address_settings_load_and_bad_ones_name_field_and_variable() {
        let mut e = env(MINIMAL);
        e.insert("TRUSTED_PROXIES".into(), "10.0.0.0/16, 192.0.2.1".into());
        e.insert("PROXY_PROTOCOL".into(), "true".into());
        e.insert(
            "PUBLIC_HOSTS".into(),
            "API.example.com,www.example.com:443".into(),
        );
        let c = load_env(e).unwrap().config;
        assert!(c.trusted_proxies.contains("10.0.3.4".parse().unwrap()));
        assert!(c.proxy_protocol);
        assert_eq!(c.public_hosts, ["api.example.com", "www.example.com"]);
        let c = load_env(env(MINIMAL)).unwrap().config;
        assert!(c.trusted_proxies.is_empty() && !c.proxy_protocol && c.public_hosts.is_empty());

        let mut e = env(MINIMAL);
        e.insert("TRUSTED_PROXIES".into(), "10.0.0.0/40".into());
        e.insert("PROXY_PROTOCOL".into(), "perhaps".into());
        e.insert("PUBLIC_HOSTS".into(), "https://a.example/".into());
        let err = load_env(e).unwrap_err();
        let got: Vec<(&str, &str)> = err.0.iter().map(|p| (p.key.as_str(), p.env)).collect();
        for want in [
            ("trustedProxies", "TRUSTED_PROXIES"),
            ("proxyProtocol", "PROXY_PROTOCOL"),
            ("publicHosts", "PUBLIC_HOSTS"),
        ] {
            assert!(got.contains(&want), "{want:?} missing from {got:?}");
        }
        assert!(err.to_string().contains("10.0.0.0/40"), "{err}");
    }

    #[test]
    fn short_secret_is_a_warning() {
        let mut e = env(MINIMAL);
        e.insert("CLIENT_ID_SECRET".into(), "short".into());
        let loaded = load_env(e).unwrap();
        assert_eq!(loaded.warnings.len(), 1);
        assert!(!loaded.warnings[0].contains("short\""));
    }

    const SITES: &str = r#"{
        "Shop.Example.com": {"upstream": "http://127.0.0.1:3000", "corsOrigins": ["https://shop.example.com"],
                             "clientIdSecret": "shop-secret-0123456789abcdefghijkl"},
        "blog.example.com": {"upstream": "http://127.0.0.1:3001", "corsOrigins": "https://blog.example.com",
                             "clientIdSecret": "blog-secret-0123456789abcdefghijkl",
                             "passThroughRoutes": ["/health"], "headers": {"x-site": "blog"}}
    }"#;

    #[test]
    fn domain_map_sites_inherit_site_settings_and_own_the_rest() {
        let mut e = env(&[("DOMAIN_MAP", SITES), ("MTE_ROUTES", "/api/*")]);
        e.insert("PASS_THROUGH_ROUTES".into(), "/top".into());
        let c = load_env(e).unwrap().config;
        let sites = c.domain_map.unwrap();
        assert_eq!(sites[0].0, "shop.example.com");
        assert_eq!(sites[0].1.pass_through_routes[0].to_string(), "/top");
        assert_eq!(sites[1].1.pass_through_routes[0].to_string(), "/health");
        assert_eq!(sites[1].1.headers[0].0, "x-site");
        assert!(sites.iter().all(|(_, s)| s.mte_routes.is_some()));
        assert!(
            c.site.upstream.is_empty(),
            "the top level needs no upstream"
        );
    }

    #[test]
    fn domain_map_problems_name_the_site_and_field() {
        let map = r#"{"a.example": {"upstream": "ftp://x", "corsOrigins": "https://a.example"},
                      "b.example": {"corsOrigins": "https://b.example", "clientIdSecret": "b-secret-0123456789abcdefghijklmn", "colour": 1, "port": 1}}"#;
        let err = load_env(env(&[("DOMAIN_MAP", map)])).unwrap_err();
        let keys: Vec<&str> = err.0.iter().map(|p| p.key.as_str()).collect();
        for want in [
            "domainMap.a.example.upstream",
            "domainMap.a.example.clientIdSecret",
            "domainMap.b.example.upstream",
            "domainMap.b.example.colour",
            "domainMap.b.example.port",
        ] {
            assert!(keys.contains(&want), "{want} missing from {keys:?}");
        }
        assert!(err.0.iter().all(|p| p.env == "DOMAIN_MAP"));
    }

    #[test]
    fn domain_map_sites_need_distinct_secrets() {
        let map = r#"{"a.example": {"upstream": "http://127.0.0.1:1", "corsOrigins": "https://a.example", "clientIdSecret": "same-secret-0123456789abcdefghijkl"},
                      "b.example": {"upstream": "http://127.0.0.1:2", "corsOrigins": "https://b.example", "clientIdSecret": "same-secret-0123456789abcdefghijkl"}}"#;
        let err = load_env(env(&[("DOMAIN_MAP", map)])).unwrap_err();
        assert_eq!(err.0[0].key, "domainMap.b.example.clientIdSecret", "{err}");
    }

    #[test]
    fn site_headers_are_refused_like_top_level_ones() {
        let map = r#"{"a.example": {"upstream": "http://127.0.0.1:1", "corsOrigins": "https://a.example",
                      "clientIdSecret": "a-secret-0123456789abcdefghijklmn", "headers": {"x-mte-relay": "1"}}}"#;
        let err = load_env(env(&[("DOMAIN_MAP", map)])).unwrap_err();
        assert_eq!(err.0[0].key, "domainMap.a.example.headers", "{err}");
        let mut e = env(MINIMAL);
        e.insert("HEADERS".into(), r#"{"x-mte-anything":"1"}"#.into());
        assert_eq!(load_env(e).unwrap_err().0[0].key, "headers");
    }
}
