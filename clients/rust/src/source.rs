//! Where pairs come from: the [`PairSource`] trait the send / recover engine
//! ([`crate::engine::Engine`]) is generic over.
//!
//! A pair source keeps the **session** (the client id token discovery established, and which
//! pool of pairs is current) and the **pairs**. The engine does everything that talks to the
//! relay — discovery, pairing, sealing, sending, the §11 recovery — and asks the source only
//! where state lives and what the pool's rules are. Two sources exist:
//!
//! - the client's own in-process pool ([`crate::RelayClient`]): grows on demand up to `max`
//!   pairs, a pair is checked out and goes back when its response body ends, fails or is
//!   dropped, a reset bumps the pool generation;
//! - in the relay, the store-backed leases of outbound mode (PROTOCOL.md §14.1): session and
//!   pairs in a store shared by a fleet, a pair leased by an atomic pop and pushed back advanced
//!   once its response was read, a reset agreed by compare-and-set (one of many relays resets).
//!
//! The session also holds the relay keys trusted on first use (§13): trust belongs to the relay
//! origin, so a source carries it over when a new client id or pool replaces the session, and
//! stores what [`trust`](PairSource::trust) gives it. (Pins are the engine's setting: with pins
//! the stored keys are not used.)
//!
//! The rule every source keeps: a pair is held by exactly one exchange at a time (§1), from
//! [`obtain`](PairSource::obtain) (or [`paired`](PairSource::paired)) until
//! [`give_back`](PairSource::give_back) or until its [`Lease`] is dropped.

use std::future::Future;
use std::sync::Arc;

use pqrelay_protocol::{ClientIdToken, ClientPair, KeyId, RelayInfo, RelayKeys};

/// What a discovery (`HEAD /api/mte-relay`, §5) established.
#[derive(Clone, Debug)]
pub struct Discovered {
    /// The client id token the relay answered.
    pub token: ClientIdToken,
    /// The relay's parameters (`x-mte-relay-info`).
    pub info: RelayInfo,
    /// The relay keys offered (`x-mte-relay-keys`), current first. Not authenticated: the
    /// engine pairs only with a trusted one (§13).
    pub keys: RelayKeys,
}

/// A session: the token to seal with, the pool of pairs it belongs to, and the relay keys
/// trusted on first use.
pub trait PoolSession: Send + Sync + 'static {
    /// The client id token to present.
    fn token(&self) -> &ClientIdToken;
    /// The relay key ids trusted on first use for this relay origin (§13); empty before the
    /// first confirmed pairing.
    fn trusted(&self) -> &[KeyId];
    /// Whether `other` still uses the same pool of pairs: the same client id, and the pool not
    /// reset since (the token may have been re-signed).
    fn same_pool(&self, other: &Self) -> bool;
}

impl<T: PoolSession + ?Sized> PoolSession for Arc<T> {
    fn token(&self) -> &ClientIdToken {
        (**self).token()
    }

    fn trusted(&self) -> &[KeyId] {
        (**self).trusted()
    }

    fn same_pool(&self, other: &Self) -> bool {
        (**self).same_pool(other)
    }
}

/// A pair held for one exchange.
pub trait Lease: Send + 'static {
    /// The pair: the engine takes it out to advance it and puts the next state back before
    /// anything is sent (§6); empty once the pair is used up.
    fn slot(&mut self) -> &mut Option<ClientPair>;
    /// The relay asked to re-pair this pair: it must never be given back as it is (a re-paired
    /// state may still take its place, [`PairSource::repaired`]).
    fn discard(&mut self);
}

/// A leased pair and the session (pool) it belongs to.
pub type Leased<S> = (<S as PairSource>::Lease, <S as PairSource>::Session);

/// What [`PairSource::obtain`] found.
pub enum Obtained<S: PairSource + ?Sized> {
    /// A pair, leased, and the session (pool) it belongs to.
    Leased(S::Lease, S::Session),
    /// No idle pair: the engine pairs `count` new pairs under `session` and hands them to
    /// [`PairSource::paired`] with `ticket` (dropping the ticket gives the pairing up).
    Pair {
        /// How many pairs to ask for.
        count: usize,
        /// What the source needs back with the pairs (a reservation, a lock).
        ticket: S::Ticket,
        /// The session to pair under.
        session: S::Session,
    },
    /// Nothing usable (a pair of an older client id, a session changed meanwhile): look again.
    Again,
}

