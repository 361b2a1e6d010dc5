//! The pair pool. [`PoolState`] is the pure bookkeeping (no I/O, no locks), exported so that
//! its rules can be tested directly:
//!
//! - a pair is either idle in the pool or checked out to exactly one exchange: never two
//!   exchanges in flight on one pair (§1);
//! - the pool grows on demand, `grow` pairs at a time, and never holds more than `max` pairs
//!   (idle + in use + being paired);
//! - [`PoolState::reset`] forgets every pair (re-pair all, §11): pairs still checked out are
//!   dropped when they come back, and pairings still in flight are discarded when they land;
//!   [`PoolState::reset_since`] does so only once for many exchanges failing together;
//! - a pair re-paired after a relay error keeps its slot and its checkout
//!   ([`PoolState::repaired`]): the retry runs on it (see [`crate::recovery`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use pqrelay_protocol::{ClientId, ClientPair};
use tokio::sync::Notify;

use crate::source::Lease;

/// A pair with the client id it was paired under and the pool generation it belongs to.
#[derive(Debug)]
pub struct PooledPair {
    /// The ratchet state (already advanced past the exchange it is used for, once used).
    pub pair: ClientPair,
    /// The client id the pair was paired under (bound into its keys).
    pub client_id: ClientId,
    /// The pool generation at pairing time.
    pub generation: u64,
}

/// What [`PoolState::checkout`] decided.
#[derive(Debug)]
pub enum Checkout {
    /// An idle pair, now checked out.
    Ready(PooledPair),
    /// No idle pair: the caller must pair `count` new pairs (reserved now) and hand them to
    /// [`PoolState::paired`] (or call [`PoolState::pairing_failed`]).
    Pair {
        /// How many pairs to ask for.
        count: usize,
        /// The generation to pass back to [`PoolState::paired`].
        generation: u64,
    },
    /// No idle pair and the pool is full or a pairing in flight will bring one: wait for a
    /// pair to come back or land, then check out again.
    Wait,
}

/// Counters of a pool, for tests and monitoring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Pairs idle in the pool.
    pub idle: usize,
    /// Pairs checked out to an exchange.
    pub in_use: usize,
    /// Pairs being paired.
    pub pairing: usize,
    /// The bound on idle + in use + pairing.
    pub max: usize,
    /// Pairing requests completed.
    pub pairings: u64,
    /// Pairs created by completed pairing requests.
    pub pairs_created: u64,
    /// Pairs dropped because the relay asked to re-pair them (or all).
    pub pairs_discarded: u64,
    /// How many times every pair was forgotten ([`PoolState::reset`]).
    pub resets: u64,
    /// Pairs re-paired in place after a relay error (each also counts in `pairings`,
    /// `pairs_created` and `pairs_discarded`).
    pub pairs_repaired: u64,
}

/// The pool's bookkeeping. See the [module docs](self) for the rules it keeps.
#[derive(Debug)]
pub struct PoolState {
    idle: VecDeque<PooledPair>,
    in_use: usize,
    reserved: usize,
    claims: usize,
    max: usize,
    grow: usize,
    generation: u64,
    stats: PoolStats,
}

impl PoolState {
    /// An empty pool holding at most `max` pairs (at least 1), growing `grow` pairs at a time
    /// (at least 1).
    pub fn new(max: usize, grow: usize) -> Self {
        Self {
            idle: VecDeque::new(),
            in_use: 0,
            reserved: 0,
            claims: 0,
            max: max.max(1),
            grow: grow.max(1),
            generation: 0,
            stats: PoolStats::default(),
        }
    }

