//! What the client does after a relay error (§11), without I/O, exported so that the rule can
//! be tested directly:
//!
//! - [`Recovery::for_status`] is the table of §11: re-pair the pair (559, 561–565), re-pair
//!   all (569), re-discover and re-pair all (560, 566), re-discover (568), retry (567);
//! - [`retry_on`] decides whether the request is sent again and on which pair. A retry after a
//!   re-pair uses **the pair that was just re-paired** ([`RetryOn::RepairedPair`]), never
//!   another pair from the pool: a relay restarted with memory state has lost every pair, and
//!   another old pair would fail again. Only a replayable body is retried, and only once.

/// What happens to the pairs after a relay error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repair {
    /// Nothing: the pair stays valid.
    None,
    /// The pair that got the error is re-paired (same pair id: the relay replaces its state).
    ThisPair,
    /// Every pair is forgotten; the pair that got the error is re-paired for the retry and the
    /// others are paired afresh on demand.
    All,
}

/// The client's answer to one relay error status (§11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// Run discovery again (`HEAD /api/mte-relay`) before anything else.
    pub rediscover: bool,
    /// What happens to the pairs.
    pub repair: Repair,
    /// Whether §11 allows sending the request again (once, and only a replayable body).
    pub retry: bool,
}

impl Recovery {
    /// The recovery §11 prescribes for `status`; `None` for a status that is not recoverable
    /// (400, 404, 413, 502, ...): the error goes to the caller.
    pub fn for_status(status: u16) -> Option<Self> {
        let (rediscover, repair, retry) = match status {
            559 | 561..=565 => (false, Repair::ThisPair, true),
            560 | 566 => (true, Repair::All, true),
            567 => (false, Repair::None, true),
            568 => (true, Repair::None, true),
            569 => (false, Repair::All, true),
            _ => return None,
        };
        Some(Self {
            rediscover,
            repair,
            retry,
        })
    }

    /// A short description for the wire observer (`pqrelay-curl -v`).
    pub fn action(&self) -> &'static str {
        match (self.rediscover, self.repair) {
            (false, Repair::ThisPair) => "re-pair",
            (false, Repair::All) => "re-pair all",
            (true, Repair::All) => "re-discover, re-pair all",
            (true, Repair::ThisPair) => "re-discover, re-pair",
            (true, Repair::None) => "re-discover",
            (false, Repair::None) => "retry",
        }
    }
}

/// The pair a retry is sent on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryOn {
    /// The pair of the failed attempt, as it is (already advanced past the failed counter).
    SamePair,
    /// The pair of the failed attempt, re-paired first (a fresh ratchet at counter 0).
    RepairedPair,
}

/// Whether and where the request is sent again after a relay error answered by `recovery`.
///
/// - `replayable`: the body is still available (not a consumed stream);
/// - `attempt`: how many times the request was already retried (0 on the first failure);
/// - `pair_current`: after re-discovery and resets, the failed attempt's pair still belongs to
///   the current client id and pool generation (if not, it must be re-paired to be used).
///
/// `None` means the error goes to the caller.
pub fn retry_on(
    recovery: &Recovery,
    replayable: bool,
    attempt: u32,
    pair_current: bool,
) -> Option<RetryOn> {
    if !recovery.retry || !replayable || attempt > 0 {
        return None;
    }
    Some(match recovery.repair {
        Repair::None if pair_current => RetryOn::SamePair,
        _ => RetryOn::RepairedPair,
    })
}
