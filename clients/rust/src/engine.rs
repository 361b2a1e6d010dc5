//! The send / recover engine, written once and generic over where pairs come from
//! ([`PairSource`]): [`crate::RelayClient`] runs it on its own in-process pool, the relay's
//! outbound mode on leases from its shared store.
//!
//! [`Engine::send`] obtains a pair (discovering and pairing as needed), moves it on before
//! anything is sent (§6), seals the request, sends it and opens the response head. Then:
//!
//! - a relay error 559–569 is recovered as §11 says ([`crate::recovery`]): re-pair this pair
//!   in place and retry on it, re-pair all, re-discover; a replayable request is retried once,
//!   on the pair that got the error, never on another pair of the pool;
//! - a replayable request written on a reused keep-alive connection that closed before any
//!   answer byte is sealed again (the pair's next counter) and sent once more on a new
//!   connection (`reuse.rs`, PROTOCOL.md §11); so are discovery and pairing requests;
//! - with [`EngineSettings::stream_replay`], a streamed body whose connection failed while the
//!   body was young and unfinished is taken back and sent again on a fresh connection
//!   (`replay.rs`);
//! - a re-signed token the relay hands back is adopted.
//!
//! The differences between sources are methods of [`PairSource`] (lease or checkout, when a
//! pair goes back, how a reset is agreed) or [`EngineSettings`] (what a request that cannot be
//! retried does to the pool).

mod recover;
mod setup;

use std::sync::atomic::{AtomicU64, Ordering};

use http::header::HeaderMap;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::BodyExt as _;
use pqrelay_protocol::{ClientIdToken, CounterError, ExchangeKeys};

use self::recover::{Attempts, Cut, Failed};
pub use self::setup::{random_pair_ids, seeded_pairing};
use crate::body::Body;
use crate::error::{BoxError, Error};
use crate::exchange::{
    is_relay_error, open_response_head, relay_error, seal_body, seal_head, BodyKind, PlainHead,
    SealOptions, SealedHead, SealingBody, RELAY_ERROR_HEADER, RELAY_HEADER, SEALED_HEADERS,
};
use crate::observer::{WireEvent, WireObserver};
use crate::recovery::Recovery;
use crate::replay::{Kept, Replayable};
use crate::response::{RelayResponse, ResponseBody};
use crate::source::{Lease as _, PairSource, PoolSession as _};
use crate::transport::{empty_body, full_body, HttpClient, RequestBody};

/// Times a streamed request taken back ([`EngineSettings::stream_replay`]) is sent again.
pub const STREAM_RESENDS: usize = 3;

/// How an [`Engine`] behaves beyond what its [`PairSource`] decides.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct EngineSettings {
    /// A stored client id token to present at the first discovery.
    pub initial_token: Option<ClientIdToken>,
    /// Called with every [`WireEvent`].
    pub observer: Option<WireObserver>,
    /// Bytes of a streamed request body kept so that the request can be sent again, on a fresh
    /// connection, when its connection fails before the body ended (at most
    /// [`STREAM_RESENDS`] times). 0 (the default): a streamed body is never sent again.
    pub stream_replay: usize,
    /// Reset the whole pool when a request met a stale pair and was not retried (a streamed
    /// body), or its streamed body was cut: the next request pairs afresh instead of meeting
    /// another stale pair. Default off: only the stale pair is dropped.
    pub renew_pool_when_not_retried: bool,
}

impl core::fmt::Debug for EngineSettings {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EngineSettings")
            .field("initial_token", &self.initial_token.is_some())
            .field("observer", &self.observer.is_some())
            .field("stream_replay", &self.stream_replay)
            .field(
                "renew_pool_when_not_retried",
                &self.renew_pool_when_not_retried,
            )
            .finish()
    }
}

/// Counters of an engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EngineStats {
    /// Discoveries done (the first one included).
    pub discoveries: u64,
    /// Requests sent again after a recoverable relay error.
    pub retries: u64,
    /// Requests sent again on a new connection because the reused keep-alive connection they
    /// were written on closed before any answer byte.
    pub connection_retries: u64,
    /// Times the relay handed back a re-signed token that was stored.
    pub token_updates: u64,
}

#[derive(Debug, Default)]
struct Counters {
    discoveries: AtomicU64,
    retries: AtomicU64,
    connection_retries: AtomicU64,
    token_updates: AtomicU64,
}

/// Why [`Engine::send`] failed.
#[derive(Debug)]
pub enum EngineError<E> {
    /// The exchange failed: transport, protocol, or a relay error that was not recovered.
    Exchange(Error),
    /// The pair source failed (e.g. a shared store is down).
    Source(E),
    /// The connection failed while a streamed request body was being sent, too far in to send
    /// it again (with [`EngineSettings::renew_pool_when_not_retried`] the pool was reset).
    StreamCut(Error),
}

