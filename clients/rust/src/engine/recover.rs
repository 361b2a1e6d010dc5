//! What the engine does after an attempt failed (§12, [`crate::delivery`]): a lost connection
//! ([`Engine::lost`]) or an error reply / an answer that does not open ([`Engine::failed`]),
//! and the §11.1 action of a relay error ([`Engine::recover`]).

use std::sync::atomic::Ordering;

use super::{Engine, EngineError};
use crate::body::Body;
use crate::delivery::{Delivery, Failure, Next};
use crate::error::Error;
use crate::observer::WireEvent;
use crate::recovery::{retry_on, Recovery, Repair, RetryOn};
use crate::replay::Kept;
use crate::source::{Lease as _, Leased, PairSource, PoolSession as _};

/// The state of one [`Engine::send`] across its attempts.
pub(super) struct Attempts<S: PairSource> {
    /// The body still to send: a copy goes on each attempt; a stream is taken (then `None`).
    pub(super) body: Option<Body>,
    /// The resends §12 allowed so far.
    pub(super) delivery: Delivery,
    /// The next attempt carries flag `retry` (same pair, next counter).
    pub(super) retry_flag: bool,
    /// The next attempt goes on a new connection.
    pub(super) fresh_connection: bool,
    /// The lease (and session) the next attempt runs on, instead of obtaining one.
    pub(super) next_on: Option<Leased<S>>,
}

impl<S: PairSource> Attempts<S> {
    pub(super) fn new(body: Body, idempotent: bool) -> Self {
        Self {
            body: Some(body),
            delivery: Delivery::new(idempotent),
            retry_flag: false,
            fresh_connection: false,
            next_on: None,
        }
    }

    /// The body of the next attempt: a copy while it is replayable, else the stream itself.
    pub(super) fn next_body(&mut self) -> Body {
        match self.body.as_ref().and_then(Body::try_clone) {
            Some(b) => b,
            None => self.body.take().unwrap_or(Body::Empty),
        }
    }
}

/// An attempt whose sending failed before an answer.
pub(super) struct Cut {
    pub(super) error: hyper_util::client::legacy::Error,
    /// A streamed body kept for taking back, and its declared length.
    pub(super) kept: Option<(Kept, Option<u64>)>,
    /// The body was a stream.
    pub(super) streamed: bool,
    /// The attempt carried flag `retry`.
    pub(super) retry: bool,
}

/// An attempt answered by an error reply, or by an answer that did not open.
pub(super) struct Failed<'a, S: PairSource> {
    pub(super) lease: S::Lease,
    pub(super) session: S::Session,
    pub(super) failure: Failure<'a>,
    /// The error for the caller if the request ends here.
    pub(super) err: Error,
    /// The attempt carried flag `retry`.
    pub(super) retry: bool,
}

impl<S: PairSource> Engine<S> {
    /// Ends a request with [`Error::OutcomeUnknown`].
    pub(super) fn outcome_unknown(&self, reason: impl Into<String>) -> Error {
        self.counters
            .outcomes_unknown
            .fetch_add(1, Ordering::Relaxed);
        let reason = reason.into();
        self.observe(WireEvent::OutcomeUnknown {
            reason: reason.clone(),
        });
        Error::OutcomeUnknown { reason }
    }

    /// Sending failed before an answer (§12 outcome 3): either the request goes again on a
    /// new connection on the same pair (`attempts.next_on`; with flag `retry` when it is not
    /// idempotent), or the error for the caller.
    pub(super) async fn lost(
        &self,
        attempts: &mut Attempts<S>,
        cut: Cut,
        lease: S::Lease,
        session: S::Session,
    ) -> Result<(), EngineError<S::Error>> {
        // A stream cut young and unfinished can be taken back: then it is replayable again.
        let taken = match &attempts.body {
            Some(_) => None,
            None => (cut.kept.as_ref()).and_then(|(k, len)| Some((k.take_back()?, *len))),
        };
        let replayable = attempts.body.is_some() || taken.is_some();
        let next = attempts
            .delivery
            .after(Failure::NoAnswer, cut.retry, replayable);
        if matches!(next, Next::ResendSamePair | Next::Retry | Next::Resend) {
            if let Some((stream, len)) = taken {
                attempts.body = Some(Body::Stream { stream, len });
            }
            attempts.fresh_connection = true;
            attempts.next_on = Some((lease, session));
            if next == Next::Retry {
                attempts.retry_flag = true;
                self.counters.retry_attempts.fetch_add(1, Ordering::Relaxed);
                self.observe(WireEvent::Resend {
                    reason: "the connection failed before an answer",
                    retry_flag: true,
                });
            } else {
                self.connection_retry("exchange");
            }
            return Ok(());
        }
        // The relay accepts a counter ahead of its own: the pair stays good.
        self.give_back(lease, &session).await;
        if cut.streamed && self.settings.renew_pool_when_not_retried {
            // Often the relay refused the exchange (e.g. it lost its pair state) and closed the
            // connection mid-body: the next request pairs afresh.
            let reset = self.source.reset(&session).await;
            reset.map_err(EngineError::Source)?;
        }
        let e = Error::http("sending the request", cut.error);
        if next == Next::OutcomeUnknown {
            let reason = format!("the connection failed before an answer: {e}");
            return Err(self.outcome_unknown(reason).into());
        }
        Err(if cut.streamed {
            EngineError::StreamCut(e)
        } else {
            e.into()
        })
    }