    /// Changes the bounds (after discovery: the configured bound capped by the relay's
    /// `max-pairs`). Pairs above a lowered bound are dropped as they become idle.
    pub fn set_bounds(&mut self, max: usize, grow: usize) {
        self.max = max.max(1);
        self.grow = grow.max(1);
        while self.total() > self.max && self.idle.pop_front().is_some() {}
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn total(&self) -> usize {
        self.idle.len() + self.in_use + self.reserved
    }

    /// Checks out an idle pair, or says how many to pair, or says to wait.
    pub fn checkout(&mut self) -> Checkout {
        if let Some(p) = self.idle.pop_front() {
            self.in_use += 1;
            return Checkout::Ready(p);
        }
        // A pairing in flight brings more pairs than its own caller needs: wait for one.
        if self.reserved > self.claims {
            self.claims += 1;
            return Checkout::Wait;
        }
        let room = self.max.saturating_sub(self.total());
        if room == 0 {
            return Checkout::Wait;
        }
        let count = self.grow.min(room);
        self.reserved += count;
        self.claims += 1; // the caller's own pair
        Checkout::Pair {
            count,
            generation: self.generation,
        }
    }

    fn release_reservation(&mut self, count: usize) {
        self.reserved = self.reserved.saturating_sub(count);
        // The claims on this batch are settled: its waiters wake and check out again.
        self.claims = self.claims.saturating_sub(count).min(self.reserved);
    }

    /// A pairing of `reserved` pairs (as returned by [`Checkout::Pair`]) landed with `pairs`.
    /// Returns the caller's pair, checked out; the rest become idle. Returns `None` (and
    /// drops the pairs) if the pool was [reset](Self::reset) meanwhile, or none landed.
    pub fn paired(
        &mut self,
        generation: u64,
        reserved: usize,
        pairs: Vec<PooledPair>,
    ) -> Option<PooledPair> {
        self.release_reservation(reserved);
        self.stats.pairings += 1;
        self.stats.pairs_created += pairs.len() as u64;
        if generation != self.generation {
            self.stats.pairs_discarded += pairs.len() as u64;
            return None;
        }
        let mut pairs = pairs.into_iter();
        let mine = pairs.next()?;
        self.in_use += 1;
        for p in pairs {
            if self.total() < self.max {
                self.idle.push_back(p);
            }
        }
        Some(mine)
    }

    /// A pairing of `reserved` pairs failed.
    pub fn pairing_failed(&mut self, reserved: usize) {
        self.release_reservation(reserved);
    }

    /// A checked-out pair comes back after its exchange. Pairs of an older generation (or
    /// above a lowered bound) are dropped.
    pub fn give_back(&mut self, pair: PooledPair) {
        self.in_use = self.in_use.saturating_sub(1);
        if pair.generation == self.generation && self.total() < self.max {
            self.idle.push_back(pair);
        }
    }

    /// A checked-out pair is dropped (the relay asked to re-pair it); its slot is free again.
    pub fn discard(&mut self, pair: PooledPair) {
        self.in_use = self.in_use.saturating_sub(1);
        self.stats.pairs_discarded += 1;
        drop(pair);
    }

    /// Forgets every pair (re-pair all): idle pairs are dropped now, checked-out ones when
    /// they come back, pairings in flight when they land.
    pub fn reset(&mut self) {
        self.generation += 1;
        self.stats.resets += 1;
        self.stats.pairs_discarded += self.idle.len() as u64;
        self.idle.clear();
    }

    /// Forgets every pair, like [`reset`](Self::reset), unless that already happened since
    /// `generation` (the generation of the pair that got a re-pair-all error). Returns whether
    /// it reset: of many exchanges answered 569 at once, only the first resets the pool, so
    /// the pairs re-paired by the others stay valid.
    pub fn reset_since(&mut self, generation: u64) -> bool {
        if generation != self.generation {
            return false;
        }
        self.reset();
        true
    }

    /// A checked-out pair was re-paired in place (one pairing of one pair): the stale state is
    /// dropped, the fresh pair takes its slot and stays checked out for the retry. Only counts.
    pub fn repaired(&mut self) {
        self.stats.pairings += 1;
        self.stats.pairs_created += 1;
        self.stats.pairs_discarded += 1;
        self.stats.pairs_repaired += 1;
    }

    /// The counters.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            idle: self.idle.len(),
            in_use: self.in_use,
            pairing: self.reserved,
            max: self.max,
            ..self.stats
        }
    }
}

/// A [`PoolState`] behind a lock, with a notifier for tasks waiting for a pair.
#[derive(Debug)]
pub(crate) struct SharedPool {
    state: Mutex<PoolState>,
    notify: Notify,
}

impl SharedPool {
    pub(crate) fn new(max: usize, grow: usize) -> Self {
        Self {
            state: Mutex::new(PoolState::new(max, grow)),
            notify: Notify::new(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, PoolState> {
        // The state has no invariant a panicking holder could break half-way that matters
        // more than availability: recover from poisoning.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks out, or waits until something changes and checks out again.
    pub(crate) async fn checkout(&self) -> Checkout {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Take the decision first: the guard must not live across the await.
            let decision = self.lock().checkout();
            match decision {
                Checkout::Wait => notified.await,
                other => return other,
            }
        }
    }

    pub(crate) fn wake(&self) {
        self.notify.notify_waiters();
    }
}

/// A pair checked out of the pool for one exchange. Dropping it returns the pair (or discards
/// it when [`discard`](Lease::discard) was called) and wakes waiting tasks.
#[derive(Debug)]
pub(crate) struct PairLease {
    pool: Arc<SharedPool>,
    pair: Option<ClientPair>,
    client_id: ClientId,
    generation: u64,
    discard: bool,
}

impl PairLease {
    pub(crate) fn new(pool: Arc<SharedPool>, pooled: PooledPair) -> Self {
        Self {
            pool,
            pair: Some(pooled.pair),
            client_id: pooled.client_id,
            generation: pooled.generation,
            discard: false,
        }
    }

    pub(crate) fn client_id(&self) -> ClientId {
        self.client_id
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Puts a re-paired pair in place of the stale one; it is returned to the pool as usual.
    pub(crate) fn replace(&mut self, pooled: PooledPair) {
        self.pair = Some(pooled.pair);
        self.client_id = pooled.client_id;
        self.generation = pooled.generation;
        self.discard = false;
    }
}

impl Lease for PairLease {
    fn slot(&mut self) -> &mut Option<ClientPair> {
        &mut self.pair
    }

    fn discard(&mut self) {
        self.discard = true;
    }
}

impl Drop for PairLease {
    fn drop(&mut self) {
        let mut state = self.pool.lock();
        let pooled = self.pair.take().map(|pair| PooledPair {
            pair,
            client_id: self.client_id,
            generation: self.generation,
        });
        match pooled {
            Some(p) if !self.discard => state.give_back(p),
            Some(p) => state.discard(p),
            // The pair was consumed (counter exhausted): free its slot.
            None => state.discard_slot(),
        }
        drop(state);
        self.pool.wake();
    }
}

impl PoolState {
    /// A checked-out pair was lost without coming back; its slot is free again.
    fn discard_slot(&mut self) {
        self.in_use = self.in_use.saturating_sub(1);
        self.stats.pairs_discarded += 1;
    }
}
