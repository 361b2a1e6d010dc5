//! Key schedule and ratchet (§6) as typed states.
//!
//! Client: [`PendingPair`] (after sending `ek`) → [`PendingPair::complete`] → [`ClientPair`],
//! whose [`ClientPair::next_exchange`] consumes it and returns the keys of one exchange and the
//! next state. Relay: [`ServerPair::pair`] at pairing, then [`ServerPair::accept`] per request.

use core::fmt;

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::codec::Reader;
use crate::error::{CounterError, PairingError, StateError};
use crate::ids::{ClientId, PairId};
use crate::kem::{DecapsulationSeed, EncapsulationKey, KemCiphertext, SharedSecret, ESEED_SIZE};
use crate::msgs::pairing::{PairingRequest, PairingResponse};

/// Forward window of counters a relay accepts (`max-skip`, §6).
pub const MAX_SKIP: u64 = 16;
/// Highest counter an exchange may use; a pair at `MAX_COUNTER + 1` must be re-paired.
pub const MAX_COUNTER: u64 = u64::MAX - 1;
/// Size of the plain relay-side state (§10).
pub const STATE_SIZE: usize = 41;
/// Version byte of the plain relay-side state.
const STATE_VERSION: u8 = 1;

const PAIR_SALT: &[u8] = b"pqrelay/1 pair";
const CHAIN_INFO: &[u8] = b"pqrelay/1 chain";
const REQUEST_INFO: &[u8] = b"pqrelay/1 request";
const RESPONSE_INFO: &[u8] = b"pqrelay/1 response";
const NEXT_INFO: &[u8] = b"pqrelay/1 next";

/// HKDF-Expand with a 32-byte PRK to 32 bytes.
pub(crate) fn expand32(prk: &[u8; 32], info: &[&[u8]]) -> [u8; 32] {
    let hk = Hkdf::<Sha256>::from_prk(prk).expect("a 32-byte PRK is valid for SHA-256");
    let mut out = [0u8; 32];
    hk.expand_multi_info(info, &mut out)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

/// HKDF-Extract to a 32-byte PRK.
pub(crate) fn extract(salt: &[u8], ikm: &[u8]) -> Zeroizing<[u8; 32]> {
    let (prk, _) = Hkdf::<Sha256>::extract(Some(salt), ikm);
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&prk);
    out
}

macro_rules! secret32 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
        pub struct $name([u8; 32]);

        impl $name {
            /// Wraps 32 secret bytes.
            pub fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            /// The secret bytes (for the test vectors and persistence; keep them secret).
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(..)"))
            }
        }
    };
}

secret32! {
    /// A chain key `ck_n`. Zeroized on drop.
    ChainKey
}

secret32! {
    /// A single-use AES-256-GCM key (`kq_n` or `ks_n`). Zeroized on drop.
    AeadKey
}

impl ChainKey {
    /// `ck_0` from the X-Wing shared secret, bound to the client and pair ids (§6).
    pub fn initial(ss: &SharedSecret, id: &ClientId, pid: &PairId) -> Self {
        let prk = extract(PAIR_SALT, ss.as_bytes());
        Self(expand32(&prk, &[CHAIN_INFO, id.as_bytes(), pid.as_bytes()]))
    }

    /// The keys of exchange `counter` and the next chain key.
    fn step(&self, counter: u64) -> (ExchangeKeys, ChainKey) {
        let keys = ExchangeKeys {
            counter,
            request: AeadKey(expand32(&self.0, &[REQUEST_INFO])),
            response: AeadKey(expand32(&self.0, &[RESPONSE_INFO])),
        };
        (keys, ChainKey(expand32(&self.0, &[NEXT_INFO])))
    }

    /// `ck_{n+1}` from `ck_n`.
    fn next(&self) -> ChainKey {
        ChainKey(expand32(&self.0, &[NEXT_INFO]))
    }
}

/// The keys of one exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExchangeKeys {
    /// The exchange counter `n`.
    pub counter: u64,
    /// `kq_n`: seals everything the client sends.
    pub request: AeadKey,
    /// `ks_n`: seals everything the relay sends back.
    pub response: AeadKey,
}

/// A client pair waiting for the relay's pairing response.
#[derive(Debug)]
pub struct PendingPair {
    pid: PairId,
    seed: DecapsulationSeed,
}

impl PendingPair {
    /// A new pair from a random pair id and a random X-Wing seed.
    pub fn new(pid: PairId, seed: DecapsulationSeed) -> Self {
        Self { pid, seed }
    }

    /// The pair id.
    pub fn pair_id(&self) -> PairId {
        self.pid
    }

    /// The `ek` to send in the pairing request.
    pub fn encapsulation_key(&self) -> EncapsulationKey {
        self.seed.encapsulation_key()
    }

    /// Decapsulates the relay's `ct` and derives `ck_0`; the seed is dropped (and zeroized).
    pub fn complete(self, id: &ClientId, ct: &KemCiphertext) -> Result<ClientPair, PairingError> {
        let ss = self.seed.decapsulate(ct)?;
        Ok(ClientPair {
            pid: self.pid,
            counter: 0,
            ck: ChainKey::initial(&ss, id, &self.pid),
        })
    }
}

/// The client side of one `POST /api/mte-pair` (§5): the pending pairs, the request body,
/// and the pairs derived from the relay's answer.
#[derive(Debug)]
pub struct ClientPairing {
    pending: Vec<PendingPair>,
}

