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
//!
//! When the server stops accepting (a graceful stop, or the old process of an upgrade),
//! Pingora's proxy drops every connection waiting for a request head. For a kept-alive
//! connection between requests that is right (its client sends again on a new connection), but
//! a connection accepted a moment before would lose its first request, which the client never
//! saw refused. So [`HeadDeadline::cleanup`] first waits until every accepted connection has
//! handed its first head to the proxy, ended, or run out of time (`HEADER_TIMEOUT_MS`).
//!
//! With `PROXY_PROTOCOL` (an AWS NLB in front), every connection must start with a PROXY
//! protocol v1 or v2 header ([`Guarded::read_proxy_header`], parsed by the `ppp` crate) of at
//! most [`MAX_PROXY_HEADER`] bytes, within the first head's deadline; its source address becomes
//! the connection's peer (Pingora's socket digest, so `Session::client_addr` and everything
//! after it see the client). A missing, malformed, oversized or late header closes the
//! connection before Pingora sees a byte. A `LOCAL` (v2) or `UNKNOWN` (v1) header, the
//! balancer's own health checks, keeps the TCP peer.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::l4::socket::SocketAddr;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType,
};
use pingora_core::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The longest PROXY protocol header read (v1 headers are at most 107 bytes; v2 ones carry
/// TLVs, AWS's a few dozen bytes).
pub(crate) const MAX_PROXY_HEADER: usize = 4096;

/// A [`ServerApp`] whose connections must deliver every request head in time.
pub(crate) struct HeadDeadline<A> {
    app: Arc<A>,
    head: Duration,
    proxy_protocol: bool,
    /// Accepted connections whose first head has not reached the proxy yet.
    first_heads: Arc<AtomicUsize>,
}

impl<A> HeadDeadline<A> {
    /// Wraps `app` (the Pingora HTTP proxy): a head must be complete within `head`; with
    /// `proxy_protocol`, after a PROXY header that arrives within the same time.
    pub(crate) fn new(app: A, head: Duration, proxy_protocol: bool) -> HeadDeadline<A> {
        HeadDeadline {
            app: Arc::new(app),
            head,
            proxy_protocol,
            first_heads: Arc::default(),
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
        let mut guarded = Guarded::new(stream, self.head);
        guarded.first_head = Some(FirstHead::new(&self.first_heads));
        if self.proxy_protocol {
            if let Err(e) = guarded.read_proxy_header().await {
                log::debug!("connection closed: {e}");
                return None;
            }
        }
        self.app.process_new(Box::new(guarded), shutdown).await
    }

    /// Called once the server stopped accepting: lets the connections already accepted hand
    /// their first head to the proxy (at most `HEADER_TIMEOUT_MS`), then lets the proxy drop
    /// those still waiting for a head (kept-alive ones, between requests).
    async fn cleanup(&self) {
        let until = Instant::now() + self.head;
        // Sleep first: a connection accepted just before the loop ended reaches `process_new`
        // (and is counted) only once its task has run.
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if self.first_heads.load(Ordering::Acquire) == 0 || Instant::now() >= until {
                break;
            }
        }
        self.app.cleanup().await
    }
}

/// Counts a connection whose first head has not reached the proxy, until dropped.
struct FirstHead(Arc<AtomicUsize>);

impl FirstHead {
    fn new(count: &Arc<AtomicUsize>) -> FirstHead {
        count.fetch_add(1, Ordering::AcqRel);
        FirstHead(count.clone())
    }
}

impl Drop for FirstHead {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
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
        let mut rest = bytes;
        if !self.started {
            // CR and LF before a request line are skipped (RFC 9112 §2.2).
            let Some(first) = rest.iter().position(|&b| b != b'\r' && b != b'\n') else {
                return false;
            };
            rest = rest.get(first..).unwrap_or_default();
            self.started = true;
            if self.phase == Phase::Idle {
                self.phase = Phase::Head;
                started_now = true;
            }
        }
        // Only a LF can end the head: look at the two bytes before each one.
        let before = |i: usize, back: usize| match i.checked_sub(back) {
            Some(j) => rest.get(j).copied().unwrap_or(0),
            None => self.last.get(2 + i - back).copied().unwrap_or(0),
        };
        for i in memchr::memchr_iter(b'\n', rest) {
            let (p2, p1) = (before(i, 2), before(i, 1));
            if p1 == b'\n' || (p1 == b'\r' && p2 == b'\n') {
                self.phase = Phase::Open;
                return started_now;
            }
        }
        self.last = match rest {
            [.., a, b] => [*a, *b],
            [b] => [self.last[1], *b],
            [] => self.last,
        };
        started_now
    }
}