impl<S: PairSource + ?Sized> core::fmt::Debug for Obtained<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Leased(..) => f.write_str("Obtained::Leased(..)"),
            Self::Pair { count, .. } => write!(f, "Obtained::Pair({count})"),
            Self::Again => f.write_str("Obtained::Again"),
        }
    }
}

/// Where the session and the pairs of a [`crate::engine::Engine`] live. See the
/// [module docs](self).
pub trait PairSource: Send + Sync + 'static {
    /// A snapshot of the session, cheap to clone.
    type Session: PoolSession + Clone;
    /// A pair held for one exchange.
    type Lease: Lease;
    /// What a pairing started by [`obtain`](Self::obtain) hands back to
    /// [`paired`](Self::paired).
    type Ticket: Send;
    /// Why the source failed (e.g. a shared store is down).
    type Error: Send;

    /// The current session; `None` before the first discovery.
    fn session(&self) -> impl Future<Output = Result<Option<Self::Session>, Self::Error>> + Send;

    /// The session that replaced `stale` since it was read, if another task (or another relay
    /// sharing the source) already re-discovered: the engine then does not discover again.
    fn replaced(
        &self,
        stale: &Self::Session,
    ) -> impl Future<Output = Result<Option<Self::Session>, Self::Error>> + Send;

    /// Makes a discovered session current. `previous`: the session it replaces (`None` for the
    /// first discovery). `reset`: forget every pair unless that already happened since
    /// `previous`'s pool; a new client id always forgets them. Returns the current session (a
    /// shared source may answer another relay's, stored first).
    fn install(
        &self,
        found: Discovered,
        previous: Option<&Self::Session>,
        reset: bool,
    ) -> impl Future<Output = Result<Self::Session, Self::Error>> + Send;

    /// Stores `token`, a re-signed token of `session`'s client id (same pool). `Some` with the
    /// session carrying it when it was stored; `None` when not (already stored, best effort).
    fn adopt(
        &self,
        session: &Self::Session,
        token: ClientIdToken,
    ) -> impl Future<Output = Option<Self::Session>> + Send;

    /// Stores `keys` as the relay keys trusted on first use (§13), after a pairing whose
    /// `confirm` verified, and returns the session carrying them. Called only without pins.
    fn trust(
        &self,
        session: &Self::Session,
        keys: Vec<KeyId>,
    ) -> impl Future<Output = Result<Self::Session, Self::Error>> + Send;

    /// Forgets every pair of `session`'s pool (re-pair all, §11) unless that already happened
    /// since: of many exchanges answered 569 at once, only the first resets.
    fn reset(
        &self,
        session: &Self::Session,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Leases a pair of `session`'s client id, or says how many to pair, or to look again.
    fn obtain(
        &self,
        session: &Self::Session,
    ) -> impl Future<Output = Result<Obtained<Self>, Self::Error>> + Send;

    /// A pairing asked for by [`obtain`](Self::obtain) completed with `pairs` under `session`:
    /// returns the caller's pair, leased, and keeps the others. `None` when the pool was reset
    /// meanwhile (the pairs are dropped): the engine obtains again.
    fn paired(
        &self,
        ticket: Self::Ticket,
        session: &Self::Session,
        pairs: Vec<ClientPair>,
    ) -> impl Future<Output = Result<Option<Leased<Self>>, Self::Error>> + Send;

    /// A fresh pair was paired under `session` in place of the pair of `lease` (§11.1
    /// re-pair): `pair` takes its place and stays leased for the resend.
    fn repaired(&self, lease: &mut Self::Lease, pair: ClientPair, session: &Self::Session);

    /// The exchange on `lease` is over and its pair still good (advanced past its counter): it
    /// goes back to the pool.
    fn give_back(
        &self,
        lease: Self::Lease,
        session: &Self::Session,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}
