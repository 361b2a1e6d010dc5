//! Client ids, pair ids and signed client id tokens (§3).

use core::fmt;

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use crate::codec::{b64_decode_array, b64_encode};
use crate::error::ClientIdError;

/// Domain label of the client id MAC.
const CLIENT_ID_LABEL: &[u8] = b"pqrelay/1 client-id";

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
                write!(f, "{}({})", stringify!($name), self.to_b64())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_b64())
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
    /// Parses the 64-character token (strict b64 of 48 bytes).
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
        let mut raw = [0u8; 48];
        raw[..16].copy_from_slice(&self.id.0);
        raw[16..].copy_from_slice(&self.mac);
        b64_encode(&raw)
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
        f.write_str(&self.encode())
    }
}

fn mac(secret: &[u8], id: &ClientId) -> [u8; 32] {
    let mut m = <Hmac<Sha256>>::new_from_slice(secret).expect("HMAC accepts any key length");
    m.update(CLIENT_ID_LABEL);
    m.update(&id.0);
    m.finalize().into_bytes().into()
}

/// Signs `id` with `secret` (the UTF-8 bytes of `CLIENT_ID_SECRET`).
pub fn issue(secret: &[u8], id: ClientId) -> ClientIdToken {
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
    for (i, secret) in secrets.iter().enumerate() {
        if bool::from(mac(secret, &token.id).ct_eq(&token.mac)) {
            let resigned = i > 0;
            let token = match (resigned, secrets.first()) {
                (true, Some(current)) => issue(current, token.id),
                _ => token.clone(),
            };
            return Ok(VerifiedClientId {
                id: token.id,
                token,
                resigned,
            });
        }
    }
    Err(ClientIdError::BadSignature)
}
