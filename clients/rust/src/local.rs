//! The client's own pair source: session and pairs in this process ([`LocalPairs`]). The pool
//! grows on demand up to its bound (the configured `max_pairs` capped by the relay's
//! `max-pairs`), a pair is checked out and goes back when its response body ends, fails or is
//! dropped, a reset bumps the pool generation, and a fresh pair paired in place of a failed
//! one keeps its checkout. The bookkeeping itself is [`crate::pool::PoolState`].
//!
//! The relay keys trusted on first use live beside the session (they outlive client ids), and
//! with a [`TrustStore`] the token and the trusted keys are written to it whenever they change.

use std::sync::{Arc, RwLock};

use pqrelay_protocol::{ClientIdToken, ClientPair, KeyId};

use crate::error::Error;
use crate::pool::{Checkout, PairLease, PoolStats, PooledPair, SharedPool};
use crate::source::{Discovered, Lease as _, Obtained, PairSource, PoolSession};
use crate::trust_store::{KnownRelay, TrustStore};

/// The session with the relay: what discovery established, and the keys trusted on first use.
#[derive(Debug)]
struct Session {
    token: ClientIdToken,
    trusted: Vec<KeyId>,
}

/// A session and the pool generation a pair belongs to.
#[derive(Clone, Debug)]
pub(crate) struct LocalSession {
    shared: Arc<Session>,
    generation: u64,
}

impl PoolSession for LocalSession {
    fn token(&self) -> &ClientIdToken {
        &self.shared.token
    }

    fn trusted(&self) -> &[KeyId] {
        &self.shared.trusted
    }

    fn same_pool(&self, other: &Self) -> bool {
        self.token().id() == other.token().id() && self.generation == other.generation
    }
}

/// Gives a pairing reservation back to the pool if it did not complete (error or cancel).
pub(crate) struct Reservation {
    pool: Arc<SharedPool>,
    count: usize,
    generation: u64,
    open: bool,
}

impl Reservation {
    fn complete(mut self, pairs: Vec<PooledPair>) -> Option<PooledPair> {
        self.open = false;
        let mine = self.pool.lock().paired(self.generation, self.count, pairs);
        self.pool.wake();
        mine
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.open {
            self.pool.lock().pairing_failed(self.count);
            self.pool.wake();
        }
    }
}

/// Where a [`LocalPairs`] persists the token and the trusted keys: a trust store, under the
/// relay's origin.
#[derive(Debug)]
pub(crate) struct Persist {
    pub(crate) store: TrustStore,
    pub(crate) origin: String,
}

/// Session and pairs in this process. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct LocalPairs {
    pairs: usize,
    max_pairs: usize,
    session: RwLock<Option<Arc<Session>>>,
    /// The keys trusted on first use before the first discovery (given or read from the store).
    initial_trust: Vec<KeyId>,
    persist: Option<Persist>,
    pool: Arc<SharedPool>,
}

impl LocalPairs {
    /// A pool pairing `pairs` at a time, holding at most `max_pairs`, trusting `trusted` on
    /// first use until the relay confirms others, persisting to `persist`.
    pub(crate) fn new(
        pairs: usize,
        max_pairs: usize,
        trusted: Vec<KeyId>,
        persist: Option<Persist>,
    ) -> Self {
        Self {
            pairs,
            max_pairs,
            session: RwLock::new(None),
            initial_trust: trusted,
            persist,
            pool: Arc::new(SharedPool::new(max_pairs, pairs)),
        }
    }

    fn current(&self) -> Option<Arc<Session>> {
        self.session
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn snapshot(&self, shared: Arc<Session>) -> LocalSession {
        let generation = self.pool.lock().generation();
        LocalSession { shared, generation }
    }

    /// The current token; `None` before discovery.
    pub(crate) fn token(&self) -> Option<ClientIdToken> {
        self.current().map(|s| s.token.clone())
    }

    /// The relay keys trusted on first use.
    pub(crate) fn trusted(&self) -> Vec<KeyId> {
        match self.current() {
            Some(s) => s.trusted.clone(),
            None => self.initial_trust.clone(),
        }
    }

    /// The pool's counters.
    pub(crate) fn stats(&self) -> PoolStats {
        self.pool.lock().stats()
    }

    /// Writes `session` to the trust store, if there is one.
    fn persist(&self, session: &Session) -> Result<(), Error> {
        let Some(p) = &self.persist else {
            return Ok(());
        };
        let known = KnownRelay {
            token: Some(session.token.clone()),
            trusted: session.trusted.clone(),
        };
        p.store.save(&p.origin, &known)
    }

    /// Makes `next` the session, persisted first; with `strict`, a failure to persist is an
    /// error and nothing changes.
    fn replace(
        &self,
        next: Session,
        strict: bool,
    ) -> Result<(Arc<Session>, Option<Arc<Session>>), Error> {
        let saved = self.persist(&next);
        if strict {
            saved?;
        }
        let shared = Arc::new(next);
        let mut guard = self.session.write().unwrap_or_else(|e| e.into_inner());
        let old = guard.replace(shared.clone());
        Ok((shared, old))
    }
}

impl PairSource for LocalPairs {
    type Session = LocalSession;
    type Lease = PairLease;
    type Ticket = Reservation;
    type Error = Error;

