//! The send / recover engine, written once and generic over where pairs come from
//! ([`PairSource`]): [`crate::RelayClient`] runs it on its own in-process pool, the relay's
//! outbound mode on leases from its shared store.
//!
//! [`Engine::send`] obtains a pair (discovering and pairing as needed), moves it on before
//! anything is sent (§7), seals the request, sends it and opens the response head. Then:
//!
//! - discovery reads `x-mte-relay-info` and `x-mte-relay-keys` (§5); pairing picks a trusted
//!   relay key (§13: [`EngineSettings::pins`], else the keys the source stored on first use,
//!   else the first offered key), checks `confirm`, and stores the confirmed keys when not
//!   pinned. An untrusted key or an unconfirmed pairing is a hard error
//!   ([`Error::RelayKeyNotTrusted`], [`Error::PairingNotConfirmed`]), never a silent re-pair;
//! - a relay error reply is verified with the exchange's `ke_n` (§11.2), and the delivery rules
//!   of §12 ([`crate::delivery`]) decide what follows: for an idempotent request, the §11.1
//!   action and one resend on the pair just re-paired, or one resend on a new connection after
//!   a lost connection; for any other request, a new attempt only after an authenticated
//!   `dead`, or ONE attempt with flag `retry` on the same pair after an authenticated
//!   `unknown`, an unauthenticated error or a lost connection — otherwise
//!   [`Error::OutcomeUnknown`];
//! - with [`EngineSettings::stream_replay`], a streamed body whose connection failed while the
//!   body was young and unfinished is taken back and counts as replayable (`replay.rs`);
//! - discovery and pairing (no upstream effect) are sent once more on a new connection when a
//!   reused keep-alive connection closed before any answer (`reuse.rs`), and again after a 429
//!   or 503 answer once its `Retry-After` passed (at most 10 s, plus up to 250 ms of jitter),
//!   [`PAIRING_ATTEMPTS`] attempts in all (§11.1) — never a sealed exchange;
//! - a re-signed token the relay hands back is adopted.
//!
//! The differences between sources are methods of [`PairSource`] (lease or checkout, when a
//! pair goes back, how a reset is agreed, where trust on first use is stored) or
//! [`EngineSettings`].

mod recover;
mod setup;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use http::header::HeaderMap;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::BodyExt as _;
use pqrelay_protocol::names::{EH_HEADER, ERROR_HEADER, RELAY_HEADER, VERDICT_HEADER};
use pqrelay_protocol::{ClientIdToken, CounterError, ExchangeKeys, KeyId, RelayInfo, RelayKeys};

use self::recover::{Attempts, Cut};
pub use self::setup::{
    merge_trusted, random_pair_ids, retry_after, seeded_pairing, MAX_RETRY_AFTER, MAX_TRUSTED_KEYS,
    PAIRING_ATTEMPTS, RETRY_JITTER,
};
use crate::body::Body;
use crate::delivery::{is_idempotent, Failure};
use crate::error::{BoxError, Error};
use crate::exchange::{
    is_relay_error, open_response_head, relay_error, seal_body, seal_head, verify_relay_error,
    BodyKind, PlainHead, SealOptions, SealedHead, SealingBody,
};
use crate::observer::{WireEvent, WireObserver};
use crate::replay::{Kept, Replayable};
use crate::response::{RelayResponse, ResponseBody};
use crate::source::{Lease as _, PairSource, PoolSession as _};
use crate::transport::{empty_body, full_body, HttpClient, RequestBody};

/// How an [`Engine`] behaves beyond what its [`PairSource`] decides.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct EngineSettings {
    /// A stored client id token to present at the first discovery.
    pub initial_token: Option<ClientIdToken>,
    /// The relay keys to trust, exactly (§13 pins). Empty: trust on first use, stored by the
    /// [`PairSource`].
    pub pins: Vec<KeyId>,
    /// Called with every [`WireEvent`].
    pub observer: Option<WireObserver>,
    /// Bytes of a streamed request body kept so that the request can be sent again, on a new
    /// connection, when its connection fails before the body ended (as §12 allows: once). 0
    /// (the default): a streamed body is never sent again.
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
            .field("pins", &self.pins)
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
    /// Requests sent again after a relay error (§11.1 action, then a new attempt).
    pub retries: u64,
    /// Requests sent again on a new connection: an idempotent exchange whose connection failed
    /// before an answer, or a discovery or pairing written on a reused keep-alive connection
    /// that closed before any answer byte.
    pub connection_retries: u64,
    /// Non-idempotent requests sent again with flag `retry` on the same pair (§12).
    pub retry_attempts: u64,
    /// Requests that ended with [`Error::OutcomeUnknown`].
    pub outcomes_unknown: u64,
    /// Times the relay handed back a re-signed token that was stored.
    pub token_updates: u64,
    /// Discoveries and pairings sent again after a 429 or 503 answer, once its `Retry-After`
    /// had passed (§11.1; at most [`PAIRING_ATTEMPTS`] attempts in all).
    pub busy_retries: u64,
}

