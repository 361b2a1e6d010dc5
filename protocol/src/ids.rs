//! Client ids, pair ids and signed client id tokens (§3).

use core::fmt;

use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::codec::{b64_decode_array, b64_encode, b64_write};
use crate::error::ClientIdError;
use crate::kdf::HmacKey;
use crate::labels;

/// Length of a client id token in characters (`b64` of 48 bytes).
pub const TOKEN_LEN: usize = 64;

macro_rules! id16 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 16]);

        impl $name {
            /// The raw 16 bytes.
            pub fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }

            /// Parses `b64(id)` (exactly 22 characters, strict).
            pub fn from_b64(text: &str) -> Option<Self> {
                b64_decode_array(text).map(Self)
            }

            /// `b64(id)`, 22 characters.
            pub fn to_b64(&self) -> String {
                b64_encode(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                b64_write(f, &self.0)
            }
        }
    };
}

id16! {
    /// A client id: 16 random bytes chosen by the relay, bound into every key and AAD.
    ClientId
}

id16! {
    /// A pair id: 16 random bytes chosen by the client.
    PairId
}

/// A client id token `b64(id || mac)` (64 characters). Parsing checks the shape only; use
/// [`verify`] for the signature.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClientIdToken {
    id: ClientId,
    mac: [u8; 32],
}

impl ClientIdToken {
    /// Parses the 64-character token (strict b64 of 48 bytes). Anything else, whatever its
    /// length, is [`ClientIdError::Malformed`] (566, §3).
    pub fn parse(text: &str) -> Result<Self, ClientIdError> {
        let raw: [u8; 48] = b64_decode_array(text).ok_or(ClientIdError::Malformed)?;
        let (id, mac) = raw.split_at(16);
        Ok(Self {
            id: ClientId(id.try_into().map_err(|_| ClientIdError::Malformed)?),
            mac: mac.try_into().map_err(|_| ClientIdError::Malformed)?,
        })
    }

    /// The client id carried by the token (not yet verified).
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// The 32-byte MAC carried by the token.
    pub fn mac(&self) -> &[u8; 32] {
        &self.mac
    }

    /// The token text, 64 characters.
    pub fn encode(&self) -> String {
        b64_encode(&self.raw())
    }

    /// `id || mac`.
    fn raw(&self) -> [u8; 48] {
        let mut raw = [0u8; 48];
        let (id, mac) = raw.split_at_mut(16);
        id.copy_from_slice(&self.id.0);
        mac.copy_from_slice(&self.mac);
        raw
    }
}

impl fmt::Debug for ClientIdToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdToken")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for ClientIdToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        b64_write(f, &self.raw())
    }
}

fn mac(secret: &HmacKey, id: &ClientId) -> [u8; 32] {
    secret.mac(&[labels::CLIENT_ID, &id.0])
}

/// Signs `id` with `secret` (the UTF-8 bytes of `CLIENT_ID_SECRET`):
/// `b64(id || HMAC(secret, "pqrelay/2 client-id" || id))`.
pub fn issue(secret: &[u8], id: ClientId) -> ClientIdToken {
    issue_keyed(&HmacKey::new(secret), id)
}

fn issue_keyed(secret: &HmacKey, id: ClientId) -> ClientIdToken {
    ClientIdToken {
        mac: mac(secret, &id),
        id,
    }
}

/// A token that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedClientId {
    /// The verified client id.
    pub id: ClientId,
    /// The token to hand back: the given one, or a re-signed one under the current secret.
    pub token: ClientIdToken,
    /// True when the token verified under a previous secret and was re-signed.
    pub resigned: bool,
}

/// Verifies `token` in constant time against `secrets`, the current secret first and then the
/// previous ones (§3). A token valid under a previous secret comes back re-signed.
pub fn verify(secrets: &[&[u8]], token: &ClientIdToken) -> Result<VerifiedClientId, ClientIdError> {
    let keys: Vec<HmacKey> = secrets.iter().map(|s| HmacKey::new(s)).collect();
    verify_with(keys.iter(), token)
}

fn verify_with<'a>(
    mut secrets: impl Iterator<Item = &'a HmacKey>,
    token: &ClientIdToken,
) -> Result<VerifiedClientId, ClientIdError> {
    let current = secrets.next().ok_or(ClientIdError::BadSignature)?;
    if bool::from(mac(current, &token.id).ct_eq(&token.mac)) {
        return Ok(VerifiedClientId {
            id: token.id,
            token: token.clone(),
            resigned: false,
        });
    }
    // Every previous secret is tried, so the time taken does not say which one matched.
    let mut ok = subtle::Choice::from(0);
    for secret in secrets {
        ok |= mac(secret, &token.id).ct_eq(&token.mac);
    }
    if bool::from(ok) {
        Ok(VerifiedClientId {
            id: token.id,
            token: issue_keyed(current, token.id),
            resigned: true,
        })
    } else {
        Err(ClientIdError::BadSignature)
    }
}

/// The relay's client-id secrets: `CLIENT_ID_SECRET` and `CLIENT_ID_PREVIOUS_SECRETS` (§3),
/// zeroized on drop. Issues tokens for ids the caller draws at random, and verifies tokens.
#[derive(Clone)]
pub struct ClientIdSigner {
    /// Current secret first.
    secrets: Vec<Zeroizing<Vec<u8>>>,
    /// HMAC-SHA256 keyed with each secret, in the same order (the pads hashed once).
    keys: Vec<HmacKey>,
}

impl ClientIdSigner {
    /// A signer for the `current` secret that also accepts tokens of the `previous` ones.
    pub fn new<P: AsRef<[u8]>>(current: &[u8], previous: impl IntoIterator<Item = P>) -> Self {
        let mut secrets = vec![Zeroizing::new(current.to_vec())];
        secrets.extend(
            previous
                .into_iter()
                .map(|p| Zeroizing::new(p.as_ref().to_vec())),
        );
        let keys = secrets.iter().map(|s| HmacKey::new(s)).collect();
        Self { secrets, keys }
    }

    /// The token of `id` (16 random bytes the caller drew from a CSPRNG) under the current
    /// secret.
    pub fn issue(&self, id: ClientId) -> ClientIdToken {
        match self.keys.first() {
            Some(current) => issue_keyed(current, id),
            None => issue(&[], id),
        }
    }

    /// Verifies a parsed token (current secret, then each previous one); a token of a previous
    /// secret comes back re-signed.
    pub fn verify(&self, token: &ClientIdToken) -> Result<VerifiedClientId, ClientIdError> {
        verify_with(self.keys.iter(), token)
    }

    /// Parses and verifies token text: not 64 characters of strict b64 is
    /// [`ClientIdError::Malformed`], a MAC that does not verify [`ClientIdError::BadSignature`]
    /// (both 566).
    pub fn verify_text(&self, token: &str) -> Result<VerifiedClientId, ClientIdError> {
        self.verify(&ClientIdToken::parse(token)?)
    }

    /// The previous secrets (`CLIENT_ID_PREVIOUS_SECRETS`) held besides the current one.
    pub fn previous_count(&self) -> usize {
        self.secrets.len().saturating_sub(1)
    }

    /// The current secret, then the previous ones (to derive the default relay keys, §4).
    pub fn secrets(&self) -> impl Iterator<Item = &[u8]> {
        self.secrets.iter().map(|s| s.as_slice())
    }
}

impl fmt::Debug for ClientIdSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdSigner")
            .field("previous_secrets", &self.previous_count())
            .finish_non_exhaustive()
    }
}