impl<E: core::fmt::Display> core::fmt::Display for EngineError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Exchange(e) | Self::StreamCut(e) => e.fmt(f),
            Self::Source(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for EngineError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Exchange(e) | Self::StreamCut(e) => Some(e),
            Self::Source(e) => Some(e),
        }
    }
}

impl<E> From<Error> for EngineError<E> {
    fn from(e: Error) -> Self {
        Self::Exchange(e)
    }
}

impl<E> From<pqrelay_protocol::Error> for EngineError<E> {
    fn from(e: pqrelay_protocol::Error) -> Self {
        Self::Exchange(e.into())
    }
}

/// The plain request to seal and send (its body is passed beside it).
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// The method.
    pub method: Method,
    /// The origin-form target, e.g. `/api/x?y=1`.
    pub path_and_query: String,
    /// The caller's headers.
    pub headers: HeaderMap,
    /// What is sealed.
    pub seal: SealOptions,
}

/// A sent exchange: the opened response, and the pair still leased until the body was read.
pub struct Sent<S: PairSource> {
    /// The response (status, decoded headers, the body opened as it is read).
    pub response: RelayResponse,
    /// The pair of the exchange, advanced; give it back with [`Engine::finish`] (or as the
    /// source says when dropped).
    pub lease: S::Lease,
    /// The session the pair belongs to.
    pub session: S::Session,
}

impl<S: PairSource> core::fmt::Debug for Sent<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sent")
            .field("response", &self.response)
            .finish_non_exhaustive()
    }
}

/// The send / recover engine over a [`PairSource`]. See the [module docs](self).
pub struct Engine<S> {
    base: Uri,
    http: HttpClient,
    source: S,
    settings: EngineSettings,
    discover_lock: tokio::sync::Mutex<()>,
    counters: Counters,
}

impl<S> core::fmt::Debug for Engine<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Engine")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// A request's sealed wire body, and the handle to take a streamed body back.
struct WireBody {
    body: RequestBody,
    kept: Option<(Kept, Option<u64>)>,
    streamed: bool,
}

impl<S: PairSource> Engine<S> {
    /// An engine for the relay at `base` (`http(s)://host[:port]`), sending through `http`,
    /// with its pairs in `source`. Does no I/O.
    pub fn new(base: Uri, http: HttpClient, source: S, settings: EngineSettings) -> Self {
        Self {
            base,
            http,
            source,
            settings,
            discover_lock: tokio::sync::Mutex::new(()),
            counters: Counters::default(),
        }
    }

    /// The pair source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The hyper client requests go through.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The relay base URL.
    pub fn base_url(&self) -> &Uri {
        &self.base
    }

    /// The counters.
    pub fn stats(&self) -> EngineStats {
        let c = &self.counters;
        EngineStats {
            discoveries: c.discoveries.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            connection_retries: c.connection_retries.load(Ordering::Relaxed),
            token_updates: c.token_updates.load(Ordering::Relaxed),
        }
    }

    /// Discovers and pairs now (obtains a pair and gives it back) instead of at first use.
    pub async fn ready(&self) -> Result<(), EngineError<S::Error>> {
        let (lease, session) = self.lease().await?;
        self.source
            .give_back(lease, &session)
            .await
            .map_err(EngineError::Source)
    }

    /// The response of `sent` was read to its end: its pair goes back to the source.
    pub async fn finish(&self, sent: Sent<S>) -> Result<(), S::Error> {
        self.source.give_back(sent.lease, &sent.session).await
    }

    fn observe(&self, event: WireEvent) {
        if let Some(obs) = &self.settings.observer {
            obs(&event);
        }
    }

    /// Counts and reports a request sent again on a new connection ([`crate::reuse`]).
    fn connection_retry(&self, request: &'static str) {
        let n = &self.counters.connection_retries;
        n.fetch_add(1, Ordering::Relaxed);
        self.observe(WireEvent::ConnectionRetry { request });
    }

    /// Gives a lease whose pair is still good back; a source failure loses the pair only.
    async fn give_back(&self, lease: S::Lease, session: &S::Session) {
        let _ = self.source.give_back(lease, session).await;
    }

