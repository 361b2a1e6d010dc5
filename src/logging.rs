//! Logging: text or JSON lines on stderr, one access line per request.
//!
//! `DEBUG=true` enables debug lines from pqrelay itself (other crates stay at info, so
//! dependencies never dump headers). Nothing here logs secrets or bodies.
//!
//! Access lines (target [`ACCESS_TARGET`]) are formatted straight into one shared buffer, with
//! no allocation per line, and written out when the buffer holds [`FLUSH_BYTES`], every
//! [`FLUSH_INTERVAL`] (a small thread, started by the first access line: after Pingora's
//! `--daemon` fork, which keeps no other thread), before any other line, and on [`Log::flush`]
//! (`main` calls it when the server stops). Every other line is written at once, behind the buffered
//! ones, so the order of lines is kept. Like nginx's `access_log ... buffer=`, this spares a
//! `write` per request; at worst the last [`FLUSH_INTERVAL`] of access lines is lost if the
//! process is killed.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::Once;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};
use parking_lot::Mutex;

use crate::config::LogFormat;

/// Target of access-log lines.
pub(crate) const ACCESS_TARGET: &str = "pqrelay::access";
/// Buffered access lines are written out once they reach this many bytes.
pub(crate) const FLUSH_BYTES: usize = 32 * 1024;
/// Buffered access lines are written out at least this often.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

struct Logger {
    format: LogFormat,
    debug: bool,
    out: Mutex<Pending>,
    /// Starts the flushing thread at the first access line.
    flusher: Once,
}

/// Lines not yet written, and the text of the current second (`2026-01-02T03:04:05`).
#[derive(Default)]
struct Pending {
    buf: String,
    second: u64,
    second_text: String,
    /// Scratch space for a JSON line's message (escaped afterwards).
    msg: String,
}

impl Pending {
    /// Appends `time level target: msg` or the JSON object, and a newline.
    fn push(&mut self, format: LogFormat, r: &Record<'_>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        if now.as_secs() != self.second || self.second_text.is_empty() {
            self.second = now.as_secs();
            self.second_text = second_text(now.as_secs());
        }
        let millis = now.subsec_millis();
        let Pending {
            buf,
            second_text,
            msg,
            ..
        } = self;
        // Writing into a `String` cannot fail.
        let _ = match format {
            LogFormat::Text => writeln!(
                buf,
                "{second_text}.{millis:03}Z {:<5} {}: {}",
                r.level(),
                r.target(),
                r.args()
            ),
            LogFormat::Json => {
                msg.clear();
                let _ = write!(msg, "{}", r.args());
                writeln!(
                    buf,
                    "{{\"time\":\"{second_text}.{millis:03}Z\",\"level\":\"{}\",\"target\":{},\"msg\":{}}}",
                    r.level().as_str(),
                    Json(r.target()),
                    Json(msg),
                )
            }
        };
    }

    /// Writes every pending line to stderr.
    fn write_out(&mut self) {
        if !self.buf.is_empty() {
            let _ = std::io::stderr().lock().write_all(self.buf.as_bytes());
            self.buf.clear();
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) of a Unix time in seconds.
fn second_text(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_default()
}

/// A string as a JSON string literal.
struct Json<'a>(&'a str);

impl fmt::Display for Json<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        let mut rest = self.0;
        while let Some(i) = rest.find(|c: char| c == '"' || c == '\\' || c < ' ') {
            f.write_str(&rest[..i])?;
            let c = rest[i..].chars().next().unwrap_or_default();
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c => write!(f, "\\u{:04x}", c as u32)?,
            }
            rest = &rest[i + c.len_utf8()..];
        }
        f.write_str(rest)?;
        f.write_char('"')
    }
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
        let access = r.target() == ACCESS_TARGET;
        let mut out = self.out.lock();
        out.push(self.format, r);
        if !access || out.buf.len() >= FLUSH_BYTES {
            out.write_out();
        }
        drop(out);
        if access {
            self.flusher.call_once(|| start_flusher(LOGGER.get()));
        }
    }

    fn flush(&self) {
        self.out.lock().write_out();
        let _ = std::io::stderr().flush();
    }
}

/// The installed logger (the flushing thread needs it for the life of the process).
static LOGGER: std::sync::OnceLock<Logger> = std::sync::OnceLock::new();

/// Installs the global logger. Call once; later calls are ignored.
pub(crate) fn init(format: LogFormat, debug: bool) {
    let mut installed = false;
    let logger = LOGGER.get_or_init(|| {
        installed = true;
        Logger {
            format,
            debug,
            out: Mutex::new(Pending {
                buf: String::with_capacity(FLUSH_BYTES + 1024),
                ..Pending::default()
            }),
            flusher: Once::new(),
        }
    });
    if !installed || log::set_logger(logger).is_err() {
        return;
    }
    log::set_max_level(if debug {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    });
}

/// Writes buffered access lines out every [`FLUSH_INTERVAL`], on a thread of its own.
fn start_flusher(logger: Option<&'static Logger>) {
    let Some(logger) = logger else { return };
    let spawned = std::thread::Builder::new()
        .name("pqrelay-log".into())
        .spawn(move || loop {
            std::thread::sleep(FLUSH_INTERVAL);
            logger.out.lock().write_out();
        });
    if let Err(e) = spawned {
        log::warn!("access lines are written per 32 KiB only (no flushing thread: {e})");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_quotes_backslashes_and_controls() {
        let s = Json("a\"b\\c\nd\u{1}é").to_string();
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\u0001é\"");
        let back: String = serde_json::from_str(&s).unwrap();
        assert_eq!(back, "a\"b\\c\nd\u{1}é");
    }

    #[test]
    fn second_text_is_rfc3339_utc() {
        assert_eq!(second_text(0), "1970-01-01T00:00:00");
        assert_eq!(second_text(1_700_000_000), "2023-11-14T22:13:20");
    }
}
