//! Pairing (§6) as typed states: the client's [`ClientPairing`] (request sent, waiting for the
//! answer) → [`ConfirmedPairing`]; the relay's [`answer`] to a parsed [`PairingRequest`].
//!
//! ```text
//! (ct_R, ss_R) = X-Wing.Encaps(pk_fp, eseed_R)        client, to the relay key
//! (ct_E, ss_E) = X-Wing.Encaps(ek_E, eseed_E)         relay, to the client's ephemeral key
//! th      = SHA-256("pqrelay/2 pairing" || id || fp || ct_R || ek_E || u8(n) || pid_1..n || ct_E)
//! prk     = HKDF-Extract("pqrelay/2 pair", ss_R || ss_E)
//! root    = HKDF-Expand(prk, "pqrelay/2 root" || th, 32)
//! ck_0(i) = HKDF-Expand(root, "pqrelay/2 chain" || pid_i, 32)
//! kc      = HKDF-Expand(root, "pqrelay/2 confirm", 32)
//! confirm = HMAC(kc, "pqrelay/2 confirm" || u8(k) || fp'_1..k)
//! ```

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::error::{ConfirmError, NotConfirmed, PairingError};
use crate::ids::{ClientId, PairId};
use crate::kdf::{expand32, extract, hmac32};
use crate::kem::{DecapsulationKey, DecapsulationSeed, SharedSecret, ESEED_SIZE};
use crate::labels;
use crate::msgs::pairing::{PairingRequest, PairingResponse, CONFIRM_SIZE, MAX_PAIRS_PER_REQUEST};
use crate::ratchet::{ChainKey, ClientPair, ServerPair};
use crate::relay_key::{KeyId, RelayKeyConfig, RelayKeySet, MAX_RELAY_KEYS};

/// Size of the transcript hash `th`.
pub const TRANSCRIPT_HASH_SIZE: usize = 32;

/// The transcript hash up to (not including) `ct_E`: everything the client sends.
fn transcript_prefix(id: &ClientId, request: &PairingRequest) -> Sha256 {
    let mut h = Sha256::new();
    h.update(labels::PAIRING);
    h.update(id.as_bytes());
    h.update(request.key.as_bytes());
    h.update(request.ct.as_bytes());
    h.update(request.ek.as_bytes());
    // Callers bound the count to MAX_PAIRS_PER_REQUEST (255).
    h.update([u8::try_from(request.pairs.len()).unwrap_or(u8::MAX)]);
    for pid in &request.pairs {
        h.update(pid.as_bytes());
    }
    h
}

/// `root` from both shared secrets and `th`.
fn root_key(ss_r: &SharedSecret, ss_e: &SharedSecret, th: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut ikm = Zeroizing::new([0u8; 64]);
    let (r, e) = ikm.split_at_mut(32);
    r.copy_from_slice(ss_r.as_bytes());
    e.copy_from_slice(ss_e.as_bytes());
    let prk = extract(labels::PAIR, &ikm[..]);
    Zeroizing::new(expand32(&prk, &[labels::ROOT, th]))
}

/// `ck_0(i)` of every pair.
fn chain_keys<'a>(
    root: &'a [u8; 32],
    pairs: &'a [PairId],
) -> impl Iterator<Item = (PairId, ChainKey)> + 'a {
    pairs.iter().map(move |pid| {
        (
            *pid,
            ChainKey::from_bytes(expand32(root, &[labels::CHAIN, pid.as_bytes()])),
        )
    })
}

/// `confirm` over the relay's key ids (at most 8).
fn confirm(root: &[u8; 32], keys: &[KeyId]) -> [u8; CONFIRM_SIZE] {
    let kc = Zeroizing::new(expand32(root, &[labels::CONFIRM]));
    let mut msg = Vec::with_capacity(labels::CONFIRM.len() + 1 + 32 * keys.len());
    msg.extend_from_slice(labels::CONFIRM);
    msg.push(u8::try_from(keys.len()).unwrap_or(u8::MAX));
    for k in keys {
        msg.extend_from_slice(k.as_bytes());
    }
    hmac32(&kc[..], &[&msg])
}

/// The client side of one `POST /api/mte-pair`, after the request was built and before the
/// answer arrived. Holds `dk_E` and `ss_R` (zeroized on drop); [`complete`](Self::complete)
/// consumes it.
pub struct ClientPairing {
    id: ClientId,
    key: KeyId,
    dk_e: DecapsulationKey,
    ss_r: SharedSecret,
    pairs: Vec<PairId>,
    transcript: Sha256,
    body: Vec<u8>,
}

impl core::fmt::Debug for ClientPairing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClientPairing")
            .field("id", &self.id)
            .field("key", &self.key)
            .field("pairs", &self.pairs.len())
            .finish_non_exhaustive()
    }
}

/// A pairing the client confirmed: the new pairs at counter 0 and the relay's key ids.
#[derive(Debug)]
pub struct ConfirmedPairing {
    /// Every pair of the request, in order, at counter 0.
    pub pairs: Vec<(PairId, ClientPair)>,
    /// The relay's key ids, current first (`keys`): with trust on first use, the client now
    /// trusts all of them (§13).
    pub keys: Vec<KeyId>,
    /// The relay key the pairing was made with.
    pub key: KeyId,
    /// The transcript hash `th` (public; for logs and test vectors).
    pub transcript_hash: [u8; TRANSCRIPT_HASH_SIZE],
}

