//! Signed client ids.
//!
//! A client id is 16 random bytes. The relay hands it out as a token:
//! `base64url-no-padding(id[16] || HMAC-SHA256(key = CLIENT_ID_SECRET, msg = "pqrelay/1 client-id" || id))`,
//! 64 characters. Verification recomputes the MAC in constant time under the current secret,
//! then under each previous secret (`CLIENT_ID_PREVIOUS_SECRETS`), so a secret rotation logs
//! nobody out: a token valid under a previous secret is accepted and re-signed with the current
//! one.
//!
//! ```
//! use pqrelay::client_id::ClientIdSigner;
//! let signer = ClientIdSigner::new(b"a-current-secret-of-32-characters!", Vec::new());
//! let (id, token) = signer.issue();
//! let verified = signer.verify(&token).unwrap();
//! assert_eq!(verified.id, id.0);
//! assert!(verified.token_is_current);
//! ```

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Domain-separation prefix of the MAC input.
const MAC_CONTEXT: &[u8] = b"pqrelay/1 client-id";
/// Length of a raw client id in bytes.
pub const CLIENT_ID_LEN: usize = 16;
/// Length of the HMAC-SHA256 tag in bytes.
const TAG_LEN: usize = 32;
/// Length of a token in characters (base64url of 48 bytes, no padding).
pub const TOKEN_LEN: usize = 64;

/// A raw 128-bit client id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientId(pub [u8; CLIENT_ID_LEN]);

impl ClientId {
    /// A fresh random id from the operating system's CSPRNG.
    pub fn random() -> Result<ClientId, ClientIdError> {
        let mut id = [0u8; CLIENT_ID_LEN];
        getrandom::getrandom(&mut id).map_err(|_| ClientIdError::Rng)?;
        Ok(ClientId(id))
    }

    /// Lower-case hex, for logs (an id is not a secret; the token's MAC is what proves it).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A token that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The raw client id inside the token.
    pub id: [u8; CLIENT_ID_LEN],
    /// `true` when the token was signed with the current secret.
    pub token_is_current: bool,
    /// The token signed with the current secret (equal to the input when `token_is_current`).
    pub current_token: String,
}

/// Why a token was rejected. Deliberately coarse: the peer learns only "invalid".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientIdError {
    /// Not 64 base64url characters.
    Malformed,
    /// The MAC does not verify under any accepted secret.
    BadSignature,
    /// The operating system's random generator failed.
    Rng,
}

impl std::fmt::Display for ClientIdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClientIdError::Malformed => "client id token is malformed",
            ClientIdError::BadSignature => "client id signature does not verify",
            ClientIdError::Rng => "random generator failed",
        })
    }
}

impl std::error::Error for ClientIdError {}

/// Issues and verifies client-id tokens. Cheap to share behind an `Arc`.
pub struct ClientIdSigner {
    current: Vec<u8>,
    previous: Vec<Vec<u8>>,
}

impl std::fmt::Debug for ClientIdSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdSigner")
            .field("previous_secrets", &self.previous.len())
            .finish_non_exhaustive()
    }
}

impl ClientIdSigner {
    /// A signer for the current secret, also accepting tokens signed with `previous` secrets.
    pub fn new(current: &[u8], previous: Vec<Vec<u8>>) -> ClientIdSigner {
        ClientIdSigner {
            current: current.to_vec(),
            previous,
        }
    }

    /// A fresh random id and its token.
    ///
    /// Panics only if the operating system's random generator fails, which leaves the relay
    /// unable to do anything safely; use [`Self::try_issue`] to handle that case.
    pub fn issue(&self) -> (ClientId, String) {
        self.try_issue().expect("operating system RNG failed")
    }

    /// Like [`Self::issue`] but reports a failing random generator.
    pub fn try_issue(&self) -> Result<(ClientId, String), ClientIdError> {
        let id = ClientId::random()?;
        Ok((id, self.sign(&id)))
    }

