//! X-Wing (draft-connolly-cfrg-xwing-kem-06) over its parts (§2): ML-KEM-768 from `ml-kem`,
//! X25519 from `x25519-dalek`, SHAKE-256 and SHA3-256 from `shake` and `sha3`.
//!
//! The draft's key expansion, encapsulation, decapsulation and combiner are written here on
//! those crates (the Python client composes X-Wing the same way) rather than taken from the
//! `x-wing` crate, for one reason: `x-wing` 0.1 expands the 32-byte seed again on every
//! decapsulation (an ML-KEM key generation and an X25519 base-point multiplication, about 40%
//! of a decapsulation), and the relay decapsulates with the same relay key for every pairing.
//! Here the seed is expanded once ([`DecapsulationSeed::expand`]), as the draft allows
//! ("Keeping expanded decapsulation key around"). The draft-06 test vectors
//! (`tests/vectors.rs`) and a property test against `x-wing` (`tests/properties.rs`) check that
//! both give the same keys, ciphertexts and shared secrets.
//!
//! This crate never draws randomness: callers pass the 32-byte seeds and the 64-byte
//! encapsulation randomness (`eseed`), from a CSPRNG in production and fixed values in the test
//! vectors.

use core::fmt;

use ml_kem::{Decapsulate as _, FromSeed as _, KeyExport as _, MlKem768};
use sha3::{Digest as _, Sha3_256};
use shake::{ExtendableOutput as _, Shake256, XofReader as _};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::PairingError;

/// Size of an encapsulation key `ek`.
pub const ENCAPSULATION_KEY_SIZE: usize = 1216;
/// Size of a KEM ciphertext `ct`.
pub const CIPHERTEXT_SIZE: usize = 1120;
/// Size of a decapsulation seed.
pub const SEED_SIZE: usize = 32;
/// Size of the encapsulation randomness `eseed`.
pub const ESEED_SIZE: usize = 64;
/// Size of a shared secret.
pub const SHARED_SECRET_SIZE: usize = 32;

/// Size of the ML-KEM-768 part of `ek`; the X25519 public key follows it.
const MLKEM_EK_SIZE: usize = 1184;
/// Size of the ML-KEM-768 part of `ct`; the X25519 ephemeral public key follows it.
const MLKEM_CT_SIZE: usize = 1088;
/// The combiner's label (draft-06 `XWingLabel`).
const X_WING_LABEL: &[u8; 6] = br"\.//^\";