/// An accepted stream whose reads fail after a deadline while a request head is awaited.
pub(crate) struct Guarded {
    inner: Stream,
    /// Bytes read after a PROXY header, handed out before any new read.
    pending: Vec<u8>,
    scan: HeadScan,
    /// When the awaited head must be complete (while idle: must start).
    deadline: Instant,
    /// Wakes the task at `deadline` while a read of an awaited head waits. Armed only then:
    /// a head that arrives with the read that follows a wake-up never touches the timer wheel.
    timer: Pin<Box<Sleep>>,
    /// How long a head may take from its first byte (for the heads after the first).
    head: Duration,
    /// Set by [`next_request`]: the idle limit before the next head, in ms (0: none pending).
    next_idle_ms: AtomicU64,
    /// Held until the first head is read (or the connection ends).
    first_head: Option<FirstHead>,
}

impl Guarded {
    /// Guards `inner`: its first head must be complete within `head` from now.
    pub(crate) fn new(inner: Stream, head: Duration) -> Guarded {
        let deadline = Instant::now() + head;
        Guarded {
            inner,
            pending: Vec::new(),
            scan: HeadScan::new(Phase::Head),
            deadline,
            timer: Box::pin(tokio::time::sleep_until(deadline)),
            head,
            next_idle_ms: AtomicU64::new(0),
            first_head: None,
        }
    }

    /// The connection's next request: its head must start within `idle` from now.
    fn next_request(&mut self, idle: Duration) {
        self.scan = HeadScan::new(Phase::Idle);
        self.deadline = Instant::now() + idle;
    }

    /// Follows `bytes`, read at `now`: a timeout once the deadline has passed; at a head's
    /// first byte the head deadline starts. The bytes that complete the first head are the
    /// proxy's from this read on: it no longer counts.
    fn scan(&mut self, bytes: &[u8], now: Instant) -> io::Result<()> {
        if self.deadline <= now {
            return Err(timed_out());
        }
        if self.scan.scan(bytes) {
            self.deadline = now + self.head;
        }
        if self.scan.phase == Phase::Open {
            self.first_head = None;
        }
        Ok(())
    }

    /// A read of an awaited head waits: the timer wakes the task at the deadline, and a
    /// deadline already passed is a timeout.
    fn wait(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.timer.deadline() != self.deadline {
            self.timer.as_mut().reset(self.deadline);
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Reads the connection's PROXY protocol header within the first head's deadline and
    /// makes its source address the peer; the bytes after it are the request's.
    pub(crate) async fn read_proxy_header(&mut self) -> io::Result<()> {
        use tokio::io::AsyncReadExt;
        let deadline = self.deadline;
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 512];
        loop {
            let want = (MAX_PROXY_HEADER - buf.len()).min(chunk.len());
            if want == 0 {
                return Err(bad_proxy_header("more than 4 KiB without an end"));
            }
            let read = tokio::time::timeout_at(deadline, self.inner.read(&mut chunk[..want]));
            let n = read.await.map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the PROXY header did not arrive within HEADER_TIMEOUT_MS",
                )
            })??;
            let Some(got) = chunk.get(..n).filter(|g| !g.is_empty()) else {
                return Err(bad_proxy_header("the connection ended first"));
            };
            buf.extend_from_slice(got);
            match parse_proxy_header(&buf) {
                ProxyHeader::Incomplete => continue,
                ProxyHeader::Invalid => return Err(bad_proxy_header("not a PROXY header")),
                ProxyHeader::Complete { len, source } => {
                    if let Some(source) = source {
                        let digest = SocketDigest::from_raw_fd(self.inner.id());
                        let _ = digest.peer_addr.set(Some(SocketAddr::Inet(source)));
                        self.inner.set_socket_digest(digest);
                    }
                    self.pending = buf.get(len..).unwrap_or_default().to_vec();
                    return Ok(());
                }
            }
        }
    }
}

fn bad_proxy_header(why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("PROXY_PROTOCOL is on and the connection's PROXY header is missing: {why}"),
    )
}

/// What the first bytes of a connection hold.
#[derive(Debug, PartialEq, Eq)]
enum ProxyHeader {
    /// The start of a header: read more.
    Incomplete,
    /// No PROXY header (or a malformed one).
    Invalid,
    /// A header of `len` bytes; `source` is the client's address (`None` for `LOCAL` and
    /// `UNKNOWN`, a balancer's own connection).
    Complete {
        len: usize,
        source: Option<std::net::SocketAddr>,
    },
}

