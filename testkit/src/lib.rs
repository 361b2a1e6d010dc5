//! The one copy of what pqrelay's tests and benchmarks need to run real processes on loopback.
//! Not published: the relay's integration tests, the Rust client's tests and `bench/` use it.
//!
//! # Brief overview
//! - [`free_port`]: a loopback port no caller in this process was handed before.
//! - [`Proc`]: a child process whose output goes to a log file, killed (or stopped with a
//!   signal) when dropped; it waits for a port or a log line, within a bounded time.
//! - [`relay`]: the relay binary ([`relay_bin`]), a relay process ([`Relay`]), the demo upstream
//!   ([`Upstream`]) and one-shot runs ([`run`]).
//! - [`redis`]: `redis-server`, a single node (plain or, with feature `tls`, TLS) and a
//!   three-master cluster.
//! - [`TempDir`]: a scratch directory removed on drop.
//! - [`sha256_hex`] and [`pattern`]: the digest the demo upstream answers and the test body.
//! - With feature `tokio`: [`Tap`] (a TCP forwarder that records the bytes crossing it),
//!   [`tcp_open`] and [`Proc::wait_ready`] (an async readiness probe).
//!
//! Waits are bounded; when something does not start, the panic or [`Error`] names it and shows
//! the end of its log.
//!
//! # Example
//! ```no_run
//! use pqrelay_testkit::{Relay, Upstream};
//!
//! let upstream = Upstream::start();
//! let relay = Relay::start(&upstream.url(), &[("PASS_THROUGH_ROUTES", "/echo")]);
//! println!("relay at {}", relay.url("/echo?msg=hi"));
//! // Both processes are killed when `relay` and `upstream` go out of scope.
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod attack;
mod data;
mod error;
mod port;
mod process;
pub mod redis;
pub mod relay;
#[cfg(feature = "tokio")]
mod tap;
mod temp;

pub use attack::{Attacker, CountingUpstream};
pub use data::{pattern, sha256_hex};
pub use error::Error;
pub use nix::sys::signal::Signal;
#[cfg(feature = "tokio")]
pub use port::tcp_open;
pub use port::{free_port, port_open};
pub use process::{fd_count, fd_listing, proc_status_kib, Proc};
pub use relay::{clean_command, relay_bin, relay_command, run, Relay, Upstream, ORIGIN, SECRET};
#[cfg(feature = "tokio")]
pub use tap::Tap;
pub use temp::TempDir;
