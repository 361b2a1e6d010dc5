//! The `x-mte-relay-keys` header of discovery (§5) and the choice of a trusted key (§13).

use crate::codec::{b64_decode, b64_encode};
use crate::error::RelayKeyError;
use crate::relay_key::{KeyId, RelayKey, RelayKeyConfig, RelayKeySet, MAX_RELAY_KEYS};

/// Longest item accepted in `x-mte-relay-keys`, in characters (an X-Wing entry is 1624; room
/// for entries of other KEMs, which are skipped).
pub const MAX_ITEM_LEN: usize = 8192;

/// The relay keys a relay offers, in its order (current first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayKeys {
    /// The X-Wing entries, in header order.
    pub keys: Vec<RelayKeyConfig>,
}

impl RelayKeys {
    /// Parses an `x-mte-relay-keys` value (§5): 1 to 8 `,`-separated items (spaces and tabs
    /// around items ignored), each strict `b64` of an entry. Entries of another KEM id are
    /// skipped; an X-Wing entry must be 1218 bytes holding a valid key; no key twice. Fails
    /// when no X-Wing entry is left.
    pub fn parse(value: &str) -> Result<Self, RelayKeyError> {
        let items: Vec<&str> = value
            .split(',')
            .map(|i| i.trim_matches([' ', '\t']))
            .collect();
        if items.len() > MAX_RELAY_KEYS || value.trim_matches([' ', '\t']).is_empty() {
            return Err(RelayKeyError::Count);
        }
        let mut keys: Vec<RelayKeyConfig> = Vec::with_capacity(items.len());
        for item in items {
            if item.len() > MAX_ITEM_LEN {
                return Err(RelayKeyError::Entry);
            }
            let entry = b64_decode(item).ok_or(RelayKeyError::Entry)?;
            match RelayKeyConfig::parse(&entry) {
                Ok(key) if keys.iter().any(|k| k.id() == key.id()) => {
                    return Err(RelayKeyError::Duplicate)
                }
                Ok(key) => keys.push(key),
                Err(RelayKeyError::KemId) => continue,
                Err(e) => return Err(e),
            }
        }
        if keys.is_empty() {
            return Err(RelayKeyError::NoneUsable);
        }
        Ok(Self { keys })
    }

    /// The header value.
    pub fn encode(&self) -> String {
        encode_relay_keys(self.keys.iter())
    }

    /// The key ids, in header order.
    pub fn ids(&self) -> Vec<KeyId> {
        self.keys.iter().map(RelayKeyConfig::id).collect()
    }

    /// The key to pair with (§13): the first offered key whose id is in `trusted`, or, when
    /// `trusted` is empty (trust on first use, first contact), the first offered key. None
    /// trusted is [`RelayKeyError::NotTrusted`], a hard error: never pair with another key.
    pub fn choose(&self, trusted: &[KeyId]) -> Result<&RelayKeyConfig, RelayKeyError> {
        let found = if trusted.is_empty() {
            self.keys.first()
        } else {
            self.keys.iter().find(|k| trusted.contains(&k.id()))
        };
        found.ok_or(RelayKeyError::NotTrusted)
    }
}

impl RelayKeySet {
    /// The `x-mte-relay-keys` value of discovery (§5).
    pub fn header_value(&self) -> String {
        encode_relay_keys(self.keys().iter().map(RelayKey::config))
    }
}

/// Encodes entries as an `x-mte-relay-keys` value (`b64(entry)` items joined by `,`).
pub fn encode_relay_keys<'a>(keys: impl Iterator<Item = &'a RelayKeyConfig>) -> String {
    keys.map(|k| b64_encode(&k.encode()))
        .collect::<Vec<_>>()
        .join(",")
}
