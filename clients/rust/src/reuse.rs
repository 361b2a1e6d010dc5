//! Which transport failures the client may send again: a request written on a **reused**
//! keep-alive connection that the server closed before **any** byte of an answer arrived.
//!
//! That is the race of a server closing an idle kept-alive connection (a relay draining during
//! a graceful upgrade, an idle timeout) at the instant the client reuses it. hyper-util already
//! retries a request it had not started writing; one that was written fails with "connection
//! closed before message completed" (or a reset). The server never read it: Pingora closes an
//! idle connection only while it waits for the next request head, and finishes every request
//! whose head it has read. The client sends such a request once more, on a new connection.
//!
//! hyper does not say whether a connection was reused nor whether answer bytes came before
//! the close, so every connection carries a [`Meter`] (exposed to the client through hyper-util's
//! connection info): plain bytes read (above TLS), and that count when the current request
//! started (its first write after a read). A request started after some bytes were read ran on a
//! reused connection; if the count has not moved since, no answer byte arrived.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Byte counts of one connection, shared between the connection's I/O and its info.
#[derive(Debug, Default)]
struct Meter {
    /// Plain bytes read so far.
    read: AtomicU64,
    /// `read` when the current request started (its first write after a read).
    read_at_request: AtomicU64,
}

/// The meter as hyper-util's connection "extra" (it must be `Clone`).
#[derive(Clone, Debug)]
struct MeterHandle(Arc<Meter>);

/// A connection that counts what it reads.
#[derive(Debug)]
pub(crate) struct Metered<S> {
    inner: S,
    meter: Arc<Meter>,
    /// The last successful operation was a write (a request is being sent).
    writing: bool,
}

impl<S> Metered<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            meter: Arc::default(),
            writing: false,
        }
    }

    fn start_write(&mut self) {
        if !self.writing {
            self.writing = true;
            let read = self.meter.read.load(Ordering::Relaxed);
            self.meter.read_at_request.store(read, Ordering::Relaxed);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before) as u64;
        if n > 0 {
            this.writing = false;
            this.meter.read.fetch_add(n, Ordering::Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.start_write();
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.start_write();
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: Connection> Connection for Metered<S> {
    fn connected(&self) -> Connected {
        self.inner
            .connected()
            .extra(MeterHandle(self.meter.clone()))
    }
}

/// The inner connector's stream type.
type Stream = hyper_rustls::MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>;

/// The connection type of [`Connector`].
pub(crate) type MeteredStream = TokioIo<Metered<TokioIo<Stream>>>;

/// An http/https connector whose connections carry a [`Meter`].
#[derive(Clone, Debug)]
pub(crate) struct Connector(pub(crate) HttpsConnector<HttpConnector>);

impl tower_service::Service<Uri> for Connector {
    type Response = MeteredStream;
    type Error = <HttpsConnector<HttpConnector> as tower_service::Service<Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<MeteredStream, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connecting = self.0.call(dst);
        Box::pin(async move { Ok(TokioIo::new(Metered::new(TokioIo::new(connecting.await?)))) })
    }
}

/// Whether `err` (from sending a request) is a reused connection closed before any byte of
/// an answer arrived: the request may be sent again on a new connection.
pub(crate) fn closed_unanswered(err: &hyper_util::client::legacy::Error) -> bool {
    if err.is_connect() {
        return false;
    }
    let Some(info) = err.connect_info() else {
        return false;
    };
    let mut extras = http::Extensions::new();
    info.get_extras(&mut extras);
    let Some(MeterHandle(meter)) = extras.get::<MeterHandle>() else {
        return false;
    };
    let at_request = meter.read_at_request.load(Ordering::Relaxed);
    let reused = at_request > 0;
    let unanswered = meter.read.load(Ordering::Relaxed) == at_request;
    reused && unanswered && is_close(err)
}

/// Whether the cause of `err` is the peer closing: hyper's "connection closed before message
/// completed", or a reset / broken pipe.
fn is_close(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if e.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_incomplete_message)
        {
            return true;
        }
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if matches!(
                io.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
            ) {
                return true;
            }
        }
        cause = e.source();
    }
    false
}
