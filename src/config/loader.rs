//! [`Loader`]: reads one field at a time from an [`Origin`], with the typed parsers every
//! setting shares (strings, lists, booleans, numbers, secrets, routes, origins, headers, PEM
//! files), and collects the problems.

use std::fmt;
use std::path::PathBuf;

use http::{HeaderName, HeaderValue};
use serde_yaml::Value;

use super::fields::{self as f, Field};
use super::sources::{ConfigProblem, Origin, Raw, Sources};
use super::values::{normalize_origin, RoutePattern, Secret};

/// Recommended minimum length of `CLIENT_ID_SECRET` (and of every other secret).
pub const MIN_SECRET_LEN: usize = 32;

/// Headers that `HEADERS` may not set: they would break framing or routing, or speak for the
/// protocol.
const FORBIDDEN_EXTRA_HEADERS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "host",
    "upgrade",
    "keep-alive",
    "te",
    "trailer",
];

/// Collects problems while each field is parsed.
pub(super) struct Loader<'a> {
    pub(super) src: &'a Sources,
    pub(super) problems: Vec<ConfigProblem>,
    pub(super) warnings: Vec<String>,
    /// The `DOMAIN_MAP` host being read, if any (problems are then `domainMap.<host>.<key>`).
    pub(super) site: Option<String>,
}