#[derive(Debug, Default)]
struct Counters {
    discoveries: AtomicU64,
    retries: AtomicU64,
    connection_retries: AtomicU64,
    retry_attempts: AtomicU64,
    outcomes_unknown: AtomicU64,
    token_updates: AtomicU64,
    busy_retries: AtomicU64,
}

/// Why [`Engine::send`] failed.
#[derive(Debug)]
pub enum EngineError<E> {
    /// The exchange failed: transport, protocol, or a relay error that was not recovered.
    Exchange(Error),
    /// The pair source failed (e.g. a shared store is down).
    Source(E),
    /// The connection failed while a streamed request body of an idempotent request was being
    /// sent, too far in to send it again (with [`EngineSettings::renew_pool_when_not_retried`]
    /// the pool was reset).
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

/// What the last discovery said about the relay: its parameters and the keys it offered.
#[derive(Clone, Debug)]
struct RelayView {
    info: RelayInfo,
    keys: RelayKeys,
}

/// The send / recover engine over a [`PairSource`]. See the [module docs](self).
pub struct Engine<S> {
    base: Uri,
    origin: String,
    http: HttpClient,
    source: S,
    settings: EngineSettings,
    discover_lock: tokio::sync::Mutex<()>,
    relay: RwLock<Option<RelayView>>,
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
            origin: origin_of(&base),
            base,
            http,
            source,
            settings,
            discover_lock: tokio::sync::Mutex::new(()),
            relay: RwLock::new(None),
            counters: Counters::default(),
        }
    }

    /// The relay's origin `scheme://host:port` (the port always written): what trust on
    /// first use is stored under (§13).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The relay keys this engine trusts exactly ([`EngineSettings::pins`]).
    pub fn pins(&self) -> &[KeyId] {
        &self.settings.pins
    }

    /// The relay's `x-mte-relay-info` parameters as last discovered; `None` before discovery.
    pub fn relay_info(&self) -> Option<RelayInfo> {
        self.relay_view().map(|v| v.info)
    }

    /// The relay keys offered at the last discovery, current first; `None` before discovery.
    pub fn offered_keys(&self) -> Option<Vec<KeyId>> {
        self.relay_view().map(|v| v.keys.ids())
    }

    fn relay_view(&self) -> Option<RelayView> {
        self.relay.read().unwrap_or_else(|e| e.into_inner()).clone()
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
            retry_attempts: c.retry_attempts.load(Ordering::Relaxed),
            outcomes_unknown: c.outcomes_unknown.load(Ordering::Relaxed),
            token_updates: c.token_updates.load(Ordering::Relaxed),
            busy_retries: c.busy_retries.load(Ordering::Relaxed),
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

    /// Counts and reports a request sent again on a new connection.
    fn connection_retry(&self, request: &'static str) {
        let n = &self.counters.connection_retries;
        n.fetch_add(1, Ordering::Relaxed);
        self.observe(WireEvent::ConnectionRetry { request });
    }

    /// Gives a lease whose pair is still good back; a source failure loses the pair only.
    async fn give_back(&self, lease: S::Lease, session: &S::Session) {
        let _ = self.source.give_back(lease, session).await;
    }

    /// Sends one request, following the delivery rules of §12 ([`crate::delivery`]): an
    /// idempotent request is sent again after a relay error (once, after the §11.1 action, on
    /// the pair just re-paired) and after a lost connection (once, on a new connection); any
    /// other request only after an authenticated `dead` verdict, or once with flag `retry` on
    /// the same pair; otherwise it ends with [`Error::OutcomeUnknown`].
    pub async fn send(&self, req: &Outgoing, body: Body) -> Result<Sent<S>, EngineError<S::Error>> {
        pqrelay_protocol::validate_origin_form(&req.path_and_query).map_err(Error::from)?;
        let mut attempts = Attempts::new(body, is_idempotent(&req.method, &req.headers));
        loop {
            let (mut lease, session) = match attempts.next_on.take() {
                Some(x) => x,
                None => self.lease().await?,
            };
            let retry = std::mem::take(&mut attempts.retry_flag);
            let next = lease
                .slot()
                .take()
                .map(|pair| (pair.pair_id(), pair.next_exchange()));
            let (pair_id, keys) = match next {
                Some((pid, Ok((keys, next)))) => {
                    // The pair moves on before anything is sent (§7).
                    *lease.slot() = Some(next);
                    (pid, keys)
                }
                // A `retry` attempt must go on the same pair: it is used up.
                _ if retry => return Err(self.outcome_unknown("the pair is used up").into()),
                None | Some((_, Err(CounterError::Exhausted))) => continue, // frees the slot
                Some((_, Err(e))) => return Err(Error::from(e).into()),
            };

            let this_body = attempts.next_body();
            let plain = PlainHead {
                method: &req.method,
                path_and_query: &req.path_and_query,
                headers: &req.headers,
                body: this_body.kind(),
                retry,
            };
            let mut head = seal_head(session.token(), pair_id, &keys, &plain, &req.seal)?;
            let wire = self.wire_body(&keys, &head, this_body)?;
            self.observe_request(
                &head,
                !matches!(plain.body, BodyKind::None | BodyKind::Empty),
            );
            // Target and headers go out with the request; the rest of the head opens the answer.
            let mut http_req = Request::builder()
                .method(head.method.clone())
                .uri(self.url(std::mem::take(&mut head.target))?)
                .body(wire.body)
                .map_err(|e| Error::http("building the request", e))?;
            *http_req.headers_mut() = std::mem::take(&mut head.headers);
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
                        kept: wire.kept,
                        streamed: wire.streamed,
                        retry,
                    };
                    Box::pin(self.lost(&mut attempts, cut, lease, session)).await?;
                    continue;
                }
            };
            let (parts, incoming) = resp.into_parts();
            let status = parts.status.as_u16();
            self.observe_response(status, &parts.headers);

            if is_relay_error(status, &parts.headers) {
                let raw = setup::read_small(incoming, "reading the relay error").await?;
                let token = session.token();
                let verdict = verify_relay_error(&keys, token, pair_id, status, &parts.headers);
                let err = relay_error(status, &parts.headers, &raw, verdict);
                let code = match &err {
                    Error::Relay { code, .. } => code.clone(),
                    _ => String::new(),
                };
                let failure = match verdict {
                    Some(verdict) => Failure::Authenticated {
                        status,
                        code: &code,
                        verdict,
                    },
                    None => Failure::Unauthenticated { status },
                };
                let failed = recover::Failed {
                    lease,
                    session,
                    failure,
                    err,
                    retry,
                };
                Box::pin(self.failed(&mut attempts, failed)).await?;
                continue;
            }

            let opened =
                match open_response_head(&keys, &head, session.token(), status, &parts.headers) {
                    Ok(opened) => opened,
                    Err(err) => {
                        // An answer that does not open says nothing about the request's fate.
                        let failed = recover::Failed {
                            lease,
                            session,
                            failure: Failure::NoAnswer,
                            err,
                            retry,
                        };
                        Box::pin(self.failed(&mut attempts, failed)).await?;
                        continue;
                    }
                };
            let session = match opened.new_token.clone() {
                Some(t) => Box::pin(self.adopt(&session, t)).await,
                None => session,
            };
            let status = StatusCode::from_u16(status)
                .map_err(|_| Error::BadResponse("invalid status code"))?;
            let source: RequestBody = incoming
                .map_err(|e| -> BoxError { Box::new(e) })
                .boxed_unsync();
            let body = ResponseBody::sealed(source, &keys, &opened)
                .observed(self.settings.observer.clone());
            let response = RelayResponse::new(status, opened, parts.headers, body);
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
        // No flag `body` (no body, or an empty one): nothing on the wire.
        let no_body = !head.flags.contains(pqrelay_protocol::Flags::BODY);
        let empty = || WireBody {
            body: empty_body(),
            kept: None,
            streamed: false,
        };
        Ok(match body {
            _ if no_body => empty(),
            Body::Empty => empty(),
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
            sealed_headers: text(EH_HEADER),
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
            sealed_headers: text(EH_HEADER),
            content_length: text("content-length").and_then(|v| v.parse().ok()),
            relay_error: text(ERROR_HEADER),
            verdict: text(VERDICT_HEADER),
        });
    }
}

/// `scheme://host:port` of a base URL, the port always written (80 and 443 by default).
pub fn origin_of(base: &Uri) -> String {
    let scheme = base.scheme_str().unwrap_or("http");
    let host = base.host().unwrap_or_default();
    let default = if scheme == "https" { 443 } else { 80 };
    let port = base.port_u16().unwrap_or(default);
    format!("{scheme}://{host}:{port}")
}
