//! Relay-side pair state sealed at rest (§14): `salt || AES-256-GCM(k, 0^12, state, aad)`.

use core::fmt;

use aes_gcm::Aes256Gcm;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::StateError;
use crate::ids::{ClientId, PairId};
use crate::kdf::{expand32, extract};
use crate::labels;
use crate::ratchet::{AeadKey, ServerPair, STATE_SIZE};
use crate::seal::{cipher, open_into, seal_in_place, NONCE_SIZE, TAG_SIZE};

/// Size of the random salt of a blob.
pub const SALT_SIZE: usize = 16;
/// Size of a sealed state blob: salt, 49-byte state, tag (81 bytes).
pub const BLOB_SIZE: usize = SALT_SIZE + STATE_SIZE + TAG_SIZE;

/// Length of the blob AAD: label, client id, pair id.
const AAD_SIZE: usize = labels::STATE.len() + 16 + 16;

/// Seals and opens state blobs with `state_key`, derived once from `STATE_SECRET`. Zeroized on
/// drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct StateSealer {
    state_key: [u8; 32],
}

impl fmt::Debug for StateSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StateSealer(..)")
    }
}

impl StateSealer {
    /// Derives `state_key` from the UTF-8 bytes of `STATE_SECRET` (§14).
    pub fn new(secret: &[u8]) -> Self {
        let prk = extract(labels::STATE, secret);
        Self {
            state_key: expand32(&prk, &[labels::STATE_KEY]),
        }
    }

    fn blob_cipher(&self, salt: &[u8; SALT_SIZE]) -> Aes256Gcm {
        cipher(&AeadKey::from_bytes(expand32(
            &self.state_key,
            &[labels::STATE_BLOB, salt],
        )))
    }

    fn aad(id: &ClientId, pid: &PairId) -> [u8; AAD_SIZE] {
        let mut aad = [0u8; AAD_SIZE];
        let (label, ids) = aad.split_at_mut(labels::STATE.len());
        let (i, p) = ids.split_at_mut(16);
        label.copy_from_slice(labels::STATE);
        i.copy_from_slice(id.as_bytes());
        p.copy_from_slice(pid.as_bytes());
        aad
    }

    /// `salt || AES-256-GCM(k, 0^12, state, "pqrelay/2 state" || id || pid)`, 81 bytes. `salt`
    /// MUST be 16 fresh random bytes.
    pub fn seal(
        &self,
        id: &ClientId,
        pid: &PairId,
        state: &ServerPair,
        salt: [u8; SALT_SIZE],
    ) -> [u8; BLOB_SIZE] {
        let mut buf = Vec::with_capacity(BLOB_SIZE);
        buf.extend_from_slice(&salt);
        buf.extend_from_slice(&*state.to_bytes());
        seal_in_place(
            &self.blob_cipher(&salt),
            &[0; NONCE_SIZE],
            &Self::aad(id, pid),
            &mut buf,
            SALT_SIZE,
        );
        let mut out = [0u8; BLOB_SIZE];
        out.copy_from_slice(&buf);
        buf.zeroize();
        out
    }

    /// Opens a blob stored under `(id, pid)`. Anything that does not open is
    /// [`StateError::Unreadable`] (569: re-pair); a plain state of another version or size is
    /// [`StateError::Malformed`]. Whether its `kid` is still configured is
    /// [`RelayKeySet::check_kid`](crate::relay_key::RelayKeySet::check_kid).
    pub fn open(&self, id: &ClientId, pid: &PairId, blob: &[u8]) -> Result<ServerPair, StateError> {
        if blob.len() != BLOB_SIZE {
            return Err(StateError::Unreadable);
        }
        let (salt, sealed) = blob.split_at(SALT_SIZE);
        let salt: [u8; SALT_SIZE] = salt.try_into().map_err(|_| StateError::Unreadable)?;
        let mut plain = zeroize::Zeroizing::new([0u8; STATE_SIZE]);
        if !open_into(
            &self.blob_cipher(&salt),
            &[0; NONCE_SIZE],
            &Self::aad(id, pid),
            sealed,
            &mut plain[..],
        ) {
            return Err(StateError::Unreadable);
        }
        ServerPair::from_bytes(&plain[..])
    }
}
