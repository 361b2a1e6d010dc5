//! The Rust client's tests, one binary. In-process modules need no network (`exchange`,
//! `pool`, `curl_args`); the others run the client (or `pqrelay-curl`) against the real relay
//! binary and the real demo upstream on loopback, or the counting upstream
//! (`pqrelay-test-upstream`) and `pqrelay-attacker` on the wire, started by `pqrelay_testkit`
//! (the relay binary is `$PQRELAY_BIN`, else `pqrelay` in this test's target directory, the
//! tools beside it: `cargo build --workspace`, as `.ci/run` does, builds them first). Shared
//! helpers are in [`util`].
//!
//! The tests share this process and run in parallel threads: none sets environment variables,
//! and each starts its own relay on its own free port.

mod util;

mod attacker;
mod busy;
#[cfg(feature = "cli")]
mod curl_args;
#[cfg(feature = "cli")]
mod curl_relay;
mod exchange;
mod pool;
mod relay;
mod reused_close;
