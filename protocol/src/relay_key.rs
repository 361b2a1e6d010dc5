//! Relay keys (§4): key values, seeds, key pairs, the 1218-byte configuration `entry`, key ids
//! and fingerprints, and a relay's key set.
//!
//! ```text
//! entry       = u16(0x647a) || pk                 (1218 bytes)
//! fp          = SHA-256(entry)                    KeyId
//! fingerprint = "sha256:" || b64(fp)              50 characters
//! kid         = fp[0..8]                          Kid, stored with every pair (§14)
//! ```

pub use crate::key_id::{KeyId, Kid, FINGERPRINT_PREFIX, KEY_ID_SIZE, KID_SIZE};

use core::fmt;

use crate::codec::b64_encode;
use crate::error::{PairingError, RelayKeyError, StateError};
use crate::kdf::{expand32, extract};
use crate::kem::{
    DecapsulationKey, DecapsulationSeed, EncapsulationKey, KemCiphertext, SharedSecret,
    ENCAPSULATION_KEY_SIZE,
};
use crate::labels;

/// HPKE KEM id of X-Wing, the first two bytes of an entry.
pub const KEM_ID: u16 = 0x647a;
/// Size of a relay key configuration entry.
pub const ENTRY_SIZE: usize = 2 + ENCAPSULATION_KEY_SIZE;
/// Shortest relay key value (`RELAY_KEYS` item), in characters.
pub const MIN_KEY_VALUE_LEN: usize = 43;
/// Most relay keys a relay offers (and a client accepts) in `x-mte-relay-keys`.
pub const MAX_RELAY_KEYS: usize = 8;
impl KeyId {
    /// Parses a fingerprint (`sha256:` and 43 characters of strict b64).
    pub fn parse_fingerprint(text: &str) -> Result<Self, RelayKeyError> {
        text.strip_prefix(FINGERPRINT_PREFIX)
            .and_then(Self::from_b64)
            .ok_or(RelayKeyError::Fingerprint)
    }
}

/// A relay key configuration (the public part): `u16(0x647a) || pk`, and its id.
#[derive(Clone, PartialEq, Eq)]
pub struct RelayKeyConfig {
    pk: EncapsulationKey,
    id: KeyId,
}

impl RelayKeyConfig {
    /// The configuration of an X-Wing public key.
    pub fn new(pk: EncapsulationKey) -> Self {
        let mut entry = [0u8; ENTRY_SIZE];
        write_entry(&pk, &mut entry);
        Self {
            id: KeyId::of_entry(&entry),
            pk,
        }
    }

    /// Parses an entry: exactly 1218 bytes, KEM id 0x647a, a valid X-Wing key (§2).
    pub fn parse(entry: &[u8]) -> Result<Self, RelayKeyError> {
        let (kem, pk) = entry.split_first_chunk::<2>().ok_or(RelayKeyError::Entry)?;
        if u16::from_be_bytes(*kem) != KEM_ID {
            return Err(RelayKeyError::KemId);
        }
        if entry.len() != ENTRY_SIZE {
            return Err(RelayKeyError::Entry);
        }
        let pk = EncapsulationKey::from_bytes(pk).map_err(|_| RelayKeyError::EncapsulationKey)?;
        Ok(Self {
            pk,
            id: KeyId::of_entry(entry),
        })
    }

    /// The 1218-byte entry.
    pub fn encode(&self) -> Vec<u8> {
        let mut entry = vec![0u8; ENTRY_SIZE];
        write_entry(&self.pk, &mut entry);
        entry
    }

    /// `b64(entry)`, one item of `x-mte-relay-keys`.
    pub fn to_b64(&self) -> String {
        b64_encode(&self.encode())
    }

    /// The key id `fp`.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The X-Wing public key `pk` a client encapsulates to.
    pub fn public_key(&self) -> &EncapsulationKey {
        &self.pk
    }
}

fn write_entry(pk: &EncapsulationKey, out: &mut [u8]) {
    let (kem, rest) = out.split_at_mut(2);
    kem.copy_from_slice(&KEM_ID.to_be_bytes());
    rest.copy_from_slice(pk.as_bytes());
}

impl fmt::Debug for RelayKeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelayKeyConfig({})", self.id)
    }
}

/// Checks a relay key value (§4): at least 43 characters of `A-Z a-z 0-9 - _`.
pub fn check_key_value(value: &str) -> Result<(), RelayKeyError> {
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(RelayKeyError::ValueCharacters);
    }
    if value.len() < MIN_KEY_VALUE_LEN {
        return Err(RelayKeyError::ValueTooShort);
    }
    Ok(())
}

/// A new key value from 32 random bytes: their `b64`, 43 characters (`pqrelay keygen`).
pub fn key_value_from_random(random: &[u8; 32]) -> String {
    b64_encode(random)
}

fn derive_seed(salt: &[u8], ikm: &[u8]) -> DecapsulationSeed {
    let prk = extract(salt, ikm);
    DecapsulationSeed::from_bytes(expand32(&prk, &[labels::RELAY_KEY_SEED]))
}

