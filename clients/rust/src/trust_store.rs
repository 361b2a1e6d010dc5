//! A file of known relays: per relay origin, the client id token and the relay keys trusted on
//! first use (§13, "stored beside the client id"). [`ClientBuilder::trust_store`] reads it at
//! build and writes it whenever the token or the trusted keys change; `pqrelay-curl` keeps its
//! own in `~/.config/pqrelay/known_relays` (`--known-relays`).
//!
//! One line per relay, like ssh's `known_hosts`:
//!
//! ```text
//! # pqrelay known relays: origin, client id token (- for none), trusted relay keys (- for none)
//! https://relay.example.com:443 <64-character token> sha256:<43 characters>,sha256:<...>
//! ```
//!
//! Remove a relay's line to forget it (the next contact trusts the keys it is shown). The file
//! is replaced atomically (written beside it, then renamed) and, on Unix, readable by its owner
//! only: the token identifies this client to the relay.
//!
//! [`ClientBuilder::trust_store`]: crate::ClientBuilder::trust_store

use std::io::Write as _;
use std::path::{Path, PathBuf};

use pqrelay_protocol::{ClientIdToken, KeyId};

use crate::error::Error;

/// The first line of a file this module writes.
const HEADER: &str =
    "# pqrelay known relays: origin, client id token (- for none), trusted relay keys (- for none)";

/// What a trust store holds for one relay origin.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KnownRelay {
    /// The client id token the relay issued.
    pub token: Option<ClientIdToken>,
    /// The relay keys trusted on first use, newest first.
    pub trusted: Vec<KeyId>,
}

/// A known-relays file. See the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustStore {
    path: PathBuf,
}

impl TrustStore {
    /// The store in the file at `path` (created when first written).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, what: impl Into<String>) -> Error {
        Error::TrustStore {
            path: self.path.clone(),
            problem: what.into(),
        }
    }

    /// Every entry of the file, in file order (an absent file has none). A malformed line is
    /// an error naming it: the file decides whom this client trusts.
    pub fn entries(&self) -> Result<Vec<(String, KnownRelay)>, Error> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.error(format!("reading: {e}"))),
        };
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let entry = parse_line(line).ok_or_else(|| {
                self.error(format!(
                    "line {} is not \"<origin> <token or -> <fingerprints or ->\"",
                    n + 1
                ))
            })?;
            out.push(entry);
        }
        Ok(out)
    }

    /// The entry of `origin`, if any.
    pub fn load(&self, origin: &str) -> Result<Option<KnownRelay>, Error> {
        let entries = self.entries()?;
        Ok(entries
            .into_iter()
            .find(|(o, _)| o == origin)
            .map(|(_, k)| k))
    }

    /// Stores `known` as the entry of `origin` (replacing it, or added at the end).
    pub fn save(&self, origin: &str, known: &KnownRelay) -> Result<(), Error> {
        let mut entries = self.entries()?;
        match entries.iter_mut().find(|(o, _)| o == origin) {
            Some((_, k)) => *k = known.clone(),
            None => entries.push((origin.to_owned(), known.clone())),
        }
        let mut text = format!("{HEADER}\n");
        for (o, k) in &entries {
            text.push_str(&format_line(o, k));
            text.push('\n');
        }
        self.write(text.as_bytes())
            .map_err(|e| self.error(format!("writing: {e}")))
    }

    fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".{}.tmp", std::process::id()));
        let tmp = self.path.with_file_name(name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)
    }
}

fn parse_line(line: &str) -> Option<(String, KnownRelay)> {
    let mut fields = line.split_whitespace();
    let (origin, token, keys) = (fields.next()?, fields.next()?, fields.next()?);
    if fields.next().is_some() || !origin.contains("://") {
        return None;
    }
    let token = match token {
        "-" => None,
        t => Some(ClientIdToken::parse(t).ok()?),
    };
    let trusted = match keys {
        "-" => Vec::new(),
        list => list
            .split(',')
            .map(|f| KeyId::parse_fingerprint(f).ok())
            .collect::<Option<Vec<_>>>()?,
    };
    Some((origin.to_owned(), KnownRelay { token, trusted }))
}

fn format_line(origin: &str, known: &KnownRelay) -> String {
    let token = known
        .token
        .as_ref()
        .map_or("-".into(), ClientIdToken::encode);
    let keys = if known.trusted.is_empty() {
        "-".to_owned()
    } else {
        let list: Vec<String> = known.trusted.iter().map(KeyId::fingerprint).collect();
        list.join(",")
    };
    format!("{origin} {token} {keys}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "pqrelay-trust-store-{}-{name}/known_relays",
            std::process::id()
        ))
    }

    #[test]
    fn trust_store_round_trip_keeps_other_relays() {
        let path = temp("round-trip");
        let store = TrustStore::new(&path);
        assert_eq!(store.load("http://a:1").unwrap(), None, "no file yet");
        let token = pqrelay_protocol::client_id::issue(b"s", pqrelay_protocol::ClientId([1; 16]));
        let a = KnownRelay {
            token: Some(token),
            trusted: vec![KeyId([1; 32]), KeyId([2; 32])],
        };
        let b = KnownRelay {
            token: None,
            trusted: Vec::new(),
        };
        store.save("http://a:1", &a).unwrap();
        store.save("http://b:2", &b).unwrap();
        store.save("http://a:1", &a).unwrap();
        assert_eq!(store.load("http://a:1").unwrap(), Some(a));
        assert_eq!(store.load("http://b:2").unwrap(), Some(b));
        assert_eq!(store.entries().unwrap().len(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# pqrelay known relays"), "{text}");
        assert!(text.contains(&KeyId([2; 32]).fingerprint()), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn trust_store_refuses_a_malformed_line() {
        let path = temp("malformed");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "http://a:1 - sha256:nope\n").unwrap();
        let err = TrustStore::new(&path).load("http://a:1").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
