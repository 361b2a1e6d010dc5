//! The request-head deadline (slowloris defence): every request head must arrive within
//! `HEADER_TIMEOUT_MS`, however its bytes trickle, and a kept-alive connection may wait at most
//! `CLIENT_TIMEOUT_MS` for its next request.
//!
//! Pingora times out each *read* of a request head, not the head as a whole, so a client
//! sending one byte every few seconds could hold a connection and its task for hours. Pingora
//! offers no hook before the head is parsed, so [`HeadDeadline`] wraps the proxy's
//! [`ServerApp`] and hands it each accepted stream inside a [`Guarded`] stream; at the end of
//! every request the proxy re-arms it for the next one ([`next_request`]):
//!
//! - a new connection's first head must be complete `HEADER_TIMEOUT_MS` after the accept;
//! - between requests, the next head must start within `CLIENT_TIMEOUT_MS` (the idle limit of a
//!   kept-alive connection), and be complete `HEADER_TIMEOUT_MS` after its first byte;
//! - CR and LF before a request line (RFC 9112 §2.2 lets a server ignore them) neither start a
//!   head nor end one.
//!
//! A read after a deadline fails with `TimedOut` and Pingora closes the connection. Once a head
//! is complete, the guard is off until the next request (body reads and response writes have
//! Pingora's own per-read timeouts, `CLIENT_TIMEOUT_MS`).

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType,
};
use pingora_core::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// A [`ServerApp`] whose connections must deliver every request head in time.
pub(crate) struct HeadDeadline<A> {
    app: Arc<A>,
    head: Duration,
}

impl<A> HeadDeadline<A> {
    /// Wraps `app` (the Pingora HTTP proxy): a head must be complete within `head`.
    pub(crate) fn new(app: A, head: Duration) -> HeadDeadline<A> {
        HeadDeadline {
            app: Arc::new(app),
            head,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for HeadDeadline<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let guarded: Stream = Box::new(Guarded::new(stream, self.head));
        self.app.process_new(guarded, shutdown).await
    }

    async fn cleanup(&self) {
        self.app.cleanup().await
    }
}

/// At the end of a request (the proxy's `logging`): the connection's next head must start
/// within `idle` from now and be complete within `HEADER_TIMEOUT_MS` from its first byte.
pub(crate) fn next_request(session: &pingora_proxy::Session, idle: Duration) {
    let guarded = session
        .as_downstream()
        .stream()
        .and_then(|s| s.as_any().downcast_ref::<Guarded>());
    if let Some(g) = guarded {
        let ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX).max(1);
        g.next_idle_ms.store(ms, Ordering::Relaxed);
    }
}

/// Where a connection is in its current request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first byte of the next head (after CR/LF), until the deadline.
    Idle,
    /// Inside a head, until the deadline.
    Head,
    /// The head is complete: no deadline until the next request.
    Open,
}

/// Follows the bytes of a connection: where it is in its current request.
#[derive(Debug, Clone, Copy)]
struct HeadScan {
    phase: Phase,
    /// A byte other than CR and LF was seen in this head.
    started: bool,
    /// The last two bytes read (to find `\n\n` or `\n\r\n` across reads).
    last: [u8; 2],
}

impl HeadScan {
    /// Awaiting a head in `phase` (`Head` for a new connection, `Idle` between requests).
    fn new(phase: Phase) -> HeadScan {
        HeadScan {
            phase,
            started: false,
            last: [0, 0],
        }
    }

    /// Follows the bytes just read; `true` when they held the first byte of a head awaited
    /// while idle (its deadline starts then). The empty line after a head's first byte ends it.
    fn scan(&mut self, bytes: &[u8]) -> bool {
        let mut started_now = false;
        for &b in bytes {
            if !self.started {
                if b == b'\r' || b == b'\n' {
                    continue;
                }
                self.started = true;
                if self.phase == Phase::Idle {
                    self.phase = Phase::Head;
                    started_now = true;
                }
            }
            let [p2, p1] = self.last;
            if b == b'\n' && (p1 == b'\n' || (p1 == b'\r' && p2 == b'\n')) {
                self.phase = Phase::Open;
                break;
            }
            self.last = [p1, b];
        }
        started_now
    }
}