/// Parses a PROXY protocol v1 or v2 header at the start of `buf`.
fn parse_proxy_header(buf: &[u8]) -> ProxyHeader {
    use ppp::{v1, v2, HeaderResult, PartialResult};
    use std::net::SocketAddr as Inet;
    let parsed = HeaderResult::parse(buf);
    if parsed.is_incomplete() {
        return ProxyHeader::Incomplete;
    }
    match parsed {
        HeaderResult::V1(Ok(h)) => {
            let source = match h.addresses {
                v1::Addresses::Tcp4(a) => Some(Inet::from((a.source_address, a.source_port))),
                v1::Addresses::Tcp6(a) => Some(Inet::from((a.source_address, a.source_port))),
                v1::Addresses::Unknown => None,
            };
            ProxyHeader::Complete {
                len: h.header.len(),
                source,
            }
        }
        HeaderResult::V2(Ok(h)) => {
            let source = match (h.command, &h.addresses) {
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                    Some(Inet::from((a.source_address, a.source_port)))
                }
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                    Some(Inet::from((a.source_address, a.source_port)))
                }
                _ => None,
            };
            ProxyHeader::Complete {
                len: h.len(),
                source,
            }
        }
        HeaderResult::V1(Err(_)) | HeaderResult::V2(Err(_)) => ProxyHeader::Invalid,
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
        if !this.pending.is_empty() {
            let n = this.pending.len().min(buf.remaining());
            let rest = this.pending.split_off(n);
            let given = std::mem::replace(&mut this.pending, rest);
            buf.put_slice(&given);
            return Poll::Ready(this.scan(&given, Instant::now()));
        }
        let idle = this.next_idle_ms.swap(0, Ordering::Relaxed);
        if idle > 0 {
            this.next_request(Duration::from_millis(idle));
        }
        if this.scan.phase == Phase::Open {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = buf.filled().get(before..).unwrap_or_default();
                Poll::Ready(this.scan(read, Instant::now()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.wait(cx),
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
        if !self.pending.is_empty() {
            // The bytes after a PROXY header come first: peek them, or say peeking is not
            // supported rather than peek past them.
            return Ok(match self.pending.get(..buf.len()) {
                Some(head) => {
                    buf.copy_from_slice(head);
                    true
                }
                None => false,
            });
        }
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
    fn proxy_headers_v1_and_v2_give_the_source_and_their_length() {
        let v1 = b"PROXY TCP4 198.51.100.7 10.0.0.5 40000 8080\r\nGET / HTTP/1.1\r\n";
        let source = "198.51.100.7:40000".parse().ok();
        assert_eq!(
            parse_proxy_header(v1),
            ProxyHeader::Complete { len: 45, source }
        );
        let v6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 8080\r\n";
        let source = "[2001:db8::7]:40000".parse().ok();
        assert_eq!(
            parse_proxy_header(v6),
            ProxyHeader::Complete {
                len: v6.len(),
                source
            }
        );
        let unknown = b"PROXY UNKNOWN\r\n";
        assert_eq!(
            parse_proxy_header(unknown),
            ProxyHeader::Complete {
                len: 15,
                source: None
            }
        );
        let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
        v2.extend_from_slice(&[203, 0, 113, 9, 10, 0, 0, 5, 0x9c, 0x40, 0x1f, 0x90]);
        let source = "203.0.113.9:40000".parse().ok();
        assert_eq!(
            parse_proxy_header(&v2),
            ProxyHeader::Complete { len: 28, source }
        );
        let mut local = v2.clone();
        local[12] = 0x20;
        assert_eq!(
            parse_proxy_header(&local),
            ProxyHeader::Complete {
                len: 28,
                source: None
            }
        );
        for partial in [&b"PRO"[..], b"PROXY TCP4 198.51", &v2[..5], &v2[..20]] {
            assert_eq!(
                parse_proxy_header(partial),
                ProxyHeader::Incomplete,
                "{partial:?}"
            );
        }
        for garbage in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PROXY TCP4 999.1.1.1 10.0.0.5 1 2\r\n",
            b"PROXY TCP9 x\r\n",
            &[0xff; 200],
        ] {
            assert_eq!(
                parse_proxy_header(garbage),
                ProxyHeader::Invalid,
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn a_head_ends_at_its_empty_line_however_the_reads_split_it() {
        let head: &[u8] = b"\r\nGET / HTTP/1.1\r\nhost: x\r\nx: \r\r\ny: a\n\r\n";
        for size in 1..=head.len() {
            for offset in 0..size {
                let mut h = HeadScan::new(Phase::Head);
                let (first, rest) = head.split_at(offset);
                let mut pieces = vec![first];
                pieces.extend(rest.chunks(size));
                let mut seen = 0;
                for p in pieces {
                    assert_eq!(
                        h.phase,
                        Phase::Head,
                        "ended before byte {seen} (reads of {size})"
                    );
                    h.scan(p);
                    seen += p.len();
                }
                assert_eq!(h.phase, Phase::Open, "reads of {size} after {offset}");
            }
        }
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
