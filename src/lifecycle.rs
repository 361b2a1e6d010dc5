//! The server's lifecycle as request handling needs it: whether this process is shutting down
//! (SIGTERM) or handing over to a new process (SIGQUIT, zero-downtime upgrade).
//!
//! Pingora announces its execution phases on a broadcast channel
//! (`Server::watch_execution_phase`); [`watch`] follows it on a small thread and sets one flag
//! that `/api/mte-ready` reads ([`is_draining`]), so a load balancer or orchestrator stops
//! sending new work to a process that is leaving.
//!
//! While draining, a relay whose pair state is shared (Redis) also answers every request with
//! `Connection: close` ([`close_when_draining`]). Without it a client that sends its next
//! request on a kept-alive connection races Pingora closing that connection when the old
//! process stops accepting (it drops idle connections then): the request is lost in flight and
//! the client sees a transport error, not a status. With it, clients open new connections
//! during the 5 s both processes accept, and either process can serve them. With memory state
//! the opposite holds: a client's pairs live in the process its connections reach, so they are
//! kept alive (the new process knows no pair until the old one stops accepting); see
//! `tests/ops_upgrade.rs` and docs/OPERATIONS.md.

use std::sync::atomic::{AtomicBool, Ordering};

use pingora_core::server::ExecutionPhase;
use pingora_proxy::Session;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::store::PairStore;

/// Set once the process started to shut down or to hand its sockets over.
static DRAINING: AtomicBool = AtomicBool::new(false);

/// Whether this process is shutting down or handing over to a new one (never cleared).
pub fn is_draining() -> bool {
    DRAINING.load(Ordering::Relaxed)
}

/// Turns keep-alive off for this request's connection while draining, when pair state is
/// shared (`request_filter`): its response says `Connection: close` and the connection ends
/// after it. Memory state keeps connections alive (see the module docs).
pub fn close_when_draining(session: &mut Session, store: &dyn PairStore) {
    if is_draining() && store.pairs().is_none() {
        session.set_keepalive(None);
    }
}

/// Whether a phase means the process is leaving.
fn leaving(phase: &ExecutionPhase) -> bool {
    !matches!(
        phase,
        ExecutionPhase::Setup
            | ExecutionPhase::Bootstrap
            | ExecutionPhase::BootstrapComplete
            | ExecutionPhase::Running
    )
}

/// Follows the server's execution phases (subscribe before `run_forever`) on a thread of its
/// own, setting [`is_draining`] at the first phase past `Running`: SIGQUIT (sockets handed
/// over), SIGTERM, or any shutdown.
pub fn watch(mut phases: broadcast::Receiver<ExecutionPhase>) {
    let spawned = std::thread::Builder::new()
        .name("pqrelay-lifecycle".into())
        .spawn(move || loop {
            match phases.blocking_recv() {
                Ok(phase) if leaving(&phase) => {
                    if !DRAINING.swap(true, Ordering::Relaxed) {
                        log::info!("draining ({phase:?}): /api/mte-ready answers 503 from now on");
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            }
        });
    if let Err(e) = spawned {
        log::warn!("cannot follow the server's shutdown: {e}");
    }
}
