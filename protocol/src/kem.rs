//! X-Wing (draft-connolly-cfrg-xwing-kem-06) newtypes over the `x-wing` crate (§2).
//!
//! This crate never draws randomness: callers pass the 32-byte seeds and the 64-byte
//! encapsulation randomness (`eseed`), from a CSPRNG in production and fixed values in the test
//! vectors.

use core::fmt;

use x_wing::{Decapsulator as _, KeyExport as _, TryDecapsulate as _};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::PairingError;

/// Size of an encapsulation key `ek`.
pub const ENCAPSULATION_KEY_SIZE: usize = x_wing::ENCAPSULATION_KEY_SIZE;
/// Size of a KEM ciphertext `ct`.
pub const CIPHERTEXT_SIZE: usize = x_wing::CIPHERTEXT_SIZE;
/// Size of a decapsulation seed.
pub const SEED_SIZE: usize = x_wing::DECAPSULATION_KEY_SIZE;
/// Size of the encapsulation randomness `eseed`.
pub const ESEED_SIZE: usize = x_wing::ENCAPSULATION_RANDOMNESS_SIZE;
/// Size of a shared secret.
pub const SHARED_SECRET_SIZE: usize = 32;

/// Offset of the X25519 public key inside `ek` (after the ML-KEM-768 key).
const X25519_OFFSET: usize = 1184;

/// A 32-byte X-Wing decapsulation seed (the private key). Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DecapsulationSeed([u8; SEED_SIZE]);

impl DecapsulationSeed {
    /// Wraps 32 random bytes.
    pub fn from_bytes(seed: [u8; SEED_SIZE]) -> Self {
        Self(seed)
    }

    /// The seed bytes (for the test vectors; keep them secret).
    pub fn as_bytes(&self) -> &[u8; SEED_SIZE] {
        &self.0
    }

    /// The key pair of this seed: the expanded decapsulation key, ready to decapsulate.
    pub fn expand(&self) -> DecapsulationKey {
        let dk = x_wing::DecapsulationKeyRejectNonContrib::from(self.0);
        let ek = EncapsulationKey::from_x_wing(dk.encapsulation_key().clone());
        DecapsulationKey { dk, ek }
    }

    /// The matching encapsulation key `ek`.
    pub fn encapsulation_key(&self) -> EncapsulationKey {
        self.expand().ek
    }
}

impl fmt::Debug for DecapsulationSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DecapsulationSeed(..)")
    }
}

/// An X-Wing key pair expanded from its seed. The seed inside is zeroized on drop (by
/// `x-wing`); `Debug` shows nothing of it.
#[derive(Clone)]
pub struct DecapsulationKey {
    dk: x_wing::DecapsulationKeyRejectNonContrib,
    ek: EncapsulationKey,
}

impl DecapsulationKey {
    /// The encapsulation key `ek` of this pair.
    pub fn encapsulation_key(&self) -> &EncapsulationKey {
        &self.ek
    }

    /// Decapsulates `ct`. Fails with [`PairingError::NonContributory`] when the X25519 shared
    /// secret is all zero (§2).
    pub fn decapsulate(&self, ct: &KemCiphertext) -> Result<SharedSecret, PairingError> {
        let ct = x_wing::Ciphertext::from(*ct.0);
        let ss = self
            .dk
            .try_decapsulate(&ct)
            .map_err(|_| PairingError::NonContributory)?;
        Ok(SharedSecret(ss.into()))
    }
}

impl fmt::Debug for DecapsulationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DecapsulationKey(..)")
    }
}

/// A validated X-Wing encapsulation key `ek` (1216 bytes).
#[derive(Clone)]
pub struct EncapsulationKey {
    bytes: Box<[u8; ENCAPSULATION_KEY_SIZE]>,
    key: x_wing::EncapsulationKey,
}

impl EncapsulationKey {
    fn from_x_wing(key: x_wing::EncapsulationKey) -> Self {
        let mut bytes = Box::new([0u8; ENCAPSULATION_KEY_SIZE]);
        bytes.copy_from_slice(&key.to_bytes());
        Self { bytes, key }
    }

    /// Parses and validates `ek` (§2): 1216 bytes, the ML-KEM-768 part passes the FIPS 203
    /// modulus check and the X25519 part is not a low-order point.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PairingError> {
        let arr: [u8; ENCAPSULATION_KEY_SIZE] = bytes
            .try_into()
            .map_err(|_| PairingError::BadEncapsulationKey)?;
        let key = x_wing::EncapsulationKey::try_from(bytes)
            .map_err(|_| PairingError::BadEncapsulationKey)?;
        let x: [u8; 32] = arr
            .get(X25519_OFFSET..)
            .and_then(|s| s.try_into().ok())
            .ok_or(PairingError::BadEncapsulationKey)?;
        // Any clamped scalar times a low-order point is zero; a fixed one suffices.
        let probe = x25519_dalek::StaticSecret::from([0x5a; 32]);
        if !probe
            .diffie_hellman(&x25519_dalek::PublicKey::from(x))
            .was_contributory()
        {
            return Err(PairingError::BadEncapsulationKey);
        }
        Ok(Self {
            bytes: Box::new(arr),
            key,
        })
    }

    /// The 1216 bytes of `ek`.
    pub fn as_bytes(&self) -> &[u8; ENCAPSULATION_KEY_SIZE] {
        &self.bytes
    }

    /// Deterministic X-Wing encapsulation with 64 bytes of randomness `eseed` (which MUST be
    /// fresh uniform random bytes outside tests). Returns `(ct, ss)`.
    pub fn encapsulate(&self, eseed: &[u8; ESEED_SIZE]) -> (KemCiphertext, SharedSecret) {
        let mut rnd = x_wing::kem::common::array::Array::from(*eseed);
        let (ct, ss) = self.key.encapsulate_deterministic(&rnd);
        rnd.zeroize();
        let mut ct_bytes = Box::new([0u8; CIPHERTEXT_SIZE]);
        ct_bytes.copy_from_slice(&ct);
        (KemCiphertext(ct_bytes), SharedSecret(ss.into()))
    }
}

impl fmt::Debug for EncapsulationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncapsulationKey(..)")
    }
}

impl PartialEq for EncapsulationKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for EncapsulationKey {}

/// An X-Wing ciphertext `ct` (1120 bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct KemCiphertext(Box<[u8; CIPHERTEXT_SIZE]>);

impl KemCiphertext {
    /// Wraps 1120 bytes (any bytes are a well-formed ciphertext).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PairingError> {
        let arr: [u8; CIPHERTEXT_SIZE] =
            bytes.try_into().map_err(|_| PairingError::BadCiphertext)?;
        Ok(Self(Box::new(arr)))
    }

    /// The 1120 bytes of `ct`.
    pub fn as_bytes(&self) -> &[u8; CIPHERTEXT_SIZE] {
        &self.0
    }
}

impl fmt::Debug for KemCiphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KemCiphertext(..)")
    }
}

/// The 32-byte X-Wing shared secret `ss`. Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SharedSecret([u8; SHARED_SECRET_SIZE]);

impl SharedSecret {
    /// The secret bytes (for key derivation and the test vectors).
    pub fn as_bytes(&self) -> &[u8; SHARED_SECRET_SIZE] {
        &self.0
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSecret(..)")
    }
}
