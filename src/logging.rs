//! Logging: text or JSON lines on stderr, one access line per request.
//!
//! `DEBUG=true` enables debug lines from pqrelay itself (other crates stay at info, so
//! dependencies never dump headers). Nothing here logs secrets or bodies.

use std::io::Write as _;

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::config::LogFormat;

/// Target of access-log lines.
pub const ACCESS_TARGET: &str = "pqrelay::access";

struct Logger {
    format: LogFormat,
    debug: bool,
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        if m.level() <= Level::Info {
            return true;
        }
        self.debug && m.level() == Level::Debug && m.target().starts_with("pqrelay")
    }

    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let line = match self.format {
            LogFormat::Text => format!("{time} {:<5} {}: {}\n", r.level(), r.target(), r.args()),
            LogFormat::Json => {
                let mut s = serde_json::json!({
                    "time": time,
                    "level": r.level().as_str(),
                    "target": r.target(),
                    "msg": r.args().to_string(),
                })
                .to_string();
                s.push('\n');
                s
            }
        };
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// Installs the global logger. Call once; later calls are ignored.
pub fn init(format: LogFormat, debug: bool) {
    let logger = Box::new(Logger { format, debug });
    if log::set_boxed_logger(logger).is_ok() {
        log::set_max_level(if debug {
            LevelFilter::Debug
        } else {
            LevelFilter::Info
        });
    }
}
