//! Showing the configuration: the effective settings with secrets masked
//! (`pqrelay check-config`), and the field table as JSON or as the Markdown reference
//! (`pqrelay config-fields`, which writes `docs/CONFIGURATION.md`). Both walk
//! [`FIELDS`](super::fields::FIELDS) in order.

use pingora_core::server::configuration::ServerConf;
use serde_json::{json, Map, Value};

use super::fields::{self as f, Field, Group, Need, Scope, FIELDS};
use super::values::{mask_url, RoutePattern, Secret};
use super::{Config, SiteConfig};

/// Pingora settings `check-config` shows.
const SHOWN_PINGORA_KEYS: &[&str] = &[
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

fn routes(r: &[RoutePattern]) -> Value {
    r.iter().map(|p| p.to_string()).collect()
}

fn masked(secrets: &[Secret]) -> Value {
    secrets.iter().map(Secret::masked).collect()
}

/// The fingerprints of a site's relay keys, current first (`(derived)` when they come from the
/// client-id secrets); never the keys themselves.
pub fn relay_key_fingerprints(site: &SiteConfig) -> Vec<String> {
    let (keys, derived) = site.relay_key_set();
    let note = if derived {
        " (derived from the client-id secret)"
    } else {
        ""
    };
    keys.map(|k| k.fingerprints())
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, fp)| match i {
            0 => format!("{fp} (current){note}"),
            _ => format!("{fp}{note}"),
        })
        .collect()
}

/// A site setting's effective value, secrets masked; `None` for relay-wide settings.
fn shown_site(site: &SiteConfig, field: &Field) -> Option<Value> {
    Some(match field.key {
        "upstream" => site.upstream.iter().map(|u| u.to_string()).collect(),
        "corsOrigins" => json!(site.cors_origins),
        "clientIdSecret" => json!(site.client_id_secret.masked()),
        "clientIdPreviousSecrets" => masked(&site.client_id_previous_secrets),
        "passThroughRoutes" => routes(&site.pass_through_routes),
        "mteRoutes" => site.mte_routes.as_deref().map_or(Value::Null, routes),
        "relayKeys" => json!(relay_key_fingerprints(site)),
        "headers" => site
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("<binary>"))))
            .collect::<Map<_, _>>()
            .into(),
        _ => return None,
    })
}

/// A setting's effective value, secrets masked. `Null` when unset; Pingora's settings are shown
/// from the `ServerConf` instead.
pub fn shown(config: &Config, field: &Field) -> Value {
    if let Some(v) = shown_site(&config.site, field) {
        return v;
    }
    let limits = &config.limits;
    let ms = |d: std::time::Duration| json!(d.as_millis() as u64);
    let path = |p: &Option<std::path::PathBuf>| json!(p.as_ref().map(|p| p.display().to_string()));
    match field.key {
        "awsRegion" => json!(config.aws_region),
        "redisURL" => json!(config.redis_url.as_ref().map(|u| mask_url(u.expose()))),
        "port" => json!(config.port),
        "debug" => json!(config.debug),
        "corsMethods" => json!(config.cors_methods),
        "maxPoolSize" => json!(config.max_pool_size),
        "host" => json!(config.host),
        "stateSecret" => json!(config.state_secret.as_ref().map(Secret::masked)),
        "redisCluster" => json!(config.redis_cluster),
        "redisTimeoutMs" => ms(config.redis_timeout),
        "redisCaFile" => path(&config.redis_ca_file),
        "maxHeaderBytes" => json!(limits.max_header_bytes),
        "maxUrlBytes" => json!(limits.max_url_bytes),
        "headerTimeoutMs" => ms(limits.header_timeout),
        "clientTimeoutMs" => ms(limits.client_timeout),
        "upstreamConnectTimeoutMs" => ms(limits.upstream_connect_timeout),
        "upstreamReadTimeoutMs" => ms(limits.upstream_read_timeout),
        "pairRatePerIp" => json!(limits.pair_rate_per_ip),
        "pairRatePerClient" => json!(limits.pair_rate_per_client),
        "pairingConcurrency" => json!(limits.pairing_concurrency),
        "outboundToken" => json!(config.outbound_token.as_ref().map(Secret::masked)),
        "outboundUpstreams" => config
            .outbound_upstreams
            .iter()
            .map(|r| {
                let pins = r.pins.iter().map(|p| format!(";pin={}", p.fingerprint()));
                std::iter::once(r.spec.to_string())
                    .chain(pins)
                    .collect::<String>()
            })
            .collect(),
        "plainHeaders" => config.plain_headers.iter().map(|h| h.as_str()).collect(),
        "trustedProxies" => json!(config.trusted_proxies.cidrs()),
        "proxyProtocol" => json!(config.proxy_protocol),
        "publicHosts" => json!(config.public_hosts),
        "domainMap" => match &config.domain_map {
            None => Value::Null,
            Some(sites) => sites
                .iter()
                .map(|(host, site)| {
                    let entry: Map<String, Value> = FIELDS
                        .iter()
                        .filter(|f| f.scope != Scope::Relay)
                        .filter_map(|f| Some((f.key.to_owned(), shown_site(site, f)?)))
                        .collect();
                    (host.clone(), Value::Object(entry))
                })
                .collect::<Map<_, _>>()
                .into(),
        },
        "logFormat" => json!(config.log_format.name()),
        "metricsPort" => json!(config.metrics_port),
        "upstreamCaFile" => path(&config.upstream_ca_file),
        "demo" => json!(config.demo),
        _ => Value::Null,
    }
}