/// An accepted stream whose reads fail after a deadline while a request head is awaited.
pub(crate) struct Guarded {
    inner: Stream,
    scan: HeadScan,
    deadline: Pin<Box<Sleep>>,
    /// How long a head may take from its first byte (for the heads after the first).
    head: Duration,
    /// Set by [`next_request`]: the idle limit before the next head, in ms (0: none pending).
    next_idle_ms: AtomicU64,
}

impl Guarded {
    /// Guards `inner`: its first head must be complete within `head` from now.
    pub(crate) fn new(inner: Stream, head: Duration) -> Guarded {
        Guarded {
            inner,
            scan: HeadScan::new(Phase::Head),
            deadline: Box::pin(tokio::time::sleep_until(Instant::now() + head)),
            head,
            next_idle_ms: AtomicU64::new(0),
        }
    }

    /// The connection's next request: its head must start within `idle` from now.
    fn next_request(&mut self, idle: Duration) {
        self.scan = HeadScan::new(Phase::Idle);
        self.deadline.as_mut().reset(Instant::now() + idle);
    }

    /// Follows the bytes just read, arming the head deadline at a head's first byte.
    fn scan(&mut self, bytes: &[u8]) {
        if self.scan.scan(bytes) {
            self.deadline.as_mut().reset(Instant::now() + self.head);
        }
    }

    fn expired(&self) -> bool {
        self.deadline.deadline() <= Instant::now()
    }
}

fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the request head did not arrive within HEADER_TIMEOUT_MS (or the kept-alive \
         connection idled past CLIENT_TIMEOUT_MS)",
    )
}

impl fmt::Debug for Guarded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guarded")
            .field("inner", &self.inner)
            .field("phase", &self.scan.phase)
            .finish()
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let idle = this.next_idle_ms.swap(0, Ordering::Relaxed);
        if idle > 0 {
            this.next_request(Duration::from_millis(idle));
        }
        if this.scan.phase == Phase::Open {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        if this.expired() {
            return Poll::Ready(Err(timed_out()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let filled = buf.filled()[before..].to_vec();
                this.scan(&filled);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_ready() {
                    Poll::Ready(Err(timed_out()))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for Guarded {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for Guarded {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Guarded {
    fn get_ssl(&self) -> Option<&pingora_core::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora_core::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<pingora_core::protocols::ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Guarded {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Guarded {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for Guarded {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for Guarded {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_of_a_head_is_found_across_reads() {
        for pieces in [
            &[&b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"[..]][..],
            &[b"GET / HTTP/1.1\r\nhost: x\r", b"\n", b"\r", b"\n"],
            &[b"GET / HTTP/1.1\nhost: x\n", b"\n"],
        ] {
            let mut h = HeadScan::new(Phase::Head);
            pieces.iter().for_each(|p| {
                h.scan(p);
            });
            assert_eq!(h.phase, Phase::Open, "{pieces:?}");
        }
        let mut h = HeadScan::new(Phase::Head);
        h.scan(b"GET / HTTP/1.1\r\nhost: x\r\n");
        h.scan(b"x: \r\r\n");
        assert_eq!(h.phase, Phase::Head);
    }

    #[test]
    fn leading_empty_lines_neither_start_nor_end_a_head() {
        let mut h = HeadScan::new(Phase::Head);
        h.scan(b"\r\n\r\n\r\n");
        assert_eq!(
            h.phase,
            Phase::Head,
            "CR/LF before the request line is no head"
        );
        h.scan(b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(h.phase, Phase::Open);
        let mut h = HeadScan::new(Phase::Idle);
        assert!(!h.scan(b"\r\n\n"));
        assert_eq!(h.phase, Phase::Idle, "still waiting for the next head");
        assert!(h.scan(b"G"), "its first byte arms the head deadline");
        assert_eq!(h.phase, Phase::Head);
    }
}
