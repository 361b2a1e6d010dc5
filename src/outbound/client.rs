//! The client side of outbound mode: this relay as a pqrelay client of one remote relay, with
//! its session and pairs in the shared store ([`crate::store::outbound`]), so that every relay
//! of a fleet uses the same client id and pairs instead of pairing on its own.
//!
//! Built from the pure pieces of `pqrelay-client` (sealing, opening, the §11 recovery table);
//! what differs from [`pqrelay_client::RelayClient`] is where pairs live: a pair is leased from
//! the store for one exchange (never two exchanges, on any relay, on one pair) and given back
//! advanced once the response was read.
//!
//! Recovery (§11): re-pair the pair in place, re-pair all (a new pool in the store, agreed by
//! compare-and-set: of many relays answered 569 at once only the first resets), re-discover;
//! a replayable request is retried once on the re-paired pair. A streamed body cannot be
//! replayed: the request fails with [`pqrelay_client::Error::NotRetried`] and the pool is
//! reset, so the next request pairs afresh instead of meeting another stale pair.

use std::sync::Arc;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Limited};
use pqrelay_client::exchange::{
    is_relay_error, open_response_head, relay_error, seal_body, seal_head, BodyKind, ByteStream,
    PlainHead, SealOptions, SealingBody, RELAY_HEADER, RELAY_INFO_HEADER,
};
use pqrelay_client::recovery::{retry_on, Recovery, Repair, RetryOn};
use pqrelay_client::{
    empty_body, full_body, random_pair_ids, seeded_pairing, Body, Error, HttpClient, RequestBody,
    ResponseBody,
};
use pqrelay_protocol::{ClientIdToken, ClientPair, CounterError, PairId, RelayHeader, RelayInfo};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::store::outbound::{Install, OutboundPairs, OutboundSession};
use crate::store::StoreError;

/// Largest relay error or pairing answer read.
const MAX_SMALL_BODY: usize = 64 * 1024;
/// Pairs asked for when the shared pool is empty.
pub(crate) const PAIRS_PER_PAIRING: usize = 5;

/// Why an outbound exchange failed.
#[derive(Debug)]
pub(crate) enum OutboundError {
    /// The exchange with the remote relay failed (transport, protocol, relay error).
    Client(Error),
    /// The shared store failed.
    Store(StoreError),
    /// The connection failed while a streamed request body was being sent, too far in to send
    /// it again; the pool was renewed.
    StreamCut(Error),
}

impl std::fmt::Display for OutboundError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutboundError::Client(e) | OutboundError::StreamCut(e) => e.fmt(f),
            OutboundError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for OutboundError {}

impl From<Error> for OutboundError {
    fn from(e: Error) -> Self {
        OutboundError::Client(e)
    }
}

impl From<StoreError> for OutboundError {
    fn from(e: StoreError) -> Self {
        OutboundError::Store(e)
    }
}

impl From<pqrelay_protocol::Error> for OutboundError {
    fn from(e: pqrelay_protocol::Error) -> Self {
        OutboundError::Client(e.into())
    }
}

/// One request to send: the plain head, how to seal it, the body.
#[derive(Debug)]
pub(crate) struct OutRequest {
    /// The method.
    pub method: Method,
    /// Origin-form path and query.
    pub target: String,
    /// The headers to seal or forward.
    pub headers: HeaderMap,
    /// What is sealed.
    pub seal: SealOptions,
}

/// An opened answer. Read [`body`](Self::body) to the end, then call [`Remote::finish`] so the
/// pair goes back to the shared pool (dropping it loses the pair, nothing else).
#[derive(Debug)]
pub(crate) struct Answer {
    /// The upstream's status.
    pub status: StatusCode,
    /// The decoded headers.
    pub headers: HeaderMap,
    /// The plain length of a sized body.
    pub content_length: Option<u64>,
    /// The body, opened record by record.
    pub body: ResponseBody,
    lease: Lease,
}