type MlKemDecapsulationKey = ml_kem::ml_kem_768::DecapsulationKey;
type MlKemEncapsulationKey = ml_kem::ml_kem_768::EncapsulationKey;

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

    /// The key pair of this seed, ready to decapsulate (draft-06 `expandDecapsulationKey`:
    /// SHAKE-256 of the seed gives the ML-KEM-768 key-generation seed `d || z`, then the
    /// X25519 secret).
    pub fn expand(&self) -> DecapsulationKey {
        let mut xof = Shake256::default();
        shake::Update::update(&mut xof, &self.0);
        let mut expanded = xof.finalize_xof();
        let mut seed_m = Zeroizing::new(ml_kem::Seed::default());
        expanded.read(seed_m.as_mut_slice());
        let mut seed_x = Zeroizing::new([0u8; 32]);
        expanded.read(seed_x.as_mut());
        let (sk_m, pk_m) = MlKem768::from_seed(&seed_m);
        let sk_x = StaticSecret::from(*seed_x);
        let pk_x = PublicKey::from(&sk_x);
        DecapsulationKey {
            sk_m: Box::new(sk_m),
            sk_x,
            ek: EncapsulationKey::from_parts(pk_m, pk_x),
        }
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

/// An X-Wing key pair expanded from its seed: the ML-KEM-768 decapsulation key, the X25519
/// secret and `ek`. The secrets are zeroized on drop (by `ml-kem` and `x25519-dalek`); `Debug`
/// shows nothing of them.
#[derive(Clone)]
pub struct DecapsulationKey {
    sk_m: Box<MlKemDecapsulationKey>,
    sk_x: StaticSecret,
    ek: EncapsulationKey,
}

impl DecapsulationKey {
    /// The encapsulation key `ek` of this pair.
    pub fn encapsulation_key(&self) -> &EncapsulationKey {
        &self.ek
    }

    /// Decapsulates `ct` (draft-06 `Decapsulate`). Fails with [`PairingError::NonContributory`]
    /// when the X25519 shared secret is all zero (§2).
    pub fn decapsulate(&self, ct: &KemCiphertext) -> Result<SharedSecret, PairingError> {
        let (ct_m, ct_x) = ct.split().ok_or(PairingError::BadCiphertext)?;
        let ss_m = Zeroizing::new(self.sk_m.decapsulate(ct_m));
        let ss_x = self.sk_x.diffie_hellman(&ct_x);
        if !ss_x.was_contributory() {
            return Err(PairingError::NonContributory);
        }
        Ok(combiner(&ss_m, ss_x.as_bytes(), &ct_x, &self.ek.pk_x))
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
    pk_m: Box<MlKemEncapsulationKey>,
    pk_x: PublicKey,
}

impl EncapsulationKey {
    /// `ek` of a key pair made here (its ML-KEM part passes the modulus check by construction).
    fn from_parts(pk_m: MlKemEncapsulationKey, pk_x: PublicKey) -> Self {
        let mut bytes = Box::new([0u8; ENCAPSULATION_KEY_SIZE]);
        let (m, x) = bytes.split_at_mut(MLKEM_EK_SIZE);
        m.copy_from_slice(&pk_m.to_bytes());
        x.copy_from_slice(pk_x.as_bytes());
        Self {
            bytes,
            pk_m: Box::new(pk_m),
            pk_x,
        }
    }

    /// Parses and validates `ek` (§2): 1216 bytes, the ML-KEM-768 part passes the FIPS 203
    /// modulus check and the X25519 part is not a low-order point.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PairingError> {
        let arr: [u8; ENCAPSULATION_KEY_SIZE] = bytes
            .try_into()
            .map_err(|_| PairingError::BadEncapsulationKey)?;
        let (m, x) = arr.split_at(MLKEM_EK_SIZE);
        let m = m
            .try_into()
            .map_err(|_| PairingError::BadEncapsulationKey)?;
        let pk_m = MlKemEncapsulationKey::new(m).map_err(|_| PairingError::BadEncapsulationKey)?;
        let x: [u8; 32] = x
            .try_into()
            .map_err(|_| PairingError::BadEncapsulationKey)?;
        let pk_x = PublicKey::from(x);
        // Any clamped scalar times a low-order point is zero; a fixed one suffices.
        let probe = StaticSecret::from([0x5a; 32]);
        if !probe.diffie_hellman(&pk_x).was_contributory() {
            return Err(PairingError::BadEncapsulationKey);
        }
        Ok(Self {
            bytes: Box::new(arr),
            pk_m: Box::new(pk_m),
            pk_x,
        })
    }

    /// The 1216 bytes of `ek`.
    pub fn as_bytes(&self) -> &[u8; ENCAPSULATION_KEY_SIZE] {
        &self.bytes
    }

    /// Deterministic X-Wing encapsulation (draft-06 `EncapsulateDerand`) with 64 bytes of
    /// randomness `eseed`, which MUST be fresh uniform random bytes outside tests: the first 32
    /// for ML-KEM-768, the last 32 the X25519 ephemeral secret. Returns `(ct, ss)`.
    pub fn encapsulate(&self, eseed: &[u8; ESEED_SIZE]) -> (KemCiphertext, SharedSecret) {
        let (rand_m, rand_x) = eseed.split_at(32);
        let mut m = Zeroizing::new(ml_kem::B32::default());
        m.copy_from_slice(rand_m);
        let mut x = Zeroizing::new([0u8; 32]);
        x.copy_from_slice(rand_x);
        let (ct_m, ss_m) = self.pk_m.encapsulate_deterministic(&m);
        let ss_m = Zeroizing::new(ss_m);
        let ek_x = StaticSecret::from(*x);
        let ct_x = PublicKey::from(&ek_x);
        let ss_x = ek_x.diffie_hellman(&self.pk_x);
        let mut ct = Box::new([0u8; CIPHERTEXT_SIZE]);
        let (cm, cx) = ct.split_at_mut(MLKEM_CT_SIZE);
        cm.copy_from_slice(&ct_m);
        cx.copy_from_slice(ct_x.as_bytes());
        let ss = combiner(&ss_m, ss_x.as_bytes(), &ct_x, &self.pk_x);
        (KemCiphertext(ct), ss)
    }
}

/// The draft-06 combiner: `SHA3-256(ss_M || ss_X || ct_X || pk_X || XWingLabel)`.
fn combiner(ss_m: &[u8], ss_x: &[u8; 32], ct_x: &PublicKey, pk_x: &PublicKey) -> SharedSecret {
    let mut h = Sha3_256::new();
    h.update(ss_m);
    h.update(ss_x);
    h.update(ct_x.as_bytes());
    h.update(pk_x.as_bytes());
    h.update(X_WING_LABEL);
    SharedSecret(h.finalize().into())
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

    /// The ML-KEM-768 ciphertext and the X25519 ephemeral public key `ct_X` (always `Some`:
    /// the sizes add up).
    fn split(&self) -> Option<(&ml_kem::Ciphertext<MlKem768>, PublicKey)> {
        let (m, x) = self.0.split_at(MLKEM_CT_SIZE);
        let ct_x: [u8; 32] = x.try_into().ok()?;
        Some((m.try_into().ok()?, PublicKey::from(ct_x)))
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
