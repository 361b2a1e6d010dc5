//! The request-head deadline (slowloris defence): a new connection must deliver its first
//! request head within `HEADER_TIMEOUT_MS`, however it trickles the bytes.
//!
//! Pingora times out each *read* of a request head (60 s), not the head as a whole, so a client
//! sending one byte every few seconds could hold a connection and its task for hours. Pingora
//! offers no hook before the head is parsed, so [`HeadDeadline`] wraps the proxy's
//! [`ServerApp`] and hands it each accepted stream inside a [`Guarded`] stream: until the bytes
//! read so far contain the end of a head (an empty line, CRLF or bare LF), a read after the
//! deadline fails with `TimedOut` and Pingora closes the connection. Once the head is complete
//! the guard is off for good; later heads on a kept-alive connection are bounded by Pingora's
//! keep-alive idle timeout (60 s per read).

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
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

/// A [`ServerApp`] whose connections must deliver their first request head in time.
pub(crate) struct HeadDeadline<A> {
    app: Arc<A>,
    timeout: Duration,
}

impl<A> HeadDeadline<A> {
    /// Wraps `app` (the Pingora HTTP proxy) with a first-head deadline of `timeout`.
    pub(crate) fn new(app: A, timeout: Duration) -> HeadDeadline<A> {
        HeadDeadline {
            app: Arc::new(app),
            timeout,
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
        let guarded: Stream = Box::new(Guarded::new(stream, self.timeout));
        self.app.process_new(guarded, shutdown).await
    }

    async fn cleanup(&self) {
        self.app.cleanup().await
    }
}

/// An accepted stream whose reads fail after a deadline until a request head was read.
pub(crate) struct Guarded {
    inner: Stream,
    /// `None` once a complete head was seen.
    deadline: Option<Pin<Box<Sleep>>>,
    /// The last two bytes read (to find `\n\n` or `\n\r\n` across reads).
    last: [u8; 2],
}

impl Guarded {
    /// Guards `inner` with a deadline `timeout` from now.
    pub(crate) fn new(inner: Stream, timeout: Duration) -> Guarded {
        Guarded {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep_until(Instant::now() + timeout))),
            last: [0, 0],
        }
    }

    /// Scans newly read bytes for the empty line that ends a request head.
    fn scan(&mut self, bytes: &[u8]) {
        if ends_head(&mut self.last, bytes) {
            self.deadline = None;
        }
    }

    fn expired(&self) -> bool {
        self.deadline
            .as_ref()
            .is_some_and(|d| d.deadline() <= Instant::now())
    }
}

/// Whether `bytes`, read after bytes ending in `last`, complete an empty line (`\n\n` or
/// `\n\r\n`); `last` moves on.
fn ends_head(last: &mut [u8; 2], bytes: &[u8]) -> bool {
    for &b in bytes {
        let [p2, p1] = *last;
        if b == b'\n' && (p1 == b'\n' || (p1 == b'\r' && p2 == b'\n')) {
            return true;
        }
        *last = [p1, b];
    }
    false
}

fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the request head did not arrive within HEADER_TIMEOUT_MS",
    )
}

impl fmt::Debug for Guarded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guarded")
            .field("inner", &self.inner)
            .field("head_pending", &self.deadline.is_some())
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
        if this.deadline.is_none() {
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
                let fired = this
                    .deadline
                    .as_mut()
                    .is_some_and(|d| d.as_mut().poll(cx).is_ready());
                if fired {
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
            let mut last = [0, 0];
            let found = pieces.iter().any(|p| ends_head(&mut last, p));
            assert!(found, "{pieces:?}");
        }
        let mut last = [0, 0];
        assert!(!ends_head(&mut last, b"GET / HTTP/1.1\r\nhost: x\r\n"));
        assert!(!ends_head(&mut last, b"x: \r\r\n"));
    }
}
