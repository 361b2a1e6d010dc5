//! The client side of outbound mode: this relay as a pqrelay client of one remote relay, with
//! its session and pairs in the shared store ([`crate::store::outbound`]), so that every relay
//! of a fleet uses the same client id and pairs instead of pairing on its own.
//!
//! The send / recover loop is `pqrelay-client`'s [`Engine`]; this module is only its pair
//! source over the store ([`StorePairs`]):
//!
//! - a pair is **leased** by an atomic pop for one exchange (never two exchanges, on any relay,
//!   on one pair) and given back advanced once the response body was read
//!   ([`Engine::finish`]); a lease dropped instead loses its pair only;
//! - an empty pool means pairing [`PAIRS_PER_PAIRING`] new pairs, one pairing at a time from
//!   this relay (tasks finding the pool empty wait for it; its spares are pushed for all);
//! - re-pair all is a new pool agreed by compare-and-set: of many relays answered 569 at once
//!   only the first resets;
//! - at most `max_in_flight` exchanges at once from this relay (the store has no bound of its
//!   own that would make a task wait);
//! - trust (§13): the pins of the remote relay's `OUTBOUND_UPSTREAMS` entry
//!   ([`EngineSettings::pins`]), else the keys trusted on first use kept in the shared session
//!   record, so that the whole fleet trusts what the first relay saw.
//!
//! The engine runs with [`EngineSettings::stream_replay`] ([`UNSENT_REPLAY`]: a streamed body
//! cut young, e.g. on a kept-alive connection the remote relay closed, counts as replayable for
//! the one resend §12 allows) and [`EngineSettings::renew_pool_when_not_retried`] (a streamed
//! body that met a stale pair, or was cut, resets the shared pool so the next request pairs
//! afresh).

use std::sync::Arc;

use http::Uri;
use pqrelay_client::engine::{Engine, EngineError, EngineSettings, Sent};
use pqrelay_client::pqrelay_protocol::{ClientIdToken, ClientPair, KeyId};
use pqrelay_client::source::{Discovered, Lease, Obtained, PairSource, PoolSession};
use pqrelay_client::HttpClient;
use tokio::sync::{Mutex, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

use crate::store::outbound::{Install, OutboundPairs, OutboundSession};
use crate::store::StoreError;

/// Pairs asked for when the shared pool is empty.
pub(crate) const PAIRS_PER_PAIRING: usize = 5;
/// Bytes of a streamed request body kept so that the request can be sent again (as §12 allows)
/// when the connection fails early (a kept-alive connection the remote relay closed, e.g.
/// restarted).
pub(crate) const UNSENT_REPLAY: usize = 256 * 1024;

/// The client of one remote relay.
pub(crate) type Remote = Engine<StorePairs>;
/// Why an outbound exchange failed: the exchange, the shared store, or a streamed body cut.
pub(crate) type OutboundError = EngineError<StoreError>;
/// An opened answer. Read its body to the end, then call [`Engine::finish`] so the pair goes
/// back to the shared pool (dropping it loses the pair, nothing else).
pub(crate) type Answer = Sent<StorePairs>;

/// The client of the relay at `base` with its pairs in `pairs`, trusting exactly `pins` (none:
/// trust on first use, shared through the store); `max_in_flight` exchanges at once from this
/// relay.
pub(crate) fn remote(
    base: Uri,
    http: HttpClient,
    pairs: OutboundPairs,
    pins: Vec<KeyId>,
    max_in_flight: usize,
) -> Remote {
    let source = StorePairs {
        pairs,
        in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
        pairing: Arc::new(Mutex::new(())),
    };
    let mut settings = EngineSettings::default();
    settings.pins = pins;
    settings.stream_replay = UNSENT_REPLAY;
    settings.renew_pool_when_not_retried = true;
    Engine::new(base, http, source, settings)
}

impl PoolSession for OutboundSession {
    fn token(&self) -> &ClientIdToken {
        &self.token
    }

    fn trusted(&self) -> &[KeyId] {
        &self.trusted
    }

    fn same_pool(&self, other: &Self) -> bool {
        OutboundSession::same_pool(self, other)
    }
}

/// A pair leased from the store for one exchange, and this relay's in-flight permit.
#[derive(Debug)]
pub(crate) struct StoreLease {
    pair: Option<ClientPair>,
    _permit: OwnedSemaphorePermit,
}

impl Lease for StoreLease {
    fn slot(&mut self) -> &mut Option<ClientPair> {
        &mut self.pair
    }

    fn discard(&mut self) {
        // Only a lease given back returns its pair: the engine never gives a discarded one.
    }
}

/// This relay's pairing in flight: the pairing lock and the permit of the caller's exchange.
#[derive(Debug)]
pub(crate) struct PairingTicket {
    _pairing: OwnedMutexGuard<()>,
    permit: OwnedSemaphorePermit,
}

/// Session and pairs of one remote relay in the shared store. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct StorePairs {
    pairs: OutboundPairs,
    in_flight: Arc<Semaphore>,
    /// One pairing at a time from this relay: tasks finding the pool empty wait for the
    /// pairing in flight, whose spare pairs usually serve them.
    pairing: Arc<Mutex<()>>,
}

