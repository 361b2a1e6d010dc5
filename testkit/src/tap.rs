//! A recording TCP forwarder.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// A TCP forwarder on 127.0.0.1 in front of a target port that records every byte crossing
/// it, each direction on its own: what an attacker on the wire sees. Its tasks run on the
/// caller's tokio runtime.
pub struct Tap {
    /// The tap's port.
    pub port: u16,
    /// Bytes from the clients to the target.
    pub up: Arc<Mutex<Vec<u8>>>,
    /// Bytes from the target to the clients.
    pub down: Arc<Mutex<Vec<u8>>>,
}

impl Tap {
    /// Starts forwarding every connection to 127.0.0.1:`target` (a connection the target
    /// refuses is closed).
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start(target: u16) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("tap: cannot bind 127.0.0.1:0: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("tap: no local address: {e}"))
            .port();
        let up = Arc::new(Mutex::new(Vec::new()));
        let down = Arc::new(Mutex::new(Vec::new()));
        let (u, d) = (up.clone(), down.clone());
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)).await else {
                    continue;
                };
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                tokio::spawn(pump(ri, wo, u.clone()));
                tokio::spawn(pump(ro, wi, d.clone()));
            }
        });
        Tap { port, up, down }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Whether `needle` crossed the tap in the clear, either way.
    pub fn saw(&self, needle: &[u8]) -> bool {
        if needle.is_empty() {
            return true;
        }
        [&self.up, &self.down].into_iter().any(|log| {
            let bytes = log.lock().unwrap_or_else(PoisonError::into_inner);
            bytes.windows(needle.len()).any(|w| w == needle)
        })
    }
}

/// Copies `from` to `to`, recording what passes, until either side ends.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, log: Arc<Mutex<Vec<u8>>>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                log.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend_from_slice(&buf[..n]);
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}
