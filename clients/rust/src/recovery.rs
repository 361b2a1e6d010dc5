//! What the client does after a relay error (§11.1), without I/O, exported so that the rule can
//! be tested directly:
//!
//! - [`Recovery::for_status`] is the table of §11.1: re-pair the pair (559, 561, 562, 564,
//!   565), drop every pair paired no later than it (563: the relay lost its state, e.g. it
//!   restarted), re-pair all (569), re-discover and re-pair all (560, 566), re-discover (568),
//!   nothing (567);
//! - [`retry_on`] decides on which pair a request that §12 ([`crate::delivery`]) sends again
//!   goes. A resend after a re-pair uses **the pair that was just paired** in place of the
//!   failed one ([`RetryOn::RepairedPair`]; version 2 never replaces a pair id, so it has a
//!   fresh id), never another pair from the pool: a relay restarted with memory state has lost
//!   every pair, and another old pair would fail again.

/// What happens to the pairs after a relay error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repair {
    /// Nothing: the pair stays valid.
    None,
    /// The pair that got the error is dropped and a fresh pair (new pair id) takes its place.
    ThisPair,
    /// Every pair paired no later than the failed one is forgotten; a fresh pair takes the
    /// failed one's place and the others are paired afresh on demand.
    All,
}

/// The client's answer to one relay error status (§11.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// Run discovery again (`HEAD /api/mte-relay`) before anything else.
    pub rediscover: bool,
    /// What happens to the pairs.
    pub repair: Repair,
}

impl Recovery {
    /// The recovery §11.1 prescribes for `status`; `None` for a status the client does not
    /// recover from (400, 404, 413, 502, ...): the error goes to the caller.
    pub fn for_status(status: u16) -> Option<Self> {
        let (rediscover, repair) = match status {
            559 | 561 | 562 | 564 | 565 => (false, Repair::ThisPair),
            563 | 569 => (false, Repair::All),
            560 | 566 => (true, Repair::All),
            567 => (false, Repair::None),
            568 => (true, Repair::None),
            _ => return None,
        };
        Some(Self { rediscover, repair })
    }

    /// A short description for the wire observer (`pqrelay-curl -v`).
    pub fn action(&self) -> &'static str {
        match (self.rediscover, self.repair) {
            (false, Repair::ThisPair) => "re-pair",
            (false, Repair::All) => "re-pair all",
            (true, Repair::All) => "re-discover, re-pair all",
            (true, Repair::ThisPair) => "re-discover, re-pair",
            (true, Repair::None) => "re-discover",
            (false, Repair::None) => "none",
        }
    }
}

/// The pair a resend goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryOn {
    /// The pair of the failed attempt, as it is (already advanced past the failed counter).
    SamePair,
    /// A fresh pair paired in place of the failed attempt's pair.
    RepairedPair,
}

/// On which pair a request goes again after a relay error answered by `recovery`.
/// `pair_current`: after re-discovery and resets, the failed attempt's pair still belongs to
/// the current client id and pool generation (if not, a fresh pair takes its place).
pub fn retry_on(recovery: &Recovery, pair_current: bool) -> RetryOn {
    match recovery.repair {
        Repair::None if pair_current => RetryOn::SamePair,
        _ => RetryOn::RepairedPair,
    }
}