    async fn session(&self) -> Result<Option<LocalSession>, Self::Error> {
        Ok(self.current().map(|s| self.snapshot(s)))
    }

    async fn replaced(&self, stale: &LocalSession) -> Result<Option<LocalSession>, Self::Error> {
        let current = self.current();
        let replaced = current.filter(|s| s.token.id() != stale.token().id());
        Ok(replaced.map(|s| self.snapshot(s)))
    }

    async fn install(
        &self,
        found: Discovered,
        previous: Option<&LocalSession>,
        reset: bool,
    ) -> Result<LocalSession, Self::Error> {
        let relay_max = usize::try_from(found.info.max_pairs)
            .unwrap_or(usize::MAX)
            .max(1);
        let max = self.max_pairs.min(relay_max);
        // Trust belongs to the relay origin: it survives a new client id.
        let trusted = self.trusted();
        let (shared, old) = self.replace(
            Session {
                token: found.token,
                trusted,
            },
            true,
        )?;
        let mut pool = self.pool.lock();
        pool.set_bounds(max, self.pairs.min(max));
        if old.is_some_and(|o| o.token.id() != shared.token.id()) {
            pool.reset();
        } else if let (true, Some(previous)) = (reset, previous) {
            pool.reset_since(previous.generation);
        }
        let generation = pool.generation();
        drop(pool);
        self.pool.wake();
        Ok(LocalSession { shared, generation })
    }

    async fn trust(
        &self,
        session: &LocalSession,
        keys: Vec<KeyId>,
    ) -> Result<LocalSession, Self::Error> {
        let token = self.token().unwrap_or_else(|| session.token().clone());
        let (shared, _) = self.replace(
            Session {
                token,
                trusted: keys,
            },
            true,
        )?;
        Ok(LocalSession {
            shared,
            generation: session.generation,
        })
    }

    async fn adopt(&self, session: &LocalSession, token: ClientIdToken) -> Option<LocalSession> {
        let s = self.current()?;
        if s.token.id() != token.id() || s.token == token {
            return None;
        }
        let next = Session {
            token,
            trusted: s.trusted.clone(),
        };
        // Persisted best effort: the token in memory is what matters for this process.
        let (shared, _) = self.replace(next, false).ok()?;
        Some(LocalSession {
            shared,
            generation: session.generation,
        })
    }

    async fn reset(&self, session: &LocalSession) -> Result<(), Self::Error> {
        self.pool.lock().reset_since(session.generation);
        Ok(())
    }

    async fn obtain(&self, session: &LocalSession) -> Result<Obtained<Self>, Self::Error> {
        Ok(match self.pool.checkout().await {
            Checkout::Ready(p) => {
                let mut lease = PairLease::new(self.pool.clone(), p);
                if lease.client_id() != session.token().id() {
                    lease.discard();
                    return Ok(Obtained::Again);
                }
                let generation = lease.generation();
                let session = LocalSession {
                    shared: session.shared.clone(),
                    generation,
                };
                Obtained::Leased(lease, session)
            }
            Checkout::Pair { count, generation } => Obtained::Pair {
                count,
                ticket: Reservation {
                    pool: self.pool.clone(),
                    count,
                    generation,
                    open: true,
                },
                session: LocalSession {
                    shared: session.shared.clone(),
                    generation,
                },
            },
            Checkout::Wait => Obtained::Again,
        })
    }

    async fn paired(
        &self,
        ticket: Reservation,
        session: &LocalSession,
        pairs: Vec<ClientPair>,
    ) -> Result<Option<(PairLease, LocalSession)>, Self::Error> {
        let client_id = session.token().id();
        let generation = ticket.generation;
        let pairs = pairs
            .into_iter()
            .map(|pair| PooledPair {
                pair,
                client_id,
                generation,
            })
            .collect();
        let mine = ticket.complete(pairs);
        Ok(mine.map(|p| (PairLease::new(self.pool.clone(), p), session.clone())))
    }

    fn repaired(&self, lease: &mut PairLease, pair: ClientPair, session: &LocalSession) {
        self.pool.lock().repaired();
        lease.replace(PooledPair {
            pair,
            client_id: session.token().id(),
            generation: session.generation,
        });
    }

    async fn give_back(
        &self,
        lease: PairLease,
        _session: &LocalSession,
    ) -> Result<(), Self::Error> {
        drop(lease); // returned to the pool (or discarded) on drop
        Ok(())
    }
}
