//! The bounded pool that pairing's key exchange runs in (docs/SECURITY.md, "Pairing cost").
//!
//! Answering a pairing request is ~0.3 ms of CPU (parsing the client's `ek`, a decapsulation
//! with the relay key, an encapsulation, the chain keys of up to `MAX_POOL_SIZE` pairs;
//! `cargo bench -p pqrelay-protocol`, "pairing/relay"). Run on a Pingora worker it
//! would stall every other connection of that thread, so [`PairingPool::run`] moves it to
//! Tokio's blocking threads, at most `PAIRING_CONCURRENCY` at once. When every permit is
//! taken, [`PairingPool::run`] fails at once with [`Busy`] (the HTTP layer answers 503
//! `pairing_busy` with `Retry-After: 1`): there is no queue to grow.
//!
//! A permit is held by the work itself, not by the request: a client that disconnects does not
//! free its permit before its key exchange has finished burning the CPU it took.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// Every permit is taken: the pairing was refused, not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy;

/// The work panicked or its thread could not start (a logic bug; the pool stays usable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failed;

/// Why [`PairingPool::run`] returned no result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PoolError {
    /// See [`Busy`].
    Busy(Busy),
    /// See [`Failed`].
    Failed(Failed),
}

/// At most `size` pieces of pairing work at once, each on a blocking thread.
#[derive(Debug)]
pub(crate) struct PairingPool {
    permits: Arc<Semaphore>,
    size: usize,
}

impl PairingPool {
    /// A pool of `size` permits (`PAIRING_CONCURRENCY`; 0 is taken as 1).
    pub(crate) fn new(size: usize) -> PairingPool {
        let size = size.clamp(1, Semaphore::MAX_PERMITS);
        PairingPool {
            permits: Arc::new(Semaphore::new(size)),
            size,
        }
    }

    /// How many pieces of work may run at once.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// How many run now.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.size - self.permits.available_permits()
    }

    /// Runs `work` on a blocking thread when a permit is free; [`PoolError::Busy`] at once
    /// otherwise. The permit is released when `work` returns, even if the caller went away.
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T, PoolError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(p) => p,
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => {
                crate::metrics::pairing_busy();
                return Err(PoolError::Busy(Busy));
            }
        };
        let held = Held::new(permit);
        tokio::task::spawn_blocking(move || {
            let _held = held;
            work()
        })
        .await
        .map_err(|e| {
            log::error!("pairing work failed: {e}");
            PoolError::Failed(Failed)
        })
    }
}

/// A taken permit, counted in `pqrelay_pairings_in_flight` while it lives.
struct Held {
    _permit: OwnedSemaphorePermit,
}

impl Held {
    fn new(permit: OwnedSemaphorePermit) -> Held {
        crate::metrics::pairing_started();
        Held { _permit: permit }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        crate::metrics::pairing_finished();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn pool_refuses_beyond_its_size_and_frees_permits() {
        let pool = PairingPool::new(1);
        let (release, wait) = mpsc::channel::<()>();
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let first = pool.run(move || {
            let _ = started_tx.send(());
            let _ = wait.recv_timeout(Duration::from_secs(10));
            7
        });
        let (first, second) = tokio::join!(first, async {
            let _ = started.await;
            assert_eq!(pool.in_flight(), 1);
            let refused = pool.run(|| 8).await;
            let _ = release.send(());
            refused
        });
        assert_eq!(first, Ok(7));
        assert_eq!(second, Err(PoolError::Busy(Busy)));
        assert_eq!(pool.in_flight(), 0);
        assert_eq!(pool.run(|| 9).await, Ok(9));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn pool_survives_panicking_work() {
        let pool = PairingPool::new(1);
        let failed = pool.run(|| -> u8 { panic!("a logic bug") }).await;
        assert_eq!(failed, Err(PoolError::Failed(Failed)));
        assert_eq!(pool.run(|| 1).await, Ok(1));
    }

    #[test]
    fn pool_size_is_never_zero() {
        assert_eq!(PairingPool::new(0).size(), 1);
    }
}