/// A pair leased for one exchange, with the session it belongs to.
#[derive(Debug)]
struct Lease {
    pair: ClientPair,
    session: Arc<OutboundSession>,
    _permit: OwnedSemaphorePermit,
}

/// The client of one remote relay.
pub(crate) struct Remote {
    base: Uri,
    http: HttpClient,
    pairs: OutboundPairs,
    in_flight: Arc<Semaphore>,
    discover: tokio::sync::Mutex<()>,
    /// One pairing at a time from this relay: tasks finding the pool empty wait for the
    /// pairing in flight, whose spare pairs usually serve them.
    pairing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

fn http_error<E: Into<pqrelay_client::BoxError>>(context: &'static str) -> impl FnOnce(E) -> Error {
    move |e| Error::Http {
        context,
        source: e.into(),
    }
}

async fn read_small(body: hyper::body::Incoming, context: &'static str) -> Result<Bytes, Error> {
    Limited::new(body, MAX_SMALL_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| Error::Http { context, source: e })
}

impl Remote {
    /// The client of the relay at `base`; `max_in_flight` exchanges at once from this relay.
    pub(crate) fn new(
        base: Uri,
        http: HttpClient,
        pairs: OutboundPairs,
        max_in_flight: usize,
    ) -> Remote {
        Remote {
            base,
            http,
            pairs,
            in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
            discover: tokio::sync::Mutex::new(()),
            pairing: tokio::sync::Mutex::new(()),
        }
    }

    fn url(&self, path_and_query: &str) -> Result<Uri, Error> {
        let mut parts = self.base.clone().into_parts();
        parts.path_and_query = Some(
            path_and_query
                .parse()
                .map_err(|_| Error::InvalidRequest("unusable request target".into()))?,
        );
        Uri::from_parts(parts).map_err(|_| Error::InvalidRequest("unusable request URL".into()))
    }

    /// `HEAD /api/mte-relay`, presenting `token` if any; returns the token to use.
    async fn discover_once(&self, token: Option<&ClientIdToken>) -> Result<ClientIdToken, Error> {
        let mut req = Request::head(self.url("/api/mte-relay")?);
        if let Some(t) = token {
            req = req.header(RELAY_HEADER, format!("1.{t}"));
        }
        let req = req.body(empty_body()).map_err(|e| Error::Http {
            context: "building the discovery request",
            source: Box::new(e),
        })?;
        let resp = (self.http.request(req).await)
            .map_err(http_error("discovery (HEAD /api/mte-relay)"))?;
        let text = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok());
        let Some(value) = text(RELAY_HEADER) else {
            return Err(Error::NotARelay {
                status: resp.status().as_u16(),
            });
        };
        let token = match RelayHeader::parse(value) {
            Ok(RelayHeader::Discovery { token }) => token,
            Ok(RelayHeader::Exchange(_)) => {
                return Err(Error::BadResponse("discovery answered an exchange header"))
            }
            Err(e) => return Err(pqrelay_protocol::Error::from(e).into()),
        };
        let info = text(RELAY_INFO_HEADER)
            .and_then(RelayInfo::parse)
            .ok_or(Error::BadResponse("missing or malformed x-mte-relay-info"))?;
        if !info.versions.contains(&1) {
            return Err(Error::VersionUnsupported);
        }
        Ok(token)
    }

    /// The shared session, discovering (and storing) it if there is none.
    async fn session(&self) -> Result<Arc<OutboundSession>, OutboundError> {
        if let Some(s) = self.pairs.session().await? {
            return Ok(s);
        }
        let _guard = self.discover.lock().await;
        if let Some(s) = self.pairs.session().await? {
            return Ok(s);
        }
        let token = self.discover_once(None).await?;
        Ok(self.pairs.install(token, None, Install::Keep).await?)
    }

