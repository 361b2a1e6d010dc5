//! Key schedule and ratchet (§7) as typed states.
//!
//! Client: [`ClientPair`] (made by pairing, [`crate::pairing`]), whose
//! [`ClientPair::next_exchange`] consumes it and returns the keys of one exchange and the next
//! state. Relay: [`ServerPair`] `(e, ck_e, kid)`, whose [`ServerPair::accept`] gives the keys of
//! counter `m` and the state to commit; [`Accepted::check_retry`] applies the `retry` rule.

use core::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::codec::Reader;
use crate::error::{CounterError, StateError};
use crate::flags::Flags;
use crate::ids::PairId;
use crate::kdf::{expand32, expand32_each};
use crate::key_id::Kid;
use crate::labels;

/// Forward window of counters a relay accepts (`max-skip`, §7).
pub const MAX_SKIP: u64 = 16;
/// Highest counter an exchange may use (`2^64 - 2`); a pair past it must be re-paired.
pub const MAX_COUNTER: u64 = u64::MAX - 1;
/// Size of the plain relay-side state (§14).
pub const STATE_SIZE: usize = 49;
/// Version byte of the plain relay-side state.
pub const STATE_VERSION: u8 = 2;

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

secret32! {
    /// The error tag key `ke_n` of one exchange (§11.2). Zeroized on drop.
    ErrorTagKey
}

impl ChainKey {
    /// The keys of exchange `counter` (`kq_n`, `ks_n`, `ke_n`) and `ck_{n+1}`: the four
    /// expansions share one HMAC set-up, so `ck_{n+1}` is derived here as [`Self::next`]
    /// derives it, not by calling it.
    fn step(&self, counter: u64) -> (ExchangeKeys, ChainKey) {
        let labels = [
            &[labels::REQUEST][..],
            &[labels::RESPONSE],
            &[labels::ERROR],
            &[labels::NEXT],
        ];
        let [request, response, error, next] = expand32_each(&self.0, labels);
        let keys = ExchangeKeys {
            counter,
            request: AeadKey(request),
            response: AeadKey(response),
            error: ErrorTagKey(error),
        };
        (keys, ChainKey(next))
    }

    /// `ck_{n+1}` from `ck_n`.
    fn next(&self) -> ChainKey {
        ChainKey(expand32(&self.0, &[labels::NEXT]))
    }
}

/// The keys of one exchange (§7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExchangeKeys {
    /// The exchange counter `n`.
    pub counter: u64,
    /// `kq_n`: seals everything the client sends.
    pub request: AeadKey,
    /// `ks_n`: seals everything the relay sends back.
    pub response: AeadKey,
    /// `ke_n`: tags the relay's errors for this exchange (§11.2).
    pub error: ErrorTagKey,
}

/// The client's state of one pair: `(n, ck_n)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientPair {
    pid: PairId,
    counter: u64,
    ck: ChainKey,
}

impl ClientPair {
    /// A pair at counter `counter` (0 after pairing; persisted pairs are restored this way).
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
    /// (zeroized); persist the returned state **before** sending, whatever the outcome (§7).
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

/// The relay's state of one pair: `(e, ck_e, kid)`, `e` being the lowest counter it has not
/// passed and `kid` the relay key the pair was made with (§7, §14).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerPair {
    next: u64,
    ck: ChainKey,
    kid: Kid,
}

/// A counter the relay accepted (§7): the exchange's keys, the state to commit before anything
/// else, and the `e` the pair was at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The keys of counter `m`.
    pub keys: ExchangeKeys,
    /// `(m+1, ck_{m+1}, kid)`: commit it (compare-and-set against the state read) before
    /// opening, forwarding or refusing the request.
    pub next: ServerPair,
    /// The `e` of the state read: the input of the `retry` rule.
    pub e: u64,
}

impl Accepted {
    /// The `retry` rule of §7 for this request's (authenticated) `flags`: a request without
    /// flag `retry` passes; one with it passes only if [`retry_allowed`]. Otherwise
    /// [`CounterError::RetryRefused`] (564 `retry_refused`, verdict `dead`).
    pub fn check_retry(&self, flags: Flags) -> Result<(), CounterError> {
        if !flags.contains(Flags::RETRY) || retry_allowed(self.keys.counter, self.e) {
            Ok(())
        } else {
            Err(CounterError::RetryRefused)
        }
    }
}

/// The `retry` rule of §7: a request with flag `retry` and counter `m` repeats counter `m - 1`,
/// and may run only if that counter had not been passed, `m - 1 >= e`; `m = 0` never may.
pub fn retry_allowed(m: u64, e: u64) -> bool {
    m.checked_sub(1).is_some_and(|previous| previous >= e)
}

impl ServerPair {
    /// A state from its parts (pairing stores `(0, ck_0, kid)`).
    pub fn from_parts(next: u64, ck: ChainKey, kid: Kid) -> Self {
        Self { next, ck, kid }
    }

    /// `e`: the lowest counter this relay has not passed.
    pub fn next_counter(&self) -> u64 {
        self.next
    }

    /// The chain key `ck_e`.
    pub fn chain_key(&self) -> &ChainKey {
        &self.ck
    }

    /// The short id of the relay key this pair was made with.
    pub fn kid(&self) -> Kid {
        self.kid
    }

    /// Accepts counter `m` iff `e <= m <= e + max_skip` and `m <= MAX_COUNTER`, ratchets to
    /// `ck_m` and returns its keys with the state `(m+1, ck_{m+1}, kid)` to commit (§7).
    pub fn accept(self, m: u64, max_skip: u64) -> Result<Accepted, CounterError> {
        if m < self.next {
            return Err(CounterError::Replayed);
        }
        if m - self.next > max_skip {
            return Err(CounterError::TooFarAhead);
        }
        if m > MAX_COUNTER {
            return Err(CounterError::Exhausted);
        }
        let mut ck = self.ck.clone();
        for _ in self.next..m {
            ck = ck.next();
        }
        let (keys, ck) = ck.step(m);
        Ok(Accepted {
            keys,
            next: ServerPair {
                next: m + 1,
                ck,
                kid: self.kid,
            },
            e: self.next,
        })
    }

    /// `version(u8 = 2) || e(u64) || ck_e(32) || kid(8)`, 49 bytes (§14).
    pub fn to_bytes(&self) -> Zeroizing<[u8; STATE_SIZE]> {
        let mut out = Zeroizing::new([0u8; STATE_SIZE]);
        let (version, rest) = out.split_at_mut(1);
        let (e, rest) = rest.split_at_mut(8);
        let (ck, kid) = rest.split_at_mut(32);
        version.copy_from_slice(&[STATE_VERSION]);
        e.copy_from_slice(&self.next.to_be_bytes());
        ck.copy_from_slice(&self.ck.0);
        kid.copy_from_slice(&self.kid.0);
        out
    }

    /// Parses the 49-byte state; another version or size is [`StateError::Malformed`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StateError> {
        let mut r = Reader::new(bytes);
        let version = r.u8().ok_or(StateError::Malformed)?;
        let next = r.u64().ok_or(StateError::Malformed)?;
        let ck = r.array::<32>().ok_or(StateError::Malformed)?;
        let kid = r.array::<8>().ok_or(StateError::Malformed)?;
        if version != STATE_VERSION || !r.is_empty() {
            return Err(StateError::Malformed);
        }
        Ok(Self {
            next,
            ck: ChainKey(ck),
            kid: Kid(kid),
        })
    }
}