impl ClientPairing {
    /// Builds a pairing request to `relay_key` (chosen with
    /// [`RelayKeys::choose`](crate::msgs::relay_keys::RelayKeys::choose)) for the client `id`.
    /// `eseed_r` (64 bytes) and `seed_e` (32 bytes) MUST be fresh random bytes, `pair_ids` fresh
    /// random and distinct, 1 to the relay's `max-pairs` (at most 255).
    pub fn new(
        id: ClientId,
        relay_key: &RelayKeyConfig,
        eseed_r: &[u8; ESEED_SIZE],
        seed_e: &DecapsulationSeed,
        pair_ids: Vec<PairId>,
    ) -> Result<Self, PairingError> {
        if pair_ids.is_empty() || pair_ids.len() > MAX_PAIRS_PER_REQUEST {
            return Err(PairingError::PairCount);
        }
        if pair_ids
            .iter()
            .enumerate()
            .any(|(i, p)| pair_ids.iter().skip(i + 1).any(|q| q == p))
        {
            return Err(PairingError::DuplicatePairId);
        }
        let (ct, ss_r) = relay_key.public_key().encapsulate(eseed_r);
        let dk_e = seed_e.expand();
        let request = PairingRequest {
            key: relay_key.id(),
            ct,
            ek: dk_e.encapsulation_key().clone(),
            pairs: pair_ids,
        };
        Ok(Self {
            id,
            key: request.key,
            transcript: transcript_prefix(&id, &request),
            body: request.encode(),
            pairs: request.pairs,
            dk_e,
            ss_r,
        })
    }

    /// The request body to `POST` (JSON, keys `key`, `ct`, `ek`, `pairs`).
    pub fn request_body(&self) -> &[u8] {
        &self.body
    }

    /// The relay key this pairing is made with.
    pub fn relay_key(&self) -> KeyId {
        self.key
    }

    /// The pair ids, in request order.
    pub fn pair_ids(&self) -> &[PairId] {
        &self.pairs
    }

    /// Checks the relay's answer (§6): the body, `ss_E`, `th`, and `confirm` in constant time;
    /// every failure is a hard [`NotConfirmed`] error naming the key. On success, every pair at
    /// counter 0; `dk_E`, `ss_R`, `ss_E`, `root` and `kc` are erased.
    pub fn complete(self, response_body: &[u8]) -> Result<ConfirmedPairing, NotConfirmed> {
        let fail = |reason| NotConfirmed {
            key: self.key,
            reason,
        };
        let response =
            PairingResponse::parse(response_body).map_err(|e| fail(ConfirmError::Malformed(e)))?;
        let ss_e = self
            .dk_e
            .decapsulate(&response.ct)
            .map_err(|_| fail(ConfirmError::NonContributory))?;
        let mut transcript = self.transcript.clone();
        transcript.update(response.ct.as_bytes());
        let th: [u8; 32] = transcript.finalize().into();
        let root = root_key(&self.ss_r, &ss_e, &th);
        let expected = confirm(&root, &response.keys);
        if !bool::from(expected.ct_eq(&response.confirm)) {
            return Err(fail(ConfirmError::Mismatch));
        }
        if !response.keys.contains(&self.key) {
            return Err(fail(ConfirmError::KeyNotListed));
        }
        let pairs = chain_keys(&root, &self.pairs)
            .map(|(pid, ck)| (pid, ClientPair::from_parts(pid, 0, ck)))
            .collect();
        Ok(ConfirmedPairing {
            pairs,
            keys: response.keys,
            key: self.key,
            transcript_hash: th,
        })
    }
}

/// The relay's answer to a pairing request: the response body and the pairs to store.
#[derive(Debug)]
pub struct RelayPairing {
    /// The response body (JSON, keys `ct`, `keys`, `confirm`).
    pub body: Vec<u8>,
    /// Every pair at `(0, ck_0, kid)`, in request order: store all of them or none (§6).
    pub pairs: Vec<(PairId, ServerPair)>,
    /// The relay key the client chose.
    pub key: KeyId,
    /// The transcript hash `th` (public; for logs and test vectors).
    pub transcript_hash: [u8; TRANSCRIPT_HASH_SIZE],
}

/// The relay side of pairing (§6 steps 4, 5 and the derivation) for the verified client `id`:
/// finds `fp` in `keys` ([`PairingError::UnknownRelayKey`], 400 `unknown_relay_key`),
/// decapsulates `ct_R` ([`PairingError::NonContributory`] for an all-zero X25519 share, 400),
/// encapsulates to `ek_E` with `eseed_e` (64 fresh random bytes) and derives every `ck_0` and
/// `confirm`. Checking that no pair id is in use (step 6) is the store's part.
pub fn answer(
    id: &ClientId,
    keys: &RelayKeySet,
    request: &PairingRequest,
    eseed_e: &[u8; ESEED_SIZE],
) -> Result<RelayPairing, PairingError> {
    if request.pairs.is_empty() || request.pairs.len() > MAX_PAIRS_PER_REQUEST {
        return Err(PairingError::PairCount);
    }
    let key = keys
        .find(&request.key)
        .ok_or(PairingError::UnknownRelayKey(request.key))?;
    let ss_r = key.decapsulate(&request.ct)?;
    let (ct_e, ss_e) = request.ek.encapsulate(eseed_e);
    let mut transcript = transcript_prefix(id, request);
    transcript.update(ct_e.as_bytes());
    let th: [u8; 32] = transcript.finalize().into();
    let root = root_key(&ss_r, &ss_e, &th);
    let ids = keys.ids();
    debug_assert!(ids.len() <= MAX_RELAY_KEYS);
    let kid = key.id().kid();
    let pairs = chain_keys(&root, &request.pairs)
        .map(|(pid, ck)| (pid, ServerPair::from_parts(0, ck, kid)))
        .collect();
    let body = PairingResponse {
        ct: ct_e,
        confirm: confirm(&root, &ids),
        keys: ids,
    }
    .encode();
    Ok(RelayPairing {
        body,
        pairs,
        key: request.key,
        transcript_hash: th,
    })
}