/// The seed of a relay key value (checked with [`check_key_value`]):
/// `HKDF-Expand(HKDF-Extract("pqrelay/2 relay key", value), "pqrelay/2 relay key seed", 32)`.
pub fn seed_from_value(value: &str) -> Result<DecapsulationSeed, RelayKeyError> {
    check_key_value(value)?;
    Ok(derive_seed(labels::RELAY_KEY_SALT, value.as_bytes()))
}

/// The seed of the relay key derived from a client-id secret (no `RELAY_KEYS`), with the salt
/// `"pqrelay/2 relay key from client-id secret"`.
pub fn seed_from_client_id_secret(secret: &[u8]) -> DecapsulationSeed {
    derive_seed(labels::RELAY_KEY_FROM_SECRET_SALT, secret)
}

/// A relay key pair (§4). The private part is zeroized on drop and never shown by `Debug`.
#[derive(Clone)]
pub struct RelayKey {
    dk: DecapsulationKey,
    config: RelayKeyConfig,
}

impl RelayKey {
    /// The key pair of a seed.
    pub fn from_seed(seed: &DecapsulationSeed) -> Self {
        let dk = seed.expand();
        let config = RelayKeyConfig::new(dk.encapsulation_key().clone());
        Self { dk, config }
    }

    /// The key pair of a `RELAY_KEYS` value.
    pub fn from_value(value: &str) -> Result<Self, RelayKeyError> {
        Ok(Self::from_seed(&seed_from_value(value)?))
    }

    /// The key pair derived from a client-id secret.
    pub fn from_client_id_secret(secret: &[u8]) -> Self {
        Self::from_seed(&seed_from_client_id_secret(secret))
    }

    /// The public configuration.
    pub fn config(&self) -> &RelayKeyConfig {
        &self.config
    }

    /// The key id `fp`.
    pub fn id(&self) -> KeyId {
        self.config.id
    }

    /// Decapsulates a client's `ct_R`; an all-zero X25519 share is
    /// [`PairingError::NonContributory`].
    pub fn decapsulate(&self, ct: &KemCiphertext) -> Result<SharedSecret, PairingError> {
        self.dk.decapsulate(ct)
    }
}

impl fmt::Debug for RelayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelayKey({})", self.config.id)
    }
}

/// A relay's keys in configuration order: the current key first, then the previous ones (1 to
/// 8, distinct).
#[derive(Clone, Debug)]
pub struct RelayKeySet {
    keys: Vec<RelayKey>,
}

impl RelayKeySet {
    /// A key set; fails unless it holds 1 to 8 keys with distinct short ids.
    pub fn new(keys: Vec<RelayKey>) -> Result<Self, RelayKeyError> {
        if keys.is_empty() || keys.len() > MAX_RELAY_KEYS {
            return Err(RelayKeyError::Count);
        }
        for (i, k) in keys.iter().enumerate() {
            if keys
                .iter()
                .skip(i + 1)
                .any(|o| o.id().kid() == k.id().kid())
            {
                return Err(RelayKeyError::Duplicate);
            }
        }
        Ok(Self { keys })
    }

    /// The keys of `RELAY_KEYS` values, current first.
    pub fn from_values<'a>(
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, RelayKeyError> {
        Self::new(
            values
                .into_iter()
                .map(RelayKey::from_value)
                .collect::<Result<_, _>>()?,
        )
    }

    /// The default keys without `RELAY_KEYS` (§4): one per client-id secret, current first.
    pub fn from_client_id_secrets<'a>(
        secrets: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Self, RelayKeyError> {
        Self::new(
            secrets
                .into_iter()
                .map(RelayKey::from_client_id_secret)
                .collect(),
        )
    }

    /// Every key, current first.
    pub fn keys(&self) -> &[RelayKey] {
        &self.keys
    }

    /// The current key (new clients pair with it).
    pub fn current(&self) -> Option<&RelayKey> {
        self.keys.first()
    }

    /// The key with id `fp`.
    pub fn find(&self, fp: &KeyId) -> Option<&RelayKey> {
        self.keys.iter().find(|k| k.id() == *fp)
    }

    /// The key with short id `kid`.
    pub fn find_kid(&self, kid: &Kid) -> Option<&RelayKey> {
        self.keys.iter().find(|k| k.id().kid() == *kid)
    }

    /// §14: a pair's state names a key still configured, else [`StateError::UnknownRelayKey`]
    /// (569).
    pub fn check_kid(&self, kid: &Kid) -> Result<(), StateError> {
        self.find_kid(kid)
            .map(|_| ())
            .ok_or(StateError::UnknownRelayKey)
    }

    /// The key ids in configuration order (`fp'_1..fp'_k` of §6).
    pub fn ids(&self) -> Vec<KeyId> {
        self.keys.iter().map(RelayKey::id).collect()
    }

    /// The fingerprints in configuration order (for messages and `check-config`).
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.id().fingerprint()).collect()
    }
}