/// The effective configuration as YAML, secrets masked (for `pqrelay check-config`).
pub fn masked_yaml(config: &Config, server: &ServerConf) -> String {
    let ours: Map<String, Value> = FIELDS
        .iter()
        .filter(|f| f.group != Group::Pingora)
        .map(|f| (f.key.to_owned(), shown(config, f)))
        .collect();
    let mut out = serde_yaml::to_string(&ours).unwrap_or_default();
    out.push_str("# Pingora server settings (snake_case keys)\n");
    if let Ok(serde_yaml::Value::Mapping(m)) = serde_yaml::to_value(server) {
        let mut kept = serde_yaml::Mapping::new();
        for k in SHOWN_PINGORA_KEYS {
            if let Some(v) = m.get(*k) {
                kept.insert(serde_yaml::Value::from(*k), v.clone());
            }
        }
        out.push_str(&serde_yaml::to_string(&kept).unwrap_or_default());
    }
    out
}

/// The field table as JSON (`pqrelay config-fields --json`): one object per setting.
pub fn fields_json() -> String {
    let rows: Vec<Value> = FIELDS
        .iter()
        .map(|f| {
            json!({
                "env": f.env,
                "yaml": f.key,
                "aliases": f.aliases,
                "default": (f.need == Need::Optional).then_some(f.default),
                "required": f.need != Need::Optional,
                "requiredUnlessDomainMap": f.need == Need::RequiredUnlessDomainMap,
                "secret": f.secret,
                "site": f.scope != Scope::Relay,
                "scope": f.scope.name(),
                "help": f.help,
            })
        })
        .collect();
    serde_json::to_string_pretty(&rows).unwrap_or_default()
}

/// The configuration reference (`docs/CONFIGURATION.md`), generated from the field table.
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "# Configuration reference\n\n\
         Generated from the relay's field table (`src/config/fields.rs`) by\n\
         `pqrelay config-fields`; a test fails when this file differs.\n\n\
         Every setting is an environment variable and a YAML key (`--config FILE`, `CONFIG_FILE`\n\
         or Pingora's `-c FILE`); the environment wins over the file. Lists are comma-separated\n\
         in the environment and YAML lists or comma-separated strings in the file.\n\
         `pqrelay check-config` validates everything and prints one line per problem, naming the\n\
         key and the variable, or the effective configuration with secrets masked.\n\n\
         Scope: `relay` settings apply to the whole relay; with `DOMAIN_MAP`, each site may set\n\
         its own `site` settings (the top-level value is its default) and must set its own\n\
         `site (own)` ones (`upstream`, `corsOrigins`, `clientIdSecret`; the top-level ones are\n\
         then optional). Secrets are marked (secret): keep them in a secret store.\n",
    );
    for (group, heading) in Group::ALL {
        out.push_str(&format!(
            "\n## {heading}\n\n| Environment | YAML | Default | Scope | Meaning |\n|---|---|---|---|---|\n"
        ));
        for field in FIELDS.iter().filter(|f| f.group == *group) {
            let secret = if field.secret { " (secret)" } else { "" };
            let default = match field.need {
                Need::Optional => format!("`{}`", field.default),
                Need::Required => "required".into(),
                Need::RequiredUnlessDomainMap => "required (unless `DOMAIN_MAP`)".into(),
            };
            out.push_str(&format!(
                "| `{}` | `{}` | {default} | {} | {}{secret} |\n",
                field.env,
                field.key,
                field.scope.name(),
                field.help,
            ));
        }
    }
    out.push_str(
        "\nAny other Pingora `ServerConf` key (snake_case) may sit in the YAML file too; pqrelay\n\
         sets `work_stealing: false`, `grace_period_seconds: 5` and\n\
         `graceful_shutdown_timeout_seconds: 5` unless the file says otherwise.\n",
    );
    out
}

/// The field for `name`, by YAML key or environment variable (for `config-fields NAME`).
pub fn lookup(name: &str) -> Option<&'static Field> {
    f::by_key(name).or_else(|| f::by_env(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load, Sources};

    fn minimal() -> Config {
        let env = [
            ("UPSTREAM", "http://127.0.0.1:9"),
            ("CLIENT_ID_SECRET", "0123456789abcdef0123456789abcdef"),
            ("CORS_ORIGINS", "https://a.example"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        load(&Sources::new(env, None).unwrap()).unwrap().config
    }

    /// Defaults written in the table as values are the values a minimal configuration gets.
    #[test]
    fn the_table_defaults_are_the_defaults() {
        let config = minimal();
        let mut checked = 0;
        for field in FIELDS.iter().filter(|f| f.need == Need::Optional) {
            let value = match shown(&config, field) {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => continue,
            };
            let literal = field.default.parse::<f64>().is_ok()
                || ["true", "false", "text", "json", "0.0.0.0"].contains(&field.default);
            if literal {
                assert_eq!(value, field.default, "{}", field.key);
                checked += 1;
            }
        }
        assert!(checked >= 15, "only {checked} defaults checked");
    }

    #[test]
    fn secrets_are_masked_and_every_setting_is_shown() {
        let config = minimal();
        let text = masked_yaml(&config, &ServerConf::default());
        assert!(!text.contains("0123456789abcdef0123456789abcdef"), "{text}");
        for field in FIELDS.iter().filter(|f| f.group != Group::Pingora) {
            assert!(
                text.contains(&format!("{}:", field.key)),
                "{} missing",
                field.key
            );
        }
    }

    /// `docs/CONFIGURATION.md` is the generated reference; `PQRELAY_BLESS=1` rewrites it.
    #[test]
    fn the_configuration_reference_is_generated() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/CONFIGURATION.md");
        let want = reference_markdown();
        if std::env::var_os("PQRELAY_BLESS").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "docs/CONFIGURATION.md differs from the field table: run \
             `cargo run -- config-fields > docs/CONFIGURATION.md` \
             (or PQRELAY_BLESS=1 cargo test --lib config)"
        );
    }
}
