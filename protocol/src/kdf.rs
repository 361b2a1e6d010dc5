//! The key-derivation primitives every part of the protocol uses (RustCrypto `hkdf`, `hmac`,
//! `sha2`): HKDF-SHA256 extract and expand to 32 bytes, and HMAC-SHA256. A leaf.

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

/// HKDF-Expand with a 32-byte PRK to 32 bytes.
pub(crate) fn expand32(prk: &[u8; 32], info: &[&[u8]]) -> [u8; 32] {
    let [out] = expand32_each(prk, [info]);
    out
}

/// HKDF-Expand with one 32-byte PRK to 32 bytes for each of `infos`: the PRK's HMAC key
/// is set up once for all of them.
pub(crate) fn expand32_each<const N: usize>(prk: &[u8; 32], infos: [&[&[u8]]; N]) -> [[u8; 32]; N] {
    let hk = Hkdf::<Sha256>::from_prk(prk).expect("a 32-byte PRK is valid for SHA-256");
    infos.map(|info| {
        let mut out = [0u8; 32];
        hk.expand_multi_info(info, &mut out)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        out
    })
}

/// HMAC-SHA256 of the concatenation of `parts` under `key` (any length).
pub(crate) fn hmac32(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    HmacKey::new(key).mac(parts)
}

/// HMAC-SHA256 under one key, its pads hashed once for every message under it. Zeroized on
/// drop (the `zeroize` features of `hmac` and `sha2`).
#[derive(Clone)]
pub(crate) struct HmacKey(hmac::Hmac<Sha256>);

impl HmacKey {
    /// Keys HMAC-SHA256 with `key` (any length).
    pub(crate) fn new(key: &[u8]) -> Self {
        use hmac::KeyInit as _;
        Self(hmac::Hmac::new_from_slice(key).expect("HMAC accepts keys of any length"))
    }

    /// HMAC-SHA256 of the concatenation of `parts`.
    pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        use hmac::Mac as _;
        let mut m = self.0.clone();
        for part in parts {
            m.update(part);
        }
        m.finalize().into_bytes().into()
    }
}

/// HKDF-Extract to a 32-byte PRK.
pub(crate) fn extract(salt: &[u8], ikm: &[u8]) -> Zeroizing<[u8; 32]> {
    let (prk, _) = Hkdf::<Sha256>::extract(Some(salt), ikm);
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&prk);
    out
}
