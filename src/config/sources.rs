//! Where settings come from: the environment snapshot, the YAML file and defaults
//! ([`Sources`]), one `DOMAIN_MAP` entry ([`Origin::Entry`]), and the problems found in them
//! ([`ConfigProblem`], [`ConfigErrors`]).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use super::fields::Field;

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// YAML key (`upstream`, `domainMap.<host>.upstream`), or the offending key.
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

/// A raw value and where it came from.
#[derive(Clone)]
pub(super) enum Raw {
    Env(String),
    Yaml(Value),
}

/// Where raw values come from: an environment snapshot, an optional YAML file, defaults.
pub struct Sources {
    env: HashMap<String, String>,
    file: Option<(PathBuf, Mapping)>,
    defaults: HashMap<&'static str, String>,
}

impl Sources {
    /// Takes the environment and reads the YAML file at `file`, if any.
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

    /// The environment variable's value, if set and not blank.
    pub(super) fn env(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// The YAML file's mapping, if a file was given.
    pub(super) fn file(&self) -> Option<&Mapping> {
        self.file.as_ref().map(|(_, m)| m)
    }

    /// The YAML file's path, if a file was given.
    pub(super) fn file_path(&self) -> Option<PathBuf> {
        self.file.as_ref().map(|(p, _)| p.clone())
    }

    /// `config file <path>` (for problem lines).
    pub(super) fn file_name(&self) -> String {
        match &self.file {
            Some((p, _)) => format!("config file {}", p.display()),
            None => "config file".into(),
        }
    }

    pub(super) fn get(&self, f: &Field) -> Option<(Raw, String)> {
        if let Some(v) = self.env(f.env) {
            return Some((Raw::Env(v.to_owned()), "environment".into()));
        }
        if let Some(v) = self.file().and_then(|m| yaml_get(m, f)) {
            return Some((Raw::Yaml(v), self.file_name()));
        }
        self.defaults
            .get(f.env)
            .map(|v| (Raw::Env(v.clone()), "default".into()))
    }
}

/// A field's value in a YAML mapping (its key or an alias), unless null.
pub(super) fn yaml_get(map: &Mapping, f: &Field) -> Option<Value> {
    std::iter::once(&f.key)
        .chain(f.aliases)
        .find_map(|k| map.get(*k).filter(|v| !v.is_null()).cloned())
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

/// Where one site's values are read: the top level (environment, file, defaults) or one
/// `DOMAIN_MAP` entry.
pub(super) enum Origin<'a> {
    Top(&'a Sources),
    Entry { map: &'a Mapping, source: &'a str },
}

impl Origin<'_> {
    pub(super) fn get(&self, f: &Field) -> Option<(Raw, String)> {
        match self {
            Origin::Top(src) => src.get(f),
            Origin::Entry { map, source, .. } => {
                yaml_get(map, f).map(|v| (Raw::Yaml(v), (*source).to_owned()))
            }
        }
    }
}
