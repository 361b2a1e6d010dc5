//! The delivery rules of §12 without I/O, exported so that they can be tested directly: which
//! requests are idempotent ([`is_idempotent`]) and, after each failed attempt, whether the
//! request is sent again and how ([`Delivery::after`]).
//!
//! - **Idempotent** requests (`GET HEAD OPTIONS TRACE PUT DELETE`, or an `idempotency-key`
//!   header) are sent again, as long as the body can be replayed: once after a relay error that
//!   §11.1 recovers from (after its action: re-pair, re-discover), and once after a lost
//!   connection (or an answer that does not open). At most three attempts.
//! - **Non-idempotent** requests are sent again only when no earlier attempt can reach the
//!   upstream: after an authenticated `dead` verdict (once, as a new attempt after the §11.1
//!   action), or as ONE attempt on the same pair with counter `n + 1` and flag `retry` after an
//!   authenticated `unknown`, an unauthenticated error or a lost connection — the relay runs
//!   it only if counter `n` was never accepted. Anything else ends in **outcome unknown**.

use http::{HeaderMap, Method};
use pqrelay_protocol::Verdict;

use crate::recovery::Recovery;

/// The header that makes any request idempotent: the upstream deduplicates it (§12).
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Statuses after which the pair (or the client id) can no longer be used, so that a `retry`
/// attempt on it is impossible (§12 rule 3).
pub const PAIR_ENDING_STATUSES: [u16; 5] = [560, 563, 566, 568, 569];

/// Whether a request is idempotent (§12): its method is `GET`, `HEAD`, `OPTIONS`, `TRACE`,
/// `PUT` or `DELETE` (RFC 9110 §9.2.2), or it carries an `idempotency-key` header.
pub fn is_idempotent(method: &Method, headers: &HeaderMap) -> bool {
    method.is_idempotent() || headers.contains_key(IDEMPOTENCY_KEY)
}

/// What became of one attempt that did not deliver a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure<'a> {
    /// An error reply whose tag verified (§11.2): its status, code and verdict.
    Authenticated {
        /// The HTTP status.
        status: u16,
        /// The `x-mte-relay-error` code.
        code: &'a str,
        /// What became of the request.
        verdict: Verdict,
    },
    /// An error reply without a valid tag: it says nothing about the request's fate.
    Unauthenticated {
        /// The HTTP status (the client may still act on it for recovery).
        status: u16,
    },
    /// No usable answer: the connection failed, closed or timed out before a sealed response
    /// head arrived, or the answer did not open.
    NoAnswer,
}

impl Failure<'_> {
    /// The status of an error reply.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Authenticated { status, .. } | Self::Unauthenticated { status } => Some(*status),
            Self::NoAnswer => None,
        }
    }
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Take the §11.1 action of the error, then send the request again as a new attempt (on
    /// the pair just re-paired, or the same pair when no re-pair is asked).
    Resend,
    /// Send the request again on the same pair, at its next counter, on a new connection
    /// (idempotent requests after a lost connection).
    ResendSamePair,
    /// Send the request again on the same pair, counter `n + 1`, with flag `retry` (§12 rule 3).
    Retry,
    /// The request ends with the failure itself (after the §11.1 action, if any): the relay
    /// error, the transport error.
    Fail,
    /// The request ends with **outcome unknown** (after the §11.1 action, if any).
    OutcomeUnknown,
}

/// The resends one request has made so far. See the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    idempotent: bool,
    /// Idempotent: a resend after a relay error was made.
    resent_after_error: bool,
    /// Idempotent: a resend after a lost connection was made.
    resent_after_loss: bool,
    /// Non-idempotent: a new attempt after an authenticated `dead` was made.
    resent_after_dead: bool,
    /// Non-idempotent: the one `retry` attempt was made.
    retried: bool,
}

impl Delivery {
    /// The rules for a request that is (or is not) idempotent.
    pub fn new(idempotent: bool) -> Self {
        Self {
            idempotent,
            resent_after_error: false,
            resent_after_loss: false,
            resent_after_dead: false,
            retried: false,
        }
    }

    /// Whether the request is idempotent.
    pub fn idempotent(&self) -> bool {
        self.idempotent
    }

    /// Decides what follows `failure` of an attempt. `retry_attempt`: the attempt carried flag
    /// `retry`; `replayable`: the body can be sent again. Records the resend it allows.
    pub fn after(&mut self, failure: Failure<'_>, retry_attempt: bool, replayable: bool) -> Next {
        if self.idempotent {
            return self.after_idempotent(failure, replayable);
        }
        let third = match failure {
            Failure::Authenticated {
                code: "retry_refused",
                ..
            } => return Next::OutcomeUnknown,
            Failure::Authenticated {
                status,
                verdict: Verdict::Dead,
                ..
            } => {
                if self.resent_after_dead || Recovery::for_status(status).is_none() {
                    return Next::Fail;
                }
                if !replayable {
                    return Next::Fail; // the engine reports it as not retried
                }
                self.resent_after_dead = true;
                return Next::Resend;
            }
            Failure::Authenticated {
                verdict: Verdict::Unknown,
                status,
                ..
            }
            | Failure::Unauthenticated { status } => Some(status),
            Failure::Authenticated { .. } => return Next::OutcomeUnknown,
            Failure::NoAnswer => None,
        };
        let pair_usable = third.is_none_or(|s| !PAIR_ENDING_STATUSES.contains(&s));
        if retry_attempt || self.retried || !pair_usable || !replayable {
            return Next::OutcomeUnknown;
        }
        self.retried = true;
        Next::Retry
    }

    fn after_idempotent(&mut self, failure: Failure<'_>, replayable: bool) -> Next {
        match failure.status() {
            Some(status) if Recovery::for_status(status).is_some() => {
                if self.resent_after_error || !replayable {
                    return Next::Fail;
                }
                self.resent_after_error = true;
                Next::Resend
            }
            Some(_) => Next::Fail,
            None => {
                if self.resent_after_loss || !replayable {
                    return Next::Fail;
                }
                self.resent_after_loss = true;
                Next::ResendSamePair
            }
        }
    }
}
