//! Pingora's `ServerConf`: our defaults, then the snake_case keys of the YAML file, then
//! `PID_FILE`, `UPGRADE_SOCK` and `THREADS` from the environment. One YAML file carries both
//! pqrelay's camelCase keys and Pingora's own, so it works for `--config` and Pingora's `-c`.

use std::path::PathBuf;

use pingora_core::server::configuration::ServerConf;
use serde_yaml::{Mapping, Value};

use super::fields::{self as f, Field};
use super::sources::{ConfigProblem, Sources};

/// Default graceful-shutdown grace period (Pingora's own default is 300 s).
pub(super) const DEFAULT_GRACE_PERIOD_SECONDS: u64 = 5;

/// Pingora settings that may also come from the environment.
const PINGORA_ENV: &[&Field] = &[&f::PID_FILE, &f::UPGRADE_SOCK, &f::THREADS];

/// Every key Pingora's `ServerConf` reads.
pub(super) fn pingora_keys() -> Vec<String> {
    match serde_yaml::to_value(ServerConf::default()) {
        Ok(Value::Mapping(m)) => m
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// Builds the `ServerConf`, or says what is wrong with Pingora's settings.
pub(super) fn server_conf(
    src: &Sources,
    ca_file: Option<&PathBuf>,
) -> Result<ServerConf, Vec<ConfigProblem>> {
    let mut problems = Vec::new();
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
    set("pid_file", Value::from(f::PID_FILE.default));
    set("upgrade_sock", Value::from(f::UPGRADE_SOCK.default));
    set(
        "grace_period_seconds",
        Value::from(DEFAULT_GRACE_PERIOD_SECONDS),
    );
    set("graceful_shutdown_timeout_seconds", Value::from(5u64));
    if let Some(ca) = ca_file {
        set("ca_file", Value::from(ca.display().to_string()));
    }
    let pingora = pingora_keys();
    if let Some(file) = src.file() {
        for (k, v) in file {
            if k.as_str().is_some_and(|k| pingora.iter().any(|p| p == k)) {
                m.insert(k.clone(), v.clone());
            }
        }
    }
    for field in PINGORA_ENV {
        let Some(v) = src.env(field.env) else {
            continue;
        };
        let value = if field.key == f::THREADS.key {
            match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => Value::from(n),
                _ => {
                    problems.push(ConfigProblem {
                        key: field.key.into(),
                        env: field.env,
                        source: "environment".into(),
                        message: format!("{v:?} is not a positive whole number"),
                    });
                    continue;
                }
            }
        } else {
            Value::from(v.trim())
        };
        m.insert(Value::String(field.key.into()), value);
    }
    let source = if src.file().is_some() {
        src.file_name()
    } else {
        "defaults".into()
    };
    let message = match serde_yaml::from_value::<ServerConf>(Value::Mapping(m)) {
        Ok(conf) => match conf.validate() {
            Ok(conf) if problems.is_empty() => return Ok(conf),
            Ok(_) => return Err(problems),
            Err(e) => e.to_string(),
        },
        Err(e) => format!("invalid Pingora server setting: {e}"),
    };
    problems.push(ConfigProblem {
        key: "pingora".into(),
        env: "",
        source,
        message,
    });
    Err(problems)
}