impl StorePairs {
    fn leased(pair: ClientPair, permit: OwnedSemaphorePermit) -> StoreLease {
        StoreLease {
            pair: Some(pair),
            _permit: permit,
        }
    }
}

fn install_mode(reset: bool) -> Install {
    if reset {
        Install::Reset
    } else {
        Install::Keep
    }
}

impl PairSource for StorePairs {
    type Session = Arc<OutboundSession>;
    type Lease = StoreLease;
    type Ticket = PairingTicket;
    type Error = StoreError;

    async fn session(&self) -> Result<Option<Self::Session>, StoreError> {
        self.pairs.session().await
    }

    async fn replaced(&self, stale: &Self::Session) -> Result<Option<Self::Session>, StoreError> {
        let current = self.pairs.reload().await?;
        Ok(current.filter(|c| !c.same(stale)))
    }

    async fn install(
        &self,
        found: Discovered,
        previous: Option<&Self::Session>,
        reset: bool,
    ) -> Result<Self::Session, StoreError> {
        let previous = previous.map(|p| &**p);
        (self.pairs)
            .install(found.token, previous, install_mode(reset))
            .await
    }

    async fn adopt(&self, session: &Self::Session, token: ClientIdToken) -> Option<Self::Session> {
        let installed = self
            .pairs
            .install(token, Some(session), Install::Keep)
            .await;
        installed.ok()
    }

    async fn trust(
        &self,
        session: &Self::Session,
        keys: Vec<KeyId>,
    ) -> Result<Self::Session, StoreError> {
        self.pairs.trust(session, keys).await
    }

    async fn reset(&self, session: &Self::Session) -> Result<(), StoreError> {
        let token = session.token.clone();
        (self
            .pairs
            .install(token, Some(session), Install::Reset)
            .await)
            .map(drop)
    }

    async fn obtain(&self, session: &Self::Session) -> Result<Obtained<Self>, StoreError> {
        let permit = (self.in_flight.clone().acquire_owned().await)
            .map_err(|_| StoreError::Unavailable("outbound client closed".into()))?;
        if let Some(pair) = self.pairs.take(session).await? {
            return Ok(Obtained::Leased(
                Self::leased(pair, permit),
                session.clone(),
            ));
        }
        // Another relay may have moved to a new pool: look before pairing.
        let moved = self.pairs.reload().await?;
        if moved.is_some_and(|s| !s.same(session)) {
            return Ok(Obtained::Again);
        }
        let pairing = self.pairing.clone().lock_owned().await;
        if let Some(pair) = self.pairs.take(session).await? {
            return Ok(Obtained::Leased(
                Self::leased(pair, permit),
                session.clone(),
            ));
        }
        Ok(Obtained::Pair {
            count: PAIRS_PER_PAIRING,
            ticket: PairingTicket {
                _pairing: pairing,
                permit,
            },
            session: session.clone(),
        })
    }

    async fn paired(
        &self,
        ticket: PairingTicket,
        session: &Self::Session,
        mut pairs: Vec<ClientPair>,
    ) -> Result<Option<(StoreLease, Self::Session)>, StoreError> {
        if pairs.is_empty() {
            return Ok(None);
        }
        let mine = pairs.remove(0);
        self.pairs.give_back(session, pairs).await?;
        let lease = Self::leased(mine, ticket.permit);
        Ok(Some((lease, session.clone())))
    }

    fn repaired(&self, lease: &mut StoreLease, pair: ClientPair, _session: &Self::Session) {
        lease.pair = Some(pair);
    }

    async fn give_back(
        &self,
        lease: StoreLease,
        session: &Self::Session,
    ) -> Result<(), StoreError> {
        let pairs = lease.pair.into_iter().collect();
        self.pairs.give_back(session, pairs).await
    }
}
