//! What went wrong with a child process.

use std::fmt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// A child process that could not be started, died, or did not become ready in time. Every
/// variant names the process; those about a running process carry the end of its log.
/// `Debug` prints the same text as `Display`, so `expect` shows the log too.
#[non_exhaustive]
pub enum Error {
    /// The program could not be started (not installed, not executable, no log file).
    Spawn {
        /// The process's name.
        name: String,
        /// What failed (`starting redis-server`, `creating /tmp/x.log`).
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The process exited while it was expected to run.
    Exited {
        /// The process's name.
        name: String,
        /// How it exited.
        status: ExitStatus,
        /// What it was expected to do (`open port 4000`, `run`).
        expected: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log.
        tail: String,
    },
    /// The process ran but did not do what was awaited in time.
    Timeout {
        /// The process's name.
        name: String,
        /// What was awaited (`port 4000 to accept connections`).
        awaited: String,
        /// How long it was given.
        after: Duration,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log.
        tail: String,
    },
    /// A signal could not be sent.
    Signal {
        /// The process's name.
        name: String,
        /// The signal.
        signal: nix::sys::signal::Signal,
        /// The OS error.
        source: nix::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Spawn {
                name,
                context,
                source,
            } => write!(f, "{name}: {context}: {source}"),
            Error::Exited {
                name,
                status,
                expected,
                log,
                tail,
            } => write!(
                f,
                "{name} exited ({status}) when it should {expected}; last lines of {}:\n{tail}",
                log.display()
            ),
            Error::Timeout {
                name,
                awaited,
                after,
                log,
                tail,
            } => write!(
                f,
                "{name}: no {awaited} after {after:?}; last lines of {}:\n{tail}",
                log.display()
            ),
            Error::Signal {
                name,
                signal,
                source,
            } => write!(f, "{name}: cannot send {signal}: {source}"),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Spawn { source, .. } => Some(source),
            Error::Signal { source, .. } => Some(source),
            _ => None,
        }
    }
}
