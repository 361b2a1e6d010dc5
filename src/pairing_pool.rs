//! The bounded pool that pairing's key exchange runs in (docs/SECURITY.md, "Pairing cost").
//!
//! Answering a pairing request is ~0.3 ms of CPU (parsing the client's `ek`, a decapsulation
//! with the relay key, an encapsulation, the chain keys of up to `MAX_POOL_SIZE` pairs;
//! `cargo bench -p pqrelay-protocol`, "pairing/relay"). Run on a Pingora worker it would stall
//! every other connection of that thread, so [`PairingPool::run`] moves it to the pool's own
//! threads (`pqrelay-pairing`), at most `PAIRING_CONCURRENCY` pieces of work at once. When
//! every permit is taken, [`PairingPool::run`] fails at once with [`Busy`] (the HTTP layer
//! answers 503 `pairing_busy` with `Retry-After: 1`): there is no queue to grow.
//!
//! The threads are a fixed set, one per permit up to the default `PAIRING_CONCURRENCY` (4 per
//! CPU), rather than Tokio's blocking pool: each Pingora runtime has a blocking pool of its own
//! that adds a thread whenever work arrives while its threads are busy (a permit is released
//! just before its thread is idle again), about 20 threads for 8 permits under a pairing load,
//! each with its own allocator heap: 322–374 bytes of RSS per stored pair against 180 with
//! this pool (`pqrelay-bench memory`, 100,000 clients; 188–209 with its threads as a Tokio
//! runtime, which paired 10–20% slower). The threads start on first use, after `--daemon`'s
//! fork.
//!
//! A permit is held by the work itself, not by the request: a client that disconnects does not
//! free its permit before its key exchange has finished burning the CPU it took.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// Every permit is taken: the pairing was refused, not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy;

/// The work panicked or the pool's threads could not start (a logic bug or an exhausted
/// system; the pool stays usable).
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

/// A piece of work, with its permit and the sender of its result inside.
type Job = Box<dyn FnOnce() + Send>;

/// The work waiting for a thread (never more than the permits), whether the pool is gone, and
/// the threads' signal.
#[derive(Default)]
struct Queue {
    state: Mutex<Waiting>,
    ready: Condvar,
}

/// The inside of [`Queue`]'s lock.
#[derive(Default)]
struct Waiting {
    jobs: VecDeque<Job>,
    closed: bool,
}

impl Queue {
    /// A thread's loop: runs jobs one after the other (a job that panics ends alone) until the
    /// pool is dropped and nothing waits.
    fn serve(&self) {
        loop {
            let job = {
                let mut waiting = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                loop {
                    if let Some(job) = waiting.jobs.pop_front() {
                        break job;
                    }
                    if waiting.closed {
                        return;
                    }
                    waiting = self
                        .ready
                        .wait(waiting)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            };
            // The job's result sender is dropped while unwinding: its caller sees `Failed`.
            let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
        }
    }

    /// Queues `job` and wakes one thread.
    fn push(&self, job: Job) {
        let mut waiting = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        waiting.jobs.push_back(job);
        drop(waiting);
        self.ready.notify_one();
    }

    /// Lets every thread end once the queue is empty.
    fn close(&self) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = true;
        self.ready.notify_all();
    }
}

/// At most `size` pieces of pairing work at once, on the pool's own threads.
pub(crate) struct PairingPool {
    permits: Arc<Semaphore>,
    size: usize,
    /// The queue the pool's threads serve, once they started (`None` inside if they could not).
    queue: OnceLock<Option<Arc<Queue>>>,
    threads: usize,
}

impl std::fmt::Debug for PairingPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairingPool")
            .field("size", &self.size)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl PairingPool {
    /// A pool of `size` permits (`PAIRING_CONCURRENCY`; 0 is taken as 1) and as many threads,
    /// the default `PAIRING_CONCURRENCY` at most.
    pub(crate) fn new(size: usize) -> PairingPool {
        let size = size.clamp(1, Semaphore::MAX_PERMITS);
        let threads = size.min(crate::config::limits::default_pairing_concurrency().max(1));
        PairingPool {
            permits: Arc::new(Semaphore::new(size)),
            size,
            queue: OnceLock::new(),
            threads,
        }
    }

    /// How many pieces of work may be admitted at once (running, or waiting for a thread).
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// How many run now.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.size - self.permits.available_permits()
    }

    /// The queue of the pool's threads, started on the first call; they end when the pool is
    /// dropped.
    fn queue(&self) -> Option<&Arc<Queue>> {
        self.queue
            .get_or_init(|| {
                let queue = Arc::new(Queue::default());
                for i in 0..self.threads {
                    let served = Arc::clone(&queue);
                    let started = std::thread::Builder::new()
                        .name("pqrelay-pairing".into())
                        .spawn(move || served.serve());
                    if let Err(e) = started {
                        log::error!("pairing thread {i} could not start: {e}");
                        if i == 0 {
                            return None;
                        }
                        break;
                    }
                }
                Some(queue)
            })
            .as_ref()
    }

    /// Runs `work` on one of the pool's threads when a permit is free; [`PoolError::Busy`] at
    /// once otherwise. The permit is released when `work` returns, even if the caller went away.
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
        let queue = self.queue().ok_or(PoolError::Failed(Failed))?;
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let out = work();
            // The permit is free before the caller learns the result (it may pair again).
            drop(held);
            let _ = done.send(out);
        });
        queue.push(job);
        result.await.map_err(|_| {
            log::error!("pairing work failed: it panicked");
            PoolError::Failed(Failed)
        })
    }
}

impl Drop for PairingPool {
    fn drop(&mut self) {
        if let Some(Some(queue)) = self.queue.get() {
            queue.close();
        }
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

    #[tokio::test(flavor = "current_thread")]
    async fn work_runs_on_a_fixed_set_of_threads_that_end_with_the_pool() {
        let pool = PairingPool::new(2);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20 {
            let both = tokio::join!(
                pool.run(|| std::thread::current().id()),
                pool.run(|| std::thread::current().id()),
            );
            let (a, b) = (both.0.unwrap(), both.1.unwrap());
            seen.extend([a, b]);
        }
        assert!(seen.len() <= 2, "{} threads for 2 permits", seen.len());
        let queue = Arc::clone(pool.queue().unwrap());
        drop(pool);
        // Every thread drops its clone of the queue when it ends.
        for _ in 0..200 {
            if Arc::strong_count(&queue) == 1 {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "{} pairing threads still run",
            Arc::strong_count(&queue) - 1
        );
    }

    #[test]
    fn pool_size_is_never_zero() {
        assert_eq!(PairingPool::new(0).size(), 1);
    }
}