    /// Re-discovers with the stale session's token and stores the answer (resetting the pool
    /// when asked or when the client id changed), unless another task or relay already
    /// replaced the stale session.
    async fn rediscover(
        &self,
        stale: &Arc<OutboundSession>,
        install: Install,
    ) -> Result<Arc<OutboundSession>, OutboundError> {
        let _guard = self.discover.lock().await;
        if let Some(current) = self.pairs.reload().await? {
            if !current.same(stale) {
                return Ok(current);
            }
        }
        let token = self.discover_once(Some(&stale.token)).await?;
        Ok(self.pairs.install(token, Some(stale), install).await?)
    }

    /// `POST /api/mte-pair` for the pair ids `ids` (a known id is re-paired in place, §5).
    async fn pair_ids(
        &self,
        session: &Arc<OutboundSession>,
        ids: Vec<PairId>,
    ) -> Result<(Vec<ClientPair>, Arc<OutboundSession>), OutboundError> {
        let pairing = seeded_pairing(&ids)?;
        let body = pairing.request_body();
        let req = Request::post(self.url("/api/mte-pair")?)
            .header(RELAY_HEADER, format!("1.{}", session.token))
            .header(CONTENT_TYPE, "application/json")
            .body(full_body(body))
            .map_err(|e| Error::Http {
                context: "building the pairing request",
                source: Box::new(e),
            })?;
        let resp =
            (self.http.request(req).await).map_err(http_error("pairing (POST /api/mte-pair)"))?;
        let (parts, incoming) = resp.into_parts();
        let body = read_small(incoming, "reading the pairing answer").await?;
        let status = parts.status.as_u16();
        if status != 200 {
            return Err(relay_error(status, &parts.headers, &body).into());
        }
        let pairs = pairing
            .complete(&session.token.id(), &body)
            .map_err(pqrelay_protocol::Error::from)?;
        let session = self.adopt_token(session, &parts.headers).await;
        Ok((pairs, session))
    }

    /// Stores a re-signed token (same client id) the remote relay handed back; best effort.
    async fn adopt_token(
        &self,
        session: &Arc<OutboundSession>,
        headers: &HeaderMap,
    ) -> Arc<OutboundSession> {
        let fresh = headers
            .get(RELAY_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| RelayHeader::parse(v).ok())
            .map(|h| match h {
                RelayHeader::Discovery { token } => token,
                RelayHeader::Exchange(e) => e.token,
            });
        match fresh {
            Some(t) if t.id() == session.token.id() && t != session.token => {
                let installed = self.pairs.install(t, Some(session), Install::Keep).await;
                installed.unwrap_or_else(|_| session.clone())
            }
            _ => session.clone(),
        }
    }

