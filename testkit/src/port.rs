//! Loopback ports.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Ports [`free_port`] handed out in this process.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A free port on 127.0.0.1: bound, read and released, so a small race with other programs
/// remains. Within this process no port is handed out twice, so tests running in parallel
/// threads never get the same one.
///
/// # Panics
/// When no port can be bound (the loopback interface is down or ports are exhausted).
pub fn free_port() -> u16 {
    let mut handed = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let handed = handed.get_or_insert_with(HashSet::new);
    // Rejected listeners stay bound until a new port is found, so the OS offers another one.
    let mut held = Vec::new();
    for _ in 0..64 {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("free_port: cannot bind 127.0.0.1:0: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("free_port: no local address: {e}"))
            .port();
        if handed.insert(port) {
            return port;
        }
        held.push(listener);
    }
    panic!("free_port: 64 ports in a row were handed out before");
}

/// Whether a TCP connection to 127.0.0.1:`port` succeeds within 200 ms.
pub fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Whether a TCP connection to `addr` succeeds within 500 ms (async).
#[cfg(feature = "tokio")]
pub async fn tcp_open(addr: SocketAddr) -> bool {
    tokio::time::timeout(
        Duration::from_millis(500),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .is_ok_and(|r| r.is_ok())
}