    /// The token of `id` under the current secret.
    pub fn sign(&self, id: &ClientId) -> String {
        let tag = mac(&self.current, &id.0);
        let mut raw = [0u8; CLIENT_ID_LEN + TAG_LEN];
        raw[..CLIENT_ID_LEN].copy_from_slice(&id.0);
        raw[CLIENT_ID_LEN..].copy_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Checks a token: the current secret first, then each previous secret.
    pub fn verify(&self, token: &str) -> Result<Verified, ClientIdError> {
        if token.len() != TOKEN_LEN {
            return Err(ClientIdError::Malformed);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(token.as_bytes())
            .map_err(|_| ClientIdError::Malformed)?;
        let (id_bytes, tag) = raw.split_at(CLIENT_ID_LEN.min(raw.len()));
        let id: [u8; CLIENT_ID_LEN] = id_bytes.try_into().map_err(|_| ClientIdError::Malformed)?;
        if tag.len() != TAG_LEN {
            return Err(ClientIdError::Malformed);
        }
        if bool::from(mac(&self.current, &id).ct_eq(tag)) {
            return Ok(Verified {
                id,
                token_is_current: true,
                current_token: token.to_owned(),
            });
        }
        let mut ok = subtle::Choice::from(0);
        for secret in &self.previous {
            ok |= mac(secret, &id).ct_eq(tag);
        }
        if bool::from(ok) {
            Ok(Verified {
                id,
                token_is_current: false,
                current_token: self.sign(&ClientId(id)),
            })
        } else {
            Err(ClientIdError::BadSignature)
        }
    }
}

fn mac(secret: &[u8], id: &[u8; CLIENT_ID_LEN]) -> [u8; TAG_LEN] {
    // HMAC accepts keys of any length, so this never fails.
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(MAC_CONTEXT);
    m.update(id);
    m.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &[u8] = b"old-secret-old-secret-old-secret";
    const NEW: &[u8] = b"new-secret-new-secret-new-secret";

    #[test]
    fn token_is_64_chars_and_round_trips() {
        let s = ClientIdSigner::new(NEW, vec![]);
        let (id, token) = s.issue();
        assert_eq!(token.len(), TOKEN_LEN);
        let v = s.verify(&token).unwrap();
        assert_eq!(v.id, id.0);
        assert!(v.token_is_current);
        assert_eq!(v.current_token, token);
    }

    #[test]
    fn token_matches_the_normative_construction() {
        let s = ClientIdSigner::new(b"k", vec![]);
        let id = ClientId([7u8; 16]);
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(b"k").unwrap();
        m.update(b"pqrelay/1 client-id");
        m.update(&[7u8; 16]);
        let mut raw = vec![7u8; 16];
        raw.extend_from_slice(&m.finalize().into_bytes());
        assert_eq!(s.sign(&id), URL_SAFE_NO_PAD.encode(raw));
    }

    #[test]
    fn verify_fails_on_any_flipped_character() {
        let s = ClientIdSigner::new(NEW, vec![]);
        let (_, token) = s.issue();
        for i in 0..token.len() {
            let mut b = token.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(b).unwrap();
            assert!(s.verify(&t).is_err(), "flip at {i} accepted");
        }
    }

    #[test]
    fn verify_rejects_malformed_input() {
        let s = ClientIdSigner::new(NEW, vec![]);
        for t in ["", "abc", &"!".repeat(64), &"A".repeat(65)] {
            assert_eq!(s.verify(t), Err(ClientIdError::Malformed));
        }
    }

    #[test]
    fn rotation_accepts_previous_secret_and_resigns() {
        let old = ClientIdSigner::new(OLD, vec![]);
        let (id, old_token) = old.issue();
        let rotated = ClientIdSigner::new(NEW, vec![OLD.to_vec()]);
        let v = rotated.verify(&old_token).unwrap();
        assert_eq!(v.id, id.0);
        assert!(!v.token_is_current);
        assert_ne!(v.current_token, old_token);
        assert!(rotated.verify(&v.current_token).unwrap().token_is_current);
        let without = ClientIdSigner::new(NEW, vec![]);
        assert_eq!(without.verify(&old_token), Err(ClientIdError::BadSignature));
    }
}