    /// Sends one request, recovering from relay errors as §11 says: a replayable request is
    /// retried once, on the pair that got the error (re-paired when the status asks for it),
    /// never on another pair of the pool. Independently, a replayable request written on a
    /// reused connection that closed before any answer byte is sealed again (next counter of
    /// the same pair) and sent once more on a new connection (PROTOCOL.md §11), and a young
    /// streamed body may be taken back ([`EngineSettings::stream_replay`]).
    pub async fn send(&self, req: &Outgoing, body: Body) -> Result<Sent<S>, EngineError<S::Error>> {
        pqrelay_protocol::validate_origin_form(&req.path_and_query).map_err(Error::from)?;
        let mut attempts = Attempts::new(body);
        loop {
            let (mut lease, session) = match attempts.retry.take() {
                Some(x) => x,
                None => self.lease().await?,
            };
            let Some(pair) = lease.slot().take() else {
                continue;
            };
            let pair_id = pair.pair_id();
            let (keys, next) = match pair.next_exchange() {
                Ok(x) => x,
                Err(CounterError::Exhausted) => continue, // the lease frees the slot
                Err(e) => return Err(Error::from(e).into()),
            };
            // The pair moves on before anything is sent (§6).
            *lease.slot() = Some(next);

            let this_body = attempts.next_body();
            let replayable = attempts.body.is_some();
            let plain = PlainHead {
                method: &req.method,
                path_and_query: &req.path_and_query,
                headers: &req.headers,
                body: this_body.kind(),
            };
            let head = seal_head(session.token(), pair_id, &keys, &plain, &req.seal)?;
            let wire = self.wire_body(&keys, &head, this_body)?;
            let mut http_req = Request::builder()
                .method(head.method.clone())
                .uri(self.url(&head.target)?)
                .body(wire.body)
                .map_err(|e| Error::http("building the request", e))?;
            *http_req.headers_mut() = head.headers.clone();
            self.observe_request(&head, plain.body != BodyKind::None);
            let sent = if std::mem::take(&mut attempts.fresh_connection) {
                self.http.request_fresh(http_req).await
            } else {
                self.http.request(http_req).await
            };
            let resp = match sent {
                Ok(resp) => resp,
                Err(e) => {
                    let cut = Cut {
                        error: e,
                        replayable,
                        kept: wire.kept,
                        streamed: wire.streamed,
                    };
                    self.transport_failed(&mut attempts, cut, lease, session)
                        .await?;
                    continue;
                }
            };
            let (parts, incoming) = resp.into_parts();
            let status = parts.status.as_u16();
            self.observe_response(status, &parts.headers);

            if is_relay_error(status, &parts.headers) {
                let raw = setup::read_small(incoming, "reading the relay error").await?;
                let err = relay_error(status, &parts.headers, &raw);
                let Some(recovery) = Recovery::for_status(status) else {
                    self.give_back(lease, &session).await;
                    return Err(err.into());
                };
                let failed = Failed {
                    lease,
                    pair_id,
                    session,
                    replayable,
                    attempt: attempts.relay_retries,
                };
                attempts.retry = Some(self.recover(failed, recovery, err).await?);
                attempts.relay_retries += 1;
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
                continue;
            }

            let opened = open_response_head(&keys, &head, session.token(), status, &parts.headers)?;
            let session = match opened.new_token.clone() {
                Some(t) => self.adopt(&session, t).await,
                None => session,
            };
            let status = StatusCode::from_u16(status)
                .map_err(|_| Error::BadResponse("invalid status code"))?;
            let source: RequestBody = incoming
                .map_err(|e| -> BoxError { Box::new(e) })
                .boxed_unsync();
            let body = ResponseBody::sealed(source, &keys, &opened)
                .observed(self.settings.observer.clone());
            let response = RelayResponse::new(status, &opened, parts.headers, body);
            return Ok(Sent {
                response,
                lease,
                session,
            });
        }
    }

    /// Seals `body` for the exchange of `head`; a stream is kept for taking back when
    /// [`EngineSettings::stream_replay`] says so.
    fn wire_body(
        &self,
        keys: &ExchangeKeys,
        head: &SealedHead,
        body: Body,
    ) -> Result<WireBody, Error> {
        Ok(match body {
            Body::Empty => WireBody {
                body: empty_body(),
                kept: None,
                streamed: false,
            },
            Body::Bytes(b) => WireBody {
                body: full_body(seal_body(keys, head, &b)?),
                kept: None,
                streamed: false,
            },
            Body::Stream { stream, len } => {
                let (stream, kept) = match self.settings.stream_replay {
                    0 => (stream, None),
                    limit => {
                        let (stream, kept) = Replayable::wrap(stream, limit);
                        (stream, Some((kept, len)))
                    }
                };
                WireBody {
                    body: SealingBody::new(keys, head, stream).boxed_unsync(),
                    kept,
                    streamed: true,
                }
            }
        })
    }

    fn observe_request(&self, head: &SealedHead, has_body: bool) {
        if self.settings.observer.is_none() {
            return;
        }
        let text = |n: &str| setup::header_text(&head.headers, n).unwrap_or_default();
        self.observe(WireEvent::Request {
            method: head.method.to_string(),
            target: head.target.clone(),
            relay_header: text(RELAY_HEADER),
            sealed_headers: text(SEALED_HEADERS),
            plain_headers: head.plain_headers.iter().map(|n| n.to_string()).collect(),
            body_len: head.encoded_len,
            has_body,
        });
    }

    fn observe_response(&self, status: u16, headers: &HeaderMap) {
        if self.settings.observer.is_none() {
            return;
        }
        let text = |n: &str| setup::header_text(headers, n);
        self.observe(WireEvent::Response {
            status,
            relay_header: text(RELAY_HEADER),
            sealed_headers: text(SEALED_HEADERS),
            content_length: text("content-length").and_then(|v| v.parse().ok()),
            relay_error: text(RELAY_ERROR_HEADER),
        });
    }
}
