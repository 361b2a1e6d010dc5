//! The client's own pair source: session and pairs in this process ([`LocalPairs`]). The pool
//! grows on demand up to its bound (the configured `max_pairs` capped by the relay's
//! `max-pairs`), a pair is checked out and goes back when its response body ends, fails or is
//! dropped, a reset bumps the pool generation, and a pair re-paired in place keeps its
//! checkout. The bookkeeping itself is [`crate::pool::PoolState`].

use std::sync::{Arc, RwLock};

use pqrelay_protocol::{ClientIdToken, ClientPair, RelayInfo};

use crate::pool::{Checkout, PairLease, PoolStats, PooledPair, SharedPool};
use crate::source::{Discovered, Lease as _, Obtained, PairSource, PoolSession};

/// The session with the relay: what discovery established.
#[derive(Debug)]
struct Session {
    token: ClientIdToken,
    info: RelayInfo,
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

/// Session and pairs in this process. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct LocalPairs {
    pairs: usize,
    max_pairs: usize,
    session: RwLock<Option<Arc<Session>>>,
    pool: Arc<SharedPool>,
}

impl LocalPairs {
    /// A pool pairing `pairs` at a time, holding at most `max_pairs`.
    pub(crate) fn new(pairs: usize, max_pairs: usize) -> Self {
        Self {
            pairs,
            max_pairs,
            session: RwLock::new(None),
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

    /// The relay's parameters; `None` before discovery.
    pub(crate) fn relay_info(&self) -> Option<RelayInfo> {
        self.current().map(|s| s.info.clone())
    }

    /// The pool's counters.
    pub(crate) fn stats(&self) -> PoolStats {
        self.pool.lock().stats()
    }
}

impl PairSource for LocalPairs {
    type Session = LocalSession;
    type Lease = PairLease;
    type Ticket = Reservation;
    type Error = core::convert::Infallible;

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
        let shared = Arc::new(Session {
            token: found.token,
            info: found.info,
        });
        let old = self
            .session
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .replace(shared.clone());
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

    async fn adopt(&self, session: &LocalSession, token: ClientIdToken) -> Option<LocalSession> {
        let mut guard = self.session.write().unwrap_or_else(|e| e.into_inner());
        let s = guard.as_ref()?;
        if s.token.id() != token.id() || s.token == token {
            return None;
        }
        let shared = Arc::new(Session {
            token,
            info: s.info.clone(),
        });
        *guard = Some(shared.clone());
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
