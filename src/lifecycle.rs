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
//!
//! [`Signals`] is the signal handling the server runs with: Pingora's, except that SIGINT ends
//! the process at once instead of through Pingora's fast shutdown (see its docs for why);
//! [`exit`] is how the process ends, after a stop or on SIGINT.

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use pingora_core::server::{ExecutionPhase, ShutdownSignal, ShutdownSignalWatch};
use pingora_proxy::Session;
use tokio::sync::broadcast::{self, error::RecvError};

/// Set once the process started to shut down or to hand its sockets over.
static DRAINING: AtomicBool = AtomicBool::new(false);

/// Whether this process is shutting down or handing over to a new one (never cleared).
pub(crate) fn is_draining() -> bool {
    DRAINING.load(Ordering::Relaxed)
}

/// Turns keep-alive off for this request's connection while draining, when pair state is
/// shared with other relays (`request_filter`): its response says `Connection: close` and the
/// connection ends after it. Memory state keeps connections alive (see the module docs).
pub(crate) fn close_when_draining(session: &mut Session, shared_state: bool) {
    if is_draining() && shared_state {
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
pub(crate) fn watch(mut phases: broadcast::Receiver<ExecutionPhase>) {
    let spawned = std::thread::Builder::new()
        .name("pqrelay-lifecycle".into())
        .spawn(move || loop {
            match phases.blocking_recv() {
                Ok(phase) if leaving(&phase) => {
                    if !DRAINING.swap(true, Ordering::Relaxed) {
                        log::info!("draining ({phase:?}): /api/mte-ready answers 503 from now on");
                    }
                    if matches!(phase, ExecutionPhase::ShutdownStarted) {
                        log::info!(
                            "stopped accepting connections: serving those accepted, then exiting"
                        );
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

/// The process signals, as Pingora reads them: SIGQUIT hands the listening sockets to a new
/// process (zero-downtime upgrade), SIGTERM stops gracefully. SIGINT, a fast stop, flushes the
/// log and exits here (status 0, as after any stop).
///
/// Pingora's own fast shutdown stops its per-thread runtimes one at a time without first
/// telling the accept loops to end. With one runtime per thread (work stealing off, our
/// default) a task on a thread still running can hold a listener registered with a runtime
/// already stopped; every `accept` then fails at once and Pingora's loop retries without
/// yielding, logging "Accept() failed … being shutdown" millions of times a second until the
/// disk is full (seen after about one SIGINT in ten under load). Exiting ends every connection
/// the same way a fast shutdown does, without that window.
pub(crate) struct Signals;

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{signal, SignalKind};
        let installed = (|| {
            Ok::<_, std::io::Error>((
                signal(SignalKind::quit())?,
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
            ))
        })();
        let (mut upgrade, mut terminate, mut interrupt) = match installed {
            Ok(signals) => signals,
            Err(e) => {
                log::error!("cannot handle signals ({e}): they stop the process without draining");
                return std::future::pending().await;
            }
        };
        tokio::select! {
            _ = upgrade.recv() => ShutdownSignal::GracefulUpgrade,
            _ = terminate.recv() => ShutdownSignal::GracefulTerminate,
            _ = interrupt.recv() => {
                log::info!("SIGINT received, exiting now");
                exit()
            }
        }
    }
}

/// Ends the process with status 0 once the buffered log lines (access lines included) are out:
/// after the server stopped, or at once on SIGINT.
pub(crate) fn exit() -> ! {
    log::logger().flush();
    std::process::exit(0)
}