    /// An error reply, or an answer that did not open (§12 outcomes 2 and 3): either the
    /// request goes again (`attempts.next_on`), or the error for the caller; the §11.1 action
    /// of a relay error is taken either way.
    pub(super) async fn failed(
        &self,
        attempts: &mut Attempts<S>,
        failed: Failed<'_, S>,
    ) -> Result<(), EngineError<S::Error>> {
        let Failed {
            lease,
            session,
            failure,
            err,
            retry,
        } = failed;
        let replayable = attempts.body.is_some();
        let next = attempts.delivery.after(failure, retry, replayable);
        if let Some(status) = failure.status() {
            self.observe(WireEvent::RelayError {
                status,
                authenticated: matches!(failure, Failure::Authenticated { .. }),
            });
        }
        if next == Next::Retry {
            // Same pair, no §11.1 action: the relay runs it only if the first never ran.
            attempts.retry_flag = true;
            attempts.next_on = Some((lease, session));
            self.counters.retry_attempts.fetch_add(1, Ordering::Relaxed);
            self.observe(WireEvent::Resend {
                reason: "an unauthenticated or undecided answer",
                retry_flag: true,
            });
            return Ok(());
        }
        if next == Next::ResendSamePair {
            attempts.next_on = Some((lease, session));
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            self.observe(WireEvent::Resend {
                reason: "an answer that did not open",
                retry_flag: false,
            });
            return Ok(());
        }
        let resend = next == Next::Resend;
        let recovery = failure.status().and_then(Recovery::for_status);
        let retry_refused =
            matches!(failure, Failure::Authenticated { code, .. } if code == "retry_refused");
        match recovery {
            Some(r) if !retry_refused => {
                let status = failure.status().unwrap_or_default();
                if let Some(leased) = self.recover(lease, session, r, status, resend).await? {
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    attempts.next_on = Some(leased);
                    return Ok(());
                }
            }
            _ => self.give_back(lease, &session).await,
        }
        Err(match (next, failure, err) {
            (Next::OutcomeUnknown, _, err) => {
                self.outcome_unknown(format!("the last attempt got: {err}"))
            }
            (_, Failure::Authenticated { status, code, .. }, _)
                if recovery.is_some() && !replayable =>
            {
                Error::NotRetried {
                    status,
                    code: code.to_owned(),
                }
            }
            (
                _,
                Failure::Unauthenticated { .. },
                Error::Relay {
                    status,
                    code,
                    message,
                    ..
                },
            ) => Error::ErrorUnauthenticated {
                status,
                code,
                message,
            },
            (_, _, err) => err,
        }
        .into())
    }

    /// Takes the §11.1 action `recovery` of a relay error `status` on `lease`'s pair:
    /// re-discovers and forgets pairs as it says. With `resend`, returns the lease (its pair
    /// replaced by a fresh one when the action re-pairs) and session for the next attempt;
    /// otherwise gives the lease back (or drops a pair that must be re-paired) and returns
    /// `None`.
    pub(super) async fn recover(
        &self,
        mut lease: S::Lease,
        session: S::Session,
        recovery: Recovery,
        status: u16,
        resend: bool,
    ) -> Result<Option<Leased<S>>, EngineError<S::Error>> {
        if recovery.repair != Repair::None {
            // Whatever follows, the stale pair never goes back to the pool as it is.
            lease.discard();
        }
        let reset = match recovery.repair {
            Repair::None => false,
            Repair::All => true,
            Repair::ThisPair => !resend && self.settings.renew_pool_when_not_retried,
        };
        if recovery.rediscover {
            self.rediscover(&session, reset).await?;
        } else if reset {
            self.source
                .reset(&session)
                .await
                .map_err(EngineError::Source)?;
        }
        self.observe(WireEvent::Recovery {
            status,
            action: recovery.action(),
            retried: resend,
        });
        if !resend {
            if recovery.repair == Repair::None {
                self.give_back(lease, &session).await;
            }
            return Ok(None);
        }
        let current = self.session().await?;
        let pair_current = current.same_pool(&session);
        match retry_on(&recovery, pair_current) {
            RetryOn::SamePair => Ok(Some((lease, current))),
            RetryOn::RepairedPair => {
                let session = self.repair_in_place(&mut lease, &current).await?;
                Ok(Some((lease, session)))
            }
        }
    }
}
