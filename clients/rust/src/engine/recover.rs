//! What the engine does after an attempt failed: a transport failure (send again on a new
//! connection, or give up) and a relay error answer (the §11 recovery, [`crate::recovery`]).

use pqrelay_protocol::PairId;

use super::{Engine, EngineError, STREAM_RESENDS};
use crate::body::Body;
use crate::error::Error;
use crate::observer::WireEvent;
use crate::recovery::{retry_on, Recovery, Repair, RetryOn};
use crate::replay::Kept;
use crate::reuse::closed_unanswered;
use crate::source::{Lease as _, Leased, PairSource, PoolSession as _};

/// The state of one [`Engine::send`] across its attempts.
pub(super) struct Attempts<S: PairSource> {
    /// The body still to send: a copy goes on each attempt; a stream is taken (then `None`).
    pub(super) body: Option<Body>,
    /// §11 retries done.
    pub(super) relay_retries: u32,
    /// The one retry of [`crate::reuse`] was done.
    pub(super) connection_retried: bool,
    /// Times a streamed body was taken back and sent again.
    pub(super) stream_resends: usize,
    /// The next attempt goes on a new connection.
    pub(super) fresh_connection: bool,
    /// The lease (and session) the next attempt runs on, instead of obtaining one.
    pub(super) retry: Option<Leased<S>>,
}

impl<S: PairSource> Attempts<S> {
    pub(super) fn new(body: Body) -> Self {
        Self {
            body: Some(body),
            relay_retries: 0,
            connection_retried: false,
            stream_resends: 0,
            fresh_connection: false,
            retry: None,
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
    /// The body is still available for another attempt.
    pub(super) replayable: bool,
    /// A streamed body kept for taking back, and its declared length.
    pub(super) kept: Option<(Kept, Option<u64>)>,
    /// The body was a stream.
    pub(super) streamed: bool,
}

/// An attempt answered by a recoverable relay error.
pub(super) struct Failed<S: PairSource> {
    pub(super) lease: S::Lease,
    pub(super) pair_id: PairId,
    pub(super) session: S::Session,
    pub(super) replayable: bool,
    pub(super) attempt: u32,
}

impl<S: PairSource> Engine<S> {
    /// Sending failed before an answer: either the request goes again on a new connection
    /// (`attempts.retry` holds the lease, at its next counter), or the error for the caller.
    pub(super) async fn transport_failed(
        &self,
        attempts: &mut Attempts<S>,
        cut: Cut,
        lease: S::Lease,
        session: S::Session,
    ) -> Result<(), EngineError<S::Error>> {
        let resend = if cut.replayable && !attempts.connection_retried {
            // A reused connection closed unanswered: the relay never read the request.
            let again = closed_unanswered(&cut.error);
            if again {
                self.connection_retry("exchange");
                attempts.connection_retried = true;
            }
            again
        } else if attempts.stream_resends < STREAM_RESENDS {
            // A stream cut young and unfinished.
            let taken = cut.kept.and_then(|(k, len)| Some((k.take_back()?, len)));
            let again = taken.is_some();
            if let Some((stream, len)) = taken {
                attempts.stream_resends += 1;
                attempts.body = Some(Body::Stream { stream, len });
            }
            again
        } else {
            false
        };
        if resend {
            attempts.fresh_connection = true;
            attempts.retry = Some((lease, session));
            return Ok(());
        }
        // The relay accepts a counter ahead of its own: the pair stays good.
        self.give_back(lease, &session).await;
        let e = Error::http("sending the request", cut.error);
        if !cut.streamed {
            return Err(e.into());
        }
        // A streamed body cut off: often the relay refused the exchange (e.g. it lost its
        // pair state) and closed the connection mid-body.
        if self.settings.renew_pool_when_not_retried {
            let reset = self.source.reset(&session).await;
            reset.map_err(EngineError::Source)?;
        }
        Err(EngineError::StreamCut(e))
    }

    /// Handles a relay error answer (§11): re-discovers and forgets pairs as `recovery` says,
    /// then either returns the lease (re-paired if needed) and session for the one retry, or
    /// the error for the caller.
    pub(super) async fn recover(
        &self,
        failed: Failed<S>,
        recovery: Recovery,
        err: Error,
    ) -> Result<Leased<S>, EngineError<S::Error>> {
        let Failed {
            mut lease,
            pair_id,
            session,
            replayable,
            attempt,
        } = failed;
        let Error::Relay { status, code, .. } = &err else {
            return Err(err.into());
        };
        let (status, code) = (*status, code.clone());
        if recovery.repair != Repair::None {
            // Whatever follows, the stale pair never goes back to the pool as it is.
            lease.discard();
        }
        let retrying = replayable && attempt == 0;
        let reset = match recovery.repair {
            Repair::None => false,
            Repair::All => true,
            Repair::ThisPair => !retrying && self.settings.renew_pool_when_not_retried,
        };
        if recovery.rediscover {
            self.rediscover(&session, reset).await?;
        } else if reset {
            self.source
                .reset(&session)
                .await
                .map_err(EngineError::Source)?;
        }
        let current = self.session().await?;
        let pair_current = current.same_pool(&session);
        let plan = retry_on(&recovery, replayable, attempt, pair_current);
        self.observe(WireEvent::Recovery {
            status,
            action: recovery.action(),
            retried: plan.is_some(),
        });
        match plan {
            Some(RetryOn::SamePair) => Ok((lease, current)),
            Some(RetryOn::RepairedPair) => {
                let session = self.repair_in_place(&mut lease, pair_id, &current).await?;
                Ok((lease, session))
            }
            None if recovery.retry && !replayable && attempt == 0 => {
                Err(Error::NotRetried { status, code }.into())
            }
            None => Err(err.into()),
        }
    }
}