    /// Leases a pair of the shared pool, pairing new ones (and re-discovering once) as needed.
    async fn lease(&self) -> Result<(ClientPair, Arc<OutboundSession>), OutboundError> {
        let mut rediscovered = false;
        let mut reloaded = false;
        loop {
            let session = self.session().await?;
            if let Some(pair) = self.pairs.take(&session).await? {
                return Ok((pair, session));
            }
            // Another relay may have moved to a new pool: look once before pairing.
            if !reloaded {
                reloaded = true;
                if self
                    .pairs
                    .reload()
                    .await?
                    .is_some_and(|s| !s.same(&session))
                {
                    continue;
                }
            }
            let _pairing = self.pairing.lock().await;
            if let Some(pair) = self.pairs.take(&session).await? {
                return Ok((pair, session));
            }
            match self
                .pair_ids(&session, random_pair_ids(PAIRS_PER_PAIRING)?)
                .await
            {
                Ok((mut pairs, session)) => {
                    let mine = pairs.remove(0);
                    self.pairs.give_back(&session, pairs).await?;
                    return Ok((mine, session));
                }
                Err(OutboundError::Client(e)) => {
                    let status = e.relay_status().unwrap_or(0);
                    match Recovery::for_status(status) {
                        Some(r) if r.rediscover && !rediscovered => {
                            rediscovered = true;
                            self.rediscover(&session, install_for(&r)).await?;
                        }
                        _ => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Handles a recoverable relay error (§11): re-discovers and resets the pool as `recovery`
    /// says, then returns the pair (re-paired if needed) for the one retry, or the error.
    async fn recover(
        &self,
        pair: ClientPair,
        session: &Arc<OutboundSession>,
        recovery: Recovery,
        replayable: bool,
        attempt: u32,
        err: Error,
    ) -> Result<(ClientPair, Arc<OutboundSession>), OutboundError> {
        let Error::Relay { status, code, .. } = &err else {
            return Err(err.into());
        };
        let (status, code) = (*status, code.clone());
        let retrying = replayable && attempt == 0;
        // A request that is not retried leaves a stale pool behind: reset it so that the next
        // request pairs afresh instead of meeting another stale pair.
        let install = match recovery.repair {
            Repair::None => Install::Keep,
            Repair::ThisPair if retrying => Install::Keep,
            _ => Install::Reset,
        };
        let current = if recovery.rediscover {
            self.rediscover(session, install).await?
        } else if install == Install::Reset {
            (self.pairs)
                .install(session.token.clone(), Some(session), install)
                .await?
        } else {
            session.clone()
        };
        let pair_current = current.same_pool(session);
        match retry_on(&recovery, replayable, attempt, pair_current) {
            Some(RetryOn::SamePair) => Ok((pair, current)),
            Some(RetryOn::RepairedPair) => {
                let (mut fresh, current) = self.pair_ids(&current, vec![pair.pair_id()]).await?;
                let fresh = fresh
                    .pop()
                    .ok_or(Error::BadResponse("the pairing answer has no pair"))?;
                Ok((fresh, current))
            }
            None if recovery.retry && !replayable && attempt == 0 => {
                Err(Error::NotRetried { status, code }.into())
            }
            None => Err(err.into()),
        }
    }

    /// Sends `req` with `body`, recovering from relay errors as §11 says (a replayable body is
    /// retried once on the re-paired pair). On success the pair stays leased in the answer.
    pub(crate) async fn send(&self, req: &OutRequest, body: Body) -> Result<Answer, OutboundError> {
        pqrelay_protocol::validate_origin_form(&req.target)
            .map_err(pqrelay_protocol::Error::from)?;
        let permit = (self.in_flight.clone().acquire_owned().await)
            .map_err(|_| StoreError::Unavailable("outbound client closed".into()))?;
        let mut body = Some(body);
        let mut attempt = 0u32;
        let mut unsent_retries = 0usize;
        let mut retry = None;
        loop {
            let (pair, session) = match retry.take() {
                Some(x) => x,
                None => self.lease().await?,
            };
            let (keys, next) = match pair.next_exchange() {
                Ok(x) => x,
                Err(CounterError::Exhausted) => continue, // the pair is used up: drop it
                Err(e) => return Err(pqrelay_protocol::Error::from(e).into()),
            };
            let this_body = match body.as_ref().and_then(replay) {
                Some(b) => b,
                None => body.take().unwrap_or(Body::Empty),
            };
            let replayable = body.is_some();
            let plain = PlainHead {
                method: &req.method,
                path_and_query: &req.target,
                headers: &req.headers,
                body: kind(&this_body),
            };
            let head = seal_head(&session.token, next.pair_id(), &keys, &plain, &req.seal)?;
            let mut unread = None;
            let wire: RequestBody = match this_body {
                Body::Empty => empty_body(),
                Body::Bytes(b) => full_body(seal_body(&keys, &head, &b)?),
                Body::Stream { stream, len } => {
                    let (stream, kept) = Replayable::wrap(stream);
                    unread = Some((kept, len));
                    SealingBody::new(&keys, &head, stream).boxed_unsync()
                }
            };
            let mut http_req = Request::builder()
                .method(head.method.clone())
                .uri(self.url(&head.target)?)
                .body(wire)
                .map_err(|e| Error::Http {
                    context: "building the request",
                    source: Box::new(e),
                })?;
            *http_req.headers_mut() = head.headers.clone();
            let resp = match self.http.request(http_req).await {
                Ok(r) => r,
                Err(e) => {
                    // The remote relay accepts a counter ahead of its own: the pair stays good.
                    let _ = self.pairs.give_back(&session, vec![next]).await;
                    // A stream that failed early and unfinished (e.g. on a kept-alive connection
                    // the remote relay closed) is sent again on a fresh connection.
                    let streamed = unread.is_some();
                    if let Some((kept, len)) = unread.filter(|_| unsent_retries < UNSENT_RETRIES) {
                        if let Some(stream) = Replayable::take_back(&kept) {
                            unsent_retries += 1;
                            body = Some(Body::Stream { stream, len });
                            continue;
                        }
                    }
                    let e = http_error("sending the request")(e);
                    if !streamed {
                        return Err(e.into());
                    }
                    // A streamed body cut off: often the remote relay refused the exchange
                    // (e.g. it lost its pair state) and closed the connection mid-body. Renew
                    // the pairs so that the next request cannot meet another stale pair.
                    (self.pairs)
                        .install(session.token.clone(), Some(&session), Install::Reset)
                        .await?;
                    return Err(OutboundError::StreamCut(e));
                }
            };
            let (parts, incoming) = resp.into_parts();
            let status = parts.status.as_u16();
            if is_relay_error(status, &parts.headers) {
                let raw = read_small(incoming, "reading the relay error").await?;
                let err = relay_error(status, &parts.headers, &raw);
                let Some(recovery) = Recovery::for_status(status) else {
                    let _ = self.pairs.give_back(&session, vec![next]).await;
                    return Err(err.into());
                };
                retry = Some(
                    self.recover(next, &session, recovery, replayable, attempt, err)
                        .await?,
                );
                attempt += 1;
                continue;
            }
            let opened = open_response_head(&keys, &head, &session.token, status, &parts.headers)?;
            let session = self.adopt_token(&session, &parts.headers).await;
            let status = StatusCode::from_u16(status)
                .map_err(|_| Error::BadResponse("invalid status code"))?;
            let source: RequestBody = incoming
                .map_err(|e| -> pqrelay_client::BoxError { Box::new(e) })
                .boxed_unsync();
            return Ok(Answer {
                status,
                headers: opened.headers.clone(),
                content_length: opened.plain_len,
                body: ResponseBody::sealed(source, &keys, &opened),
                lease: Lease {
                    pair: next,
                    session,
                    _permit: permit,
                },
            });
        }
    }

    /// The answer's body was read to the end: its pair goes back to the shared pool.
    /// (An answer dropped instead loses its pair; the remote relay forgets it when idle.)
    pub(crate) async fn finish(&self, answer: Answer) -> Result<(), StoreError> {
        let Lease { pair, session, .. } = answer.lease;
        self.pairs.give_back(&session, vec![pair]).await
    }
}

/// Attempts of a streamed request whose connection failed before its body was complete.
const UNSENT_RETRIES: usize = 3;
/// Bytes of a streamed request body kept so that the request can be sent again when the
/// connection fails early (a kept-alive connection the remote relay closed, e.g. restarted).
pub(crate) const UNSENT_REPLAY: usize = 256 * 1024;

/// A streamed request body that keeps what it yielded, up to [`UNSENT_REPLAY`] bytes: until
/// then, and as long as it has not ended, it can be [taken back](Self::take_back) and sent
/// again on another connection. A body that ended may have completed at the upstream: never.
struct Replayable {
    shared: Arc<parking_lot::Mutex<Yielded>>,
}

#[derive(Default)]
struct Yielded {
    stream: Option<ByteStream>,
    pieces: Vec<Bytes>,
    len: usize,
    spilled: bool,
    ended: bool,
}

impl Replayable {
    fn wrap(stream: ByteStream) -> (ByteStream, Arc<parking_lot::Mutex<Yielded>>) {
        let shared = Arc::new(parking_lot::Mutex::new(Yielded {
            stream: Some(stream),
            ..Yielded::default()
        }));
        let wrapped = Replayable {
            shared: shared.clone(),
        };
        (Box::pin(wrapped), shared)
    }

    /// The whole body again (kept pieces, then the rest), if it can still be replayed.
    fn take_back(shared: &parking_lot::Mutex<Yielded>) -> Option<ByteStream> {
        let mut y = shared.lock();
        if y.spilled || y.ended {
            return None;
        }
        let rest = y.stream.take()?;
        let kept = futures::stream::iter(std::mem::take(&mut y.pieces).into_iter().map(Ok));
        Some(Box::pin(futures::StreamExt::chain(kept, rest)))
    }
}

impl futures::Stream for Replayable {
    type Item = Result<Bytes, pqrelay_client::BoxError>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let mut y = self.shared.lock();
        let Some(stream) = y.stream.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = stream.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(piece))) if !y.spilled => {
                if y.len + piece.len() <= UNSENT_REPLAY {
                    y.len += piece.len();
                    y.pieces.push(piece.clone());
                } else {
                    y.spilled = true;
                    y.pieces = Vec::new();
                }
            }
            Poll::Ready(None) => y.ended = true,
            _ => {}
        }
        polled
    }
}

/// The pool change a recovery asks for.
fn install_for(r: &Recovery) -> Install {
    match r.repair {
        Repair::All => Install::Reset,
        _ => Install::Keep,
    }
}

fn kind(body: &Body) -> BodyKind {
    match body {
        Body::Bytes(b) => BodyKind::Sized(b.len() as u64),
        Body::Stream { len: Some(l), .. } => BodyKind::Sized(*l),
        Body::Stream { len: None, .. } => BodyKind::Streaming,
        Body::Empty => BodyKind::None,
    }
}

/// A copy of a replayable body for one attempt (`None` for a stream).
fn replay(body: &Body) -> Option<Body> {
    match body {
        Body::Empty => Some(Body::Empty),
        Body::Bytes(b) => Some(Body::Bytes(b.clone())),
        Body::Stream { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt as _;

    use super::*;

    fn pieces(n: usize, size: usize) -> ByteStream {
        let items = (0..n).map(move |i| Ok(Bytes::from(vec![i as u8; size])));
        Box::pin(futures::stream::iter(items.collect::<Vec<_>>()))
    }

    #[tokio::test]
    async fn a_stream_cut_early_is_taken_back_whole() {
        let (mut wire, kept) = Replayable::wrap(pieces(3, 10));
        assert_eq!(wire.next().await.unwrap().unwrap(), vec![0u8; 10]);
        drop(wire);
        let again: Vec<Bytes> = Replayable::take_back(&kept)
            .unwrap()
            .map(|p| p.unwrap())
            .collect()
            .await;
        assert_eq!(again, [0u8, 1, 2].map(|i| Bytes::from(vec![i; 10])));
    }

    #[tokio::test]
    async fn an_ended_or_spilled_stream_is_never_replayed() {
        let (wire, kept) = Replayable::wrap(pieces(2, 10));
        assert_eq!(wire.collect::<Vec<_>>().await.len(), 2);
        assert!(
            Replayable::take_back(&kept).is_none(),
            "ended: may have completed"
        );
        let (mut wire, kept) = Replayable::wrap(pieces(3, UNSENT_REPLAY / 2 + 1));
        wire.next().await;
        wire.next().await;
        assert!(Replayable::take_back(&kept).is_none(), "over UNSENT_REPLAY");
    }
}
