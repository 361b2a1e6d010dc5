//! Relay key ids (§4): `fp = SHA-256(entry)` ([`KeyId`], printed as a fingerprint) and its
//! first 8 bytes `kid` ([`Kid`], stored with every pair, §14). A leaf: errors name key ids, so
//! this module imports nothing of the crate's but its encoding; parsing a fingerprint, which can
//! fail, is in [`crate::relay_key`].

use core::fmt;

use sha2::{Digest as _, Sha256};

use crate::codec::{b64_decode_array, b64_encode};

/// Size of a key id `fp`.
pub const KEY_ID_SIZE: usize = 32;
/// Size of a short key id `kid`.
pub const KID_SIZE: usize = 8;
/// The prefix of a printed fingerprint.
pub const FINGERPRINT_PREFIX: &str = "sha256:";

/// A relay key's id `fp = SHA-256(entry)` (§4). Displays as its fingerprint.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; KEY_ID_SIZE]);

impl KeyId {
    /// The id of an entry.
    pub fn of_entry(entry: &[u8]) -> Self {
        Self(Sha256::digest(entry).into())
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_ID_SIZE] {
        &self.0
    }

    /// `b64(fp)`, 43 characters (pairing bodies).
    pub fn to_b64(&self) -> String {
        b64_encode(&self.0)
    }

    /// Parses `b64(fp)` (exactly 43 characters, strict).
    pub fn from_b64(text: &str) -> Option<Self> {
        b64_decode_array(text).map(Self)
    }

    /// `"sha256:" || b64(fp)`, 50 characters: what operators publish and clients pin.
    pub fn fingerprint(&self) -> String {
        format!("{FINGERPRINT_PREFIX}{}", self.to_b64())
    }

    /// The short id `kid`: the first 8 bytes, stored with every pair made with this key (§14).
    pub fn kid(&self) -> Kid {
        let [a, b, c, d, e, f, g, h, ..] = self.0;
        Kid([a, b, c, d, e, f, g, h])
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.fingerprint())
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fingerprint())
    }
}

/// The first 8 bytes of a [`KeyId`]: the relay key a pair was made with (§14).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Kid(pub [u8; KID_SIZE]);

impl fmt::Debug for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kid({self})")
    }
}

impl fmt::Display for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}