impl ClientPairing {
    /// One pending pair per `(pair id, random X-Wing seed)`, in request order.
    pub fn new(pairs: impl IntoIterator<Item = (PairId, DecapsulationSeed)>) -> Self {
        let pending = pairs
            .into_iter()
            .map(|(pid, seed)| PendingPair::new(pid, seed))
            .collect();
        Self { pending }
    }

    /// The pair ids, in request order.
    pub fn pair_ids(&self) -> Vec<PairId> {
        self.pending.iter().map(PendingPair::pair_id).collect()
    }

    /// The pairing request body.
    pub fn request_body(&self) -> Vec<u8> {
        PairingRequest {
            pairs: self
                .pending
                .iter()
                .map(|p| (p.pair_id(), p.encapsulation_key()))
                .collect(),
        }
        .encode()
    }

    /// Checks that `response_body` answers exactly this request, in order, and derives every
    /// pair's `ck_0` for the client `id`.
    pub fn complete(
        self,
        id: &ClientId,
        response_body: &[u8],
    ) -> Result<Vec<ClientPair>, PairingError> {
        let response = PairingResponse::parse(response_body, &self.pair_ids())?;
        self.pending
            .into_iter()
            .zip(response.pairs)
            .map(|(p, (_, ct))| p.complete(id, &ct))
            .collect()
    }
}

/// The client's state of one pair: `(n, ck_n)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientPair {
    pid: PairId,
    counter: u64,
    ck: ChainKey,
}

impl ClientPair {
    /// Restores a persisted client pair.
    pub fn from_parts(pid: PairId, counter: u64, ck: ChainKey) -> Self {
        Self { pid, counter, ck }
    }

    /// The pair id.
    pub fn pair_id(&self) -> PairId {
        self.pid
    }

    /// The counter the next exchange will use.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// The current chain key (for persistence).
    pub fn chain_key(&self) -> &ChainKey {
        &self.ck
    }

    /// Starts an exchange: returns its keys and the next state. The old chain key is dropped
    /// (zeroized); persist the returned state **before** sending, whatever the outcome (§6).
    pub fn next_exchange(self) -> Result<(ExchangeKeys, ClientPair), CounterError> {
        if self.counter > MAX_COUNTER {
            return Err(CounterError::Exhausted);
        }
        let (keys, ck) = self.ck.step(self.counter);
        let next = ClientPair {
            pid: self.pid,
            counter: self.counter + 1,
            ck,
        };
        Ok((keys, next))
    }
}

/// The relay's state of one pair: `(e, ck_e)`, `e` being the next counter it expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerPair {
    next: u64,
    ck: ChainKey,
}

impl ServerPair {
    /// Server side of pairing (§5): validates nothing more than `ek` already was, encapsulates
    /// with `eseed` (fresh random bytes) and returns `ct` and the state `(0, ck_0)` to store.
    pub fn pair(
        id: &ClientId,
        pid: &PairId,
        ek: &EncapsulationKey,
        eseed: &[u8; ESEED_SIZE],
    ) -> (KemCiphertext, ServerPair) {
        let (ct, ss) = ek.encapsulate(eseed);
        let ck = ChainKey::initial(&ss, id, pid);
        (ct, ServerPair { next: 0, ck })
    }

    /// A state from its parts.
    pub fn from_parts(next: u64, ck: ChainKey) -> Self {
        Self { next, ck }
    }

    /// The next counter this relay expects, `e`.
    pub fn next_counter(&self) -> u64 {
        self.next
    }

    /// The chain key `ck_e`.
    pub fn chain_key(&self) -> &ChainKey {
        &self.ck
    }

    /// Accepts counter `m` iff `e <= m <= e + max_skip` and `m <= MAX_COUNTER`; ratchets to
    /// `ck_m` and returns the exchange keys and the state `(m+1, ck_{m+1})`, which the relay stores
    /// only after the request's header block opened (§6).
    pub fn accept(
        self,
        counter: u64,
        max_skip: u64,
    ) -> Result<(ExchangeKeys, ServerPair), CounterError> {
        if counter < self.next {
            return Err(CounterError::Replayed);
        }
        if counter - self.next > max_skip {
            return Err(CounterError::TooFarAhead);
        }
        if counter > MAX_COUNTER {
            return Err(CounterError::Exhausted);
        }
        let mut ck = self.ck.clone();
        for _ in self.next..counter {
            ck = ck.next();
        }
        let (keys, ck) = ck.step(counter);
        Ok((
            keys,
            ServerPair {
                next: counter + 1,
                ck,
            },
        ))
    }

    /// `version(1) || e(u64) || ck_e(32)`, 41 bytes (§10).
    pub fn to_bytes(&self) -> Zeroizing<[u8; STATE_SIZE]> {
        let mut out = Zeroizing::new([0u8; STATE_SIZE]);
        out[0] = STATE_VERSION;
        out[1..9].copy_from_slice(&self.next.to_be_bytes());
        out[9..].copy_from_slice(&self.ck.0);
        out
    }

    /// Parses the 41-byte state.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StateError> {
        let mut r = Reader::new(bytes);
        let version = r.u8().ok_or(StateError::Malformed)?;
        let next = r.u64().ok_or(StateError::Malformed)?;
        let ck = r.array::<32>().ok_or(StateError::Malformed)?;
        if version != STATE_VERSION || !r.is_empty() {
            return Err(StateError::Malformed);
        }
        Ok(Self {
            next,
            ck: ChainKey(ck),
        })
    }
}
