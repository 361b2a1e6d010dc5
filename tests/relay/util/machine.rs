//! Turns on the machine. All relay tests share one process and run in parallel threads (as
//! many as cores). Most are light, but some load the machine for seconds (load loops, a fuzz
//! run, 100 MiB transfers, upgrades under load) or measure a relay's memory and descriptors,
//! and some assert on elapsed time. When they had their own binaries, a heavy test only ran
//! beside its own file's tests; these locks keep that: heavy tests run one at a time, and a
//! timed test never runs beside a heavy one. Light tests take no lock.
//!
//! Take the guard before the part that loads, measures or times and hold it to the end of the
//! test; take at most one per test (a timed test waiting behind a queued heavy one would
//! deadlock on a second guard).

use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

static MACHINE: RwLock<()> = RwLock::new(());

/// For a test that loads the machine or measures a relay: no other heavy test and no timed
/// test runs while the guard lives.
pub fn heavy() -> RwLockWriteGuard<'static, ()> {
    // A failed test poisons the lock; the next ones still take their turn.
    MACHINE.write().unwrap_or_else(PoisonError::into_inner)
}

/// For a test that asserts on elapsed time: no heavy test runs while the guard lives.
pub fn timed() -> RwLockReadGuard<'static, ()> {
    MACHINE.read().unwrap_or_else(PoisonError::into_inner)
}