impl Loader<'_> {
    pub(super) fn problem(&mut self, f: &Field, source: &str, message: impl Into<String>) {
        let (key, env) = match &self.site {
            Some(host) => (
                format!("{}.{host}.{}", f::DOMAIN_MAP.key, f.key),
                f::DOMAIN_MAP.env,
            ),
            None => (f.key.to_owned(), f.env),
        };
        self.problems.push(ConfigProblem {
            key,
            env,
            source: source.into(),
            message: message.into(),
        });
    }

    /// Parses `f` from `origin`; `Ok(None)`-like `Some(None)` when unset and allowed to be,
    /// `None` after reporting a problem.
    pub(super) fn read<T>(
        &mut self,
        origin: &Origin<'_>,
        f: &Field,
        required: bool,
        parse: impl FnOnce(&mut Self, Raw, &str) -> Option<T>,
    ) -> Option<Option<T>> {
        match origin.get(f) {
            Some((raw, source)) => parse(self, raw, &source).map(Some),
            None if required => {
                let message = match origin {
                    Origin::Top(_) => format!(
                        "is required but not set: set the {} environment variable or `{}:` in the config file",
                        f.env, f.key
                    ),
                    Origin::Entry { .. } => "is required".to_owned(),
                };
                self.problem(f, "", message);
                None
            }
            None => Some(None),
        }
    }

    /// A top-level setting that may be left unset.
    pub(super) fn optional<T>(
        &mut self,
        f: &Field,
        parse: impl FnOnce(&mut Self, Raw, &str) -> Option<T>,
    ) -> Option<Option<T>> {
        let src = self.src;
        self.read(&Origin::Top(src), f, false, parse)
    }

    pub(super) fn string(&mut self, f: &Field, raw: Raw, source: &str) -> Option<String> {
        match raw {
            Raw::Env(s) | Raw::Yaml(Value::String(s)) => Some(s.trim().to_owned()),
            Raw::Yaml(Value::Number(n)) => Some(n.to_string()),
            Raw::Yaml(Value::Bool(b)) => Some(b.to_string()),
            Raw::Yaml(_) => {
                self.problem(f, source, "must be a string");
                None
            }
        }
    }

    pub(super) fn list(&mut self, f: &Field, raw: Raw, source: &str) -> Option<Vec<String>> {
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

    pub(super) fn bool(&mut self, f: &Field, raw: Raw, source: &str) -> Option<bool> {
        let text = match raw {
            Raw::Yaml(Value::Bool(b)) => return Some(b),
            Raw::Env(s) | Raw::Yaml(Value::String(s)) => s,
            Raw::Yaml(_) => String::new(),
        };
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" => Some(false),
            _ => {
                let message = format!("{text:?} is not a boolean (use true or false)");
                self.problem(f, source, message);
                None
            }
        }
    }

    pub(super) fn number<T: std::str::FromStr + PartialOrd + fmt::Display>(
        &mut self,
        f: &Field,
        raw: Raw,
        source: &str,
        (min, max): (T, T),
    ) -> Option<T> {
        let text = self.string(f, raw, source)?;
        match text.parse::<T>() {
            Ok(n) if n >= min && n <= max => Some(n),
            _ => {
                let message = format!("{text:?} is not a whole number from {min} to {max}");
                self.problem(f, source, message);
                None
            }
        }
    }

    pub(super) fn secret(&mut self, f: &Field, raw: Raw, source: &str) -> Option<Secret> {
        let s = self.string(f, raw, source)?;
        let n = s.chars().count();
        if n < MIN_SECRET_LEN {
            self.warnings.push(format!(
                "warning: {} (env {}) is only {n} characters; {MIN_SECRET_LEN} or more are recommended",
                f.key, f.env
            ));
        }
        Some(Secret::new(s))
    }

    pub(super) fn routes(
        &mut self,
        f: &Field,
        raw: Raw,
        source: &str,
    ) -> Option<Vec<RoutePattern>> {
        let items = self.list(f, raw, source)?;
        let mut out = Vec::new();
        for item in items {
            match RoutePattern::parse(&item) {
                Ok(p) => out.push(p),
                Err(e) => self.problem(f, source, format!("{item:?}: {e}")),
            }
        }
        Some(out)
    }

    pub(super) fn origins(&mut self, f: &Field, raw: Raw, source: &str) -> Option<Vec<String>> {
        let items = self.list(f, raw, source)?;
        if items.is_empty() {
            self.problem(f, source, "must list at least one origin");
            return None;
        }
        let mut out = Vec::new();
        for item in items {
            match normalize_origin(&item) {
                Ok(o) => out.push(o),
                Err(e) => self.problem(f, source, format!("{item:?}: {e}")),
            }
        }
        Some(out)
    }

    pub(super) fn headers(
        &mut self,
        f: &Field,
        raw: Raw,
        source: &str,
    ) -> Option<Vec<(HeaderName, HeaderValue)>> {
        let pairs: Vec<(String, Value)> = match raw {
            Raw::Env(s) | Raw::Yaml(Value::String(s)) => {
                match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&s) {
                    Ok(map) => map
                        .into_iter()
                        .map(|(k, v)| (k, serde_yaml::to_value(v).unwrap_or(Value::Null)))
                        .collect(),
                    Err(e) => {
                        let message = format!(
                            r#"must be a JSON object such as {{"x-service-name":"mte-relay"}}: {e}"#
                        );
                        self.problem(f, source, message);
                        return None;
                    }
                }
            }
            Raw::Yaml(Value::Mapping(m)) => {
                let mut out = Vec::new();
                for (k, v) in m {
                    match k {
                        Value::String(s) => out.push((s, v)),
                        _ => self.problem(f, source, "header names must be strings"),
                    }
                }
                out
            }
            Raw::Yaml(_) => {
                self.problem(f, source, "must be a mapping of header names to values");
                return None;
            }
        };
        let mut out = Vec::new();
        for (k, v) in pairs {
            let text = match v {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    self.problem(f, source, format!("header {k:?} must have a string value"));
                    continue;
                }
            };
            let Ok(name) = HeaderName::from_bytes(k.as_bytes()) else {
                self.problem(f, source, format!("{k:?} is not a valid header name"));
                continue;
            };
            if FORBIDDEN_EXTRA_HEADERS.contains(&name.as_str())
                || name.as_str().starts_with("x-mte-")
            {
                self.problem(f, source, format!("header {k:?} cannot be set by HEADERS"));
                continue;
            }
            match HeaderValue::from_str(&text) {
                Ok(val) => out.push((name, val)),
                Err(_) => self.problem(f, source, format!("header {k:?} has an invalid value")),
            }
        }
        Some(out)
    }

    /// `RELAY_KEYS`: each item a file holding a key value (a path: it has a `/`) or the value
    /// itself; every value checked (PROTOCOL.md §4), never echoed in a problem.
    pub(super) fn relay_keys(&mut self, f: &Field, raw: Raw, source: &str) -> Option<Vec<Secret>> {
        let items = self.list(f, raw, source)?;
        if items.is_empty() {
            self.problem(f, source, "must list at least one key (current first)");
            return None;
        }
        let mut out = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let (value, what) = if item.contains('/') {
                match std::fs::read_to_string(&item) {
                    Ok(text) => (text.trim().to_owned(), format!("the key file {item:?}")),
                    Err(e) => {
                        self.problem(f, source, format!("{item:?} cannot be read: {e}"));
                        continue;
                    }
                }
            } else {
                (item, format!("key {}", i + 1))
            };
            match pqrelay_protocol::relay_key::check_key_value(&value) {
                Ok(()) => out.push(Secret::new(value)),
                Err(_) => {
                    let message = format!(
                        "{what} is not a relay key: 43 or more characters of A-Z a-z 0-9 - _ \
                         (pqrelay keygen --out FILE writes one)"
                    );
                    self.problem(f, source, message);
                }
            }
        }
        Some(out)
    }

    /// A list of header names (lowercase, valid tokens, not `x-mte-*` or hop-by-hop).
    pub(super) fn header_names(
        &mut self,
        f: &Field,
        raw: Raw,
        source: &str,
    ) -> Option<Vec<HeaderName>> {
        let mut out = Vec::new();
        for item in self.list(f, raw, source)? {
            match HeaderName::from_bytes(item.to_ascii_lowercase().as_bytes()) {
                Ok(n)
                    if !n.as_str().starts_with("x-mte-")
                        && !FORBIDDEN_EXTRA_HEADERS.contains(&n.as_str()) =>
                {
                    out.push(n)
                }
                _ => self.problem(f, source, format!("{item:?} cannot be listed here")),
            }
        }
        Some(out)
    }

    pub(super) fn pem_file(&mut self, f: &Field, raw: Raw, source: &str) -> Option<PathBuf> {
        let s = self.string(f, raw, source)?;
        match std::fs::read_to_string(&s) {
            Ok(text) if text.contains("-----BEGIN CERTIFICATE-----") => Some(PathBuf::from(s)),
            Ok(_) => {
                self.problem(f, source, format!("{s:?} holds no PEM certificate"));
                None
            }
            Err(e) => {
                self.problem(f, source, format!("{s:?} cannot be read: {e}"));
                None
            }
        }
    }
}
