//! [`RelayClient`]: discovery, the pair pool, sending sealed requests, recovery (§11).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use futures_core::Stream;
use futures_util::TryStreamExt as _;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt as _, Limited};
use pqrelay_protocol::kem::SEED_SIZE;
use pqrelay_protocol::{
    ClientIdToken, ClientPairing, CounterError, DecapsulationSeed, PairId, RelayHeader, RelayInfo,
};

use crate::error::{BoxError, Error};
use crate::exchange::{
    is_relay_error, open_response_head, relay_error, seal_body, seal_head, BodyKind, ByteStream,
    HeaderSelection, PlainHead, SealOptions, SealingBody, RELAY_HEADER, RELAY_INFO_HEADER,
    SEALED_HEADERS,
};
use crate::observer::{WireEvent, WireObserver};
use crate::pool::{Checkout, PairLease, PoolStats, PooledPair, SharedPool};
use crate::recovery::{retry_on, Recovery, Repair, RetryOn};
use crate::response::{RelayResponse, ResponseBody};
use crate::reuse::closed_unanswered;
use crate::transport::{empty_body, full_body, http_client, HttpClient, HttpOptions, RequestBody};

/// Default number of pairs paired at first use (and per growth step).
pub const DEFAULT_PAIRS: usize = 5;
/// Default bound on the pool (never above the relay's `max-pairs`).
pub const DEFAULT_MAX_PAIRS: usize = 25;
/// Largest relay error or pairing answer body read.
const MAX_SMALL_BODY: usize = 64 * 1024;

/// A request body.
pub enum Body {
    /// No body.
    Empty,
    /// A body in memory: sent in sized mode, and replayable (a request with it is retried once
    /// after a recoverable relay error).
    Bytes(Bytes),
    /// A stream of chunks, sealed as it is read (constant memory), never retried. With `len`
    /// it is sent in sized mode and must yield exactly `len` bytes; without, in streaming mode
    /// (chunked).
    Stream {
        /// The chunks.
        stream: ByteStream,
        /// The exact plain length, when known.
        len: Option<u64>,
    },
}

impl core::fmt::Debug for Body {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Empty => f.write_str("Body::Empty"),
            Self::Bytes(b) => write!(f, "Body::Bytes({} bytes)", b.len()),
            Self::Stream { len, .. } => write!(f, "Body::Stream(len: {len:?})"),
        }
    }
}

impl Body {
    /// A stream of known plain length `len` (sized mode).
    pub fn sized_stream<S, E>(stream: S, len: u64) -> Self
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        Self::Stream {
            stream: Box::pin(stream.map_err(Into::into)),
            len: Some(len),
        }
    }

    /// A stream of unknown length (streaming mode, chunked; each chunk becomes a record sent
    /// at once).
    pub fn stream<S, E>(stream: S) -> Self
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        Self::Stream {
            stream: Box::pin(stream.map_err(Into::into)),
            len: None,
        }
    }

    /// Whether the request can be sent again after a recoverable relay error.
    pub fn is_replayable(&self) -> bool {
        !matches!(self, Self::Stream { .. })
    }

    fn kind(&self) -> BodyKind {
        match self {
            Self::Empty => BodyKind::None,
            Self::Bytes(b) => BodyKind::Sized(b.len() as u64),
            Self::Stream { len: Some(l), .. } => BodyKind::Sized(*l),
            Self::Stream { len: None, .. } => BodyKind::Streaming,
        }
    }

    /// A copy for another attempt (streams cannot be copied: `None`).
    fn try_clone(&self) -> Option<Self> {
        match self {
            Self::Empty => Some(Self::Empty),
            Self::Bytes(b) => Some(Self::Bytes(b.clone())),
            Self::Stream { .. } => None,
        }
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Self::Bytes(b)
    }
}

impl From<Vec<u8>> for Body {
    fn from(b: Vec<u8>) -> Self {
        Self::Bytes(b.into())
    }
}

impl From<String> for Body {
    fn from(s: String) -> Self {
        Self::Bytes(s.into())
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Self::Bytes(Bytes::from_static(s.as_bytes()))
    }
}

impl From<&'static [u8]> for Body {
    fn from(s: &'static [u8]) -> Self {
        Self::Bytes(Bytes::from_static(s))
    }
}

/// What discovery established: the client id token and the relay's parameters.
#[derive(Clone, Debug)]
struct Session {
    token: ClientIdToken,
    info: RelayInfo,
}

/// Counters of a client, for tests that assert re-pairing happened and for monitoring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    /// The pair pool.
    pub pool: PoolStats,
    /// Discoveries done (the first one included).
    pub discoveries: u64,
    /// Requests sent again after a recoverable relay error.
    pub retries: u64,
    /// Requests (exchanges, discoveries, pairings) sent again on a new connection because the
    /// reused keep-alive connection they were written on closed before any answer byte.
    pub connection_retries: u64,
    /// Times the relay handed back a re-signed token that was stored.
    pub token_updates: u64,
}

struct Inner {
    base: Uri,
    http: HttpClient,
    pairs: usize,
    max_pairs: usize,
    seal: SealOptions,
    observer: Option<WireObserver>,
    initial_token: Option<ClientIdToken>,
    session: RwLock<Option<Arc<Session>>>,
    discover_lock: tokio::sync::Mutex<()>,
    pool: Arc<SharedPool>,
    discoveries: AtomicU64,
    retries: AtomicU64,
    connection_retries: AtomicU64,
    token_updates: AtomicU64,
}

/// A pqrelay client: discovers the relay, keeps a pool of pairs and sends sealed requests.
///
/// Cheap to clone (`Arc` inside), `Send + Sync`: share one across tasks. Discovery and the
/// first pairing happen on first use, or eagerly with [`connect`](Self::connect).
#[derive(Clone)]
pub struct RelayClient {
    inner: Arc<Inner>,
}

impl core::fmt::Debug for RelayClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RelayClient")
            .field("base", &self.inner.base)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Builds a [`RelayClient`].
pub struct ClientBuilder {
    base: String,
    pairs: usize,
    max_pairs: usize,
    seal: SealOptions,
    observer: Option<WireObserver>,
    token: Option<String>,
    http: Option<HttpClient>,
    http_options: HttpOptions,
}

impl core::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base", &self.base)
            .field("pairs", &self.pairs)
            .field("max_pairs", &self.max_pairs)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// Pairs paired at first use, and per growth step (default 5).
    pub fn pairs(mut self, n: usize) -> Self {
        self.pairs = n.max(1);
        self
    }

    /// Bound on the pool (default 25); the relay's `max-pairs` caps it further.
    pub fn max_pairs(mut self, n: usize) -> Self {
        self.max_pairs = n.max(1);
        self
    }

    /// Seal the path and query of every request (default true); per request:
    /// [`RequestBuilder::encode_url`].
    pub fn encode_url(mut self, on: bool) -> Self {
        self.seal.encode_url = on;
        self
    }

    /// Which caller headers are sealed by default (default all).
    pub fn seal_headers(mut self, selection: HeaderSelection) -> Self {
        self.seal.headers = selection;
        self
    }

    /// A stored client id token to present at discovery (see [`RelayClient::token`]).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// A wire observer, called with every [`WireEvent`].
    pub fn observer(mut self, f: impl Fn(&WireEvent) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(f));
        self
    }

    /// Trust these extra CA certificates (PEM) for `https` (ignored with
    /// [`http_client`](Self::http_client)).
    pub fn extra_ca_pem(mut self, pem: Vec<u8>) -> Self {
        self.http_options.extra_ca_pem = Some(pem);
        self
    }

    /// Options of the hyper client built by [`build`](Self::build).
    pub fn http_options(mut self, options: HttpOptions) -> Self {
        self.http_options = options;
        self
    }

    /// Use this hyper client (e.g. one shared with plain traffic) instead of building one.
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.http = Some(client);
        self
    }

    /// Builds the client. Fails on a relay URL that is not `http(s)://host[:port]`, a token
    /// that is not a token, or an unusable CA file. Does no I/O.
    pub fn build(self) -> Result<RelayClient, Error> {
        let base = parse_base(&self.base)?;
        let initial_token = match &self.token {
            Some(t) => Some(
                ClientIdToken::parse(t.trim())
                    .map_err(|_| Error::InvalidRequest("malformed client id token".into()))?,
            ),
            None => None,
        };
        let http = match self.http {
            Some(h) => h,
            None => http_client(&self.http_options)?,
        };
        let max_pairs = self.max_pairs;
        let pairs = self.pairs.min(max_pairs);
        Ok(RelayClient {
            inner: Arc::new(Inner {
                base,
                http,
                pairs,
                max_pairs,
                seal: self.seal,
                observer: self.observer,
                initial_token,
                session: RwLock::new(None),
                discover_lock: tokio::sync::Mutex::new(()),
                pool: Arc::new(SharedPool::new(max_pairs, pairs)),
                discoveries: AtomicU64::new(0),
                retries: AtomicU64::new(0),
                connection_retries: AtomicU64::new(0),
                token_updates: AtomicU64::new(0),
            }),
        })
    }
}

/// Parses the relay base URL: `http(s)://host[:port]` with an empty or `/` path.
fn parse_base(url: &str) -> Result<Uri, Error> {
    let uri: Uri = url
        .parse()
        .map_err(|_| Error::InvalidRequest(format!("relay URL {url:?} is not a URL")))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(Error::InvalidRequest(
                "relay URL must start with http:// or https://".into(),
            ))
        }
    }
    if uri.authority().is_none() {
        return Err(Error::InvalidRequest("relay URL has no host".into()));
    }
    if !matches!(
        uri.path_and_query().map(|p| p.as_str()),
        None | Some("/") | Some("")
    ) {
        return Err(Error::InvalidRequest(
            "relay URL must not have a path".into(),
        ));
    }
    Ok(uri)
}

/// Splits a full URL (`http://127.0.0.1:8080/api/x?y=1`) into the relay base URL and the
/// origin-form path and query (`/` when absent).
pub fn split_url(url: &str) -> Result<(String, String), Error> {
    let uri: Uri = url
        .parse()
        .map_err(|_| Error::InvalidRequest(format!("{url:?} is not a URL")))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(Error::InvalidRequest(format!(
            "{url:?} is not an absolute http(s) URL"
        )));
    };
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let path = if path.is_empty() { "/" } else { path };
    Ok((format!("{scheme}://{authority}"), path.to_owned()))
}

/// `count` random pair ids (OS randomness).
pub fn random_pair_ids(count: usize) -> Result<Vec<PairId>, Error> {
    (0..count).map(|_| random::<16>().map(PairId)).collect()
}

/// The client side of a pairing request for `ids`, each with a fresh random X-Wing seed.
pub fn seeded_pairing(ids: &[PairId]) -> Result<ClientPairing, Error> {
    let mut seeded = Vec::with_capacity(ids.len());
    for &pid in ids {
        seeded.push((pid, DecapsulationSeed::from_bytes(random::<SEED_SIZE>()?)));
    }
    Ok(ClientPairing::new(seeded))
}

fn random<const N: usize>() -> Result<[u8; N], Error> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b)
        .map_err(|e| Error::http("reading OS randomness", e.to_string()))?;
    Ok(b)
}

/// Gives a pairing reservation back to the pool if it did not complete (error or cancel).
struct Reservation {
    pool: Arc<SharedPool>,
    count: usize,
    generation: u64,
    open: bool,
}

impl Reservation {
    fn complete(mut self, pairs: Vec<PooledPair>) -> Option<PooledPair> {
        self.open = false;
        let mine = self.pool.lock().paired(self.generation, self.count, pairs);
        self.pool.wake();
        mine
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.open {
            self.pool.lock().pairing_failed(self.count);
            self.pool.wake();
        }
    }
}

impl RelayClient {
    /// A builder for a client of the relay at `base_url` (`http(s)://host[:port]`).
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base: base_url.into(),
            pairs: DEFAULT_PAIRS,
            max_pairs: DEFAULT_MAX_PAIRS,
            seal: SealOptions::default(),
            observer: None,
            token: None,
            http: None,
            http_options: HttpOptions::default(),
        }
    }

    /// A request to `path_and_query` (origin-form, e.g. `/api/x?y=1`).
    pub fn request(&self, method: Method, path_and_query: impl Into<String>) -> RequestBuilder {
        RequestBuilder {
            client: self.clone(),
            method,
            path: path_and_query.into(),
            headers: HeaderMap::new(),
            body: Body::Empty,
            seal: self.inner.seal.clone(),
            error: None,
        }
    }

    /// A `GET` request.
    pub fn get(&self, path_and_query: impl Into<String>) -> RequestBuilder {
        self.request(Method::GET, path_and_query)
    }

    /// A `POST` request.
    pub fn post(&self, path_and_query: impl Into<String>) -> RequestBuilder {
        self.request(Method::POST, path_and_query)
    }

    /// Discovers the relay and pairs the initial pool now instead of at first use.
    pub async fn connect(&self) -> Result<(), Error> {
        let lease = self.lease().await?;
        drop(lease);
        Ok(())
    }

    /// The hyper client this client sends through (share it for plain traffic).
    pub fn http(&self) -> &HttpClient {
        &self.inner.http
    }

    /// The relay base URL.
    pub fn base_url(&self) -> &Uri {
        &self.inner.base
    }

    /// The current client id token (persist it and pass it to [`ClientBuilder::token`] to
    /// keep the same id); `None` before discovery.
    pub fn token(&self) -> Option<String> {
        self.current_session().map(|s| s.token.encode())
    }

    /// The relay's `x-mte-relay-info` parameters; `None` before discovery.
    pub fn relay_info(&self) -> Option<RelayInfo> {
        self.current_session().map(|s| s.info.clone())
    }

    /// Counters: pool state, pairings, discoveries, retries.
    pub fn stats(&self) -> ClientStats {
        ClientStats {
            pool: self.inner.pool.lock().stats(),
            discoveries: self.inner.discoveries.load(Ordering::Relaxed),
            retries: self.inner.retries.load(Ordering::Relaxed),
            connection_retries: self.inner.connection_retries.load(Ordering::Relaxed),
            token_updates: self.inner.token_updates.load(Ordering::Relaxed),
        }
    }

    fn observe(&self, event: WireEvent) {
        if let Some(obs) = &self.inner.observer {
            obs(&event);
        }
    }

    /// Counts and reports a request sent again on a new connection ([`crate::reuse`]).
    fn connection_retry(&self, request: &'static str) {
        self.inner
            .connection_retries
            .fetch_add(1, Ordering::Relaxed);
        self.observe(WireEvent::ConnectionRetry { request });
    }

    /// Sends a request that `build` can make again (discovery, pairing: nothing is sealed per
    /// attempt), once more on a new connection if the reused connection it was written on
    /// closed before any answer ([`crate::reuse`]). `context` names the request in errors.
    async fn send_rebuildable(
        &self,
        context: &'static str,
        build: impl Fn() -> Result<Request<RequestBody>, Error>,
    ) -> Result<Response<hyper::body::Incoming>, Error> {
        match self.inner.http.request(build()?).await {
            Ok(resp) => Ok(resp),
            Err(e) if closed_unanswered(&e) => {
                self.connection_retry(context);
                self.inner
                    .http
                    .request_fresh(build()?)
                    .await
                    .map_err(|e| Error::http(context, e))
            }
            Err(e) => Err(Error::http(context, e)),
        }
    }

    fn current_session(&self) -> Option<Arc<Session>> {
        self.inner
            .session
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn url(&self, path_and_query: &str) -> Result<Uri, Error> {
        let mut parts = self.inner.base.clone().into_parts();
        parts.path_and_query = Some(
            path_and_query
                .parse()
                .map_err(|_| Error::InvalidRequest("unusable request target".into()))?,
        );
        Uri::from_parts(parts).map_err(|_| Error::InvalidRequest("unusable request URL".into()))
    }

    /// Stores a re-signed token of the same client id.
    fn update_token(&self, token: ClientIdToken) {
        let mut guard = self
            .inner
            .session
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(s) = guard.as_ref() {
            if s.token.id() == token.id() && s.token != token {
                *guard = Some(Arc::new(Session {
                    token,
                    info: s.info.clone(),
                }));
                self.inner.token_updates.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The `x-mte-relay` token of a discovery or pairing answer, if it parses.
    fn answered_token(headers: &HeaderMap) -> Option<ClientIdToken> {
        let value = headers.get(RELAY_HEADER)?.to_str().ok()?;
        match RelayHeader::parse(value).ok()? {
            RelayHeader::Discovery { token } => Some(token),
            RelayHeader::Exchange(h) => Some(h.token),
        }
    }

    /// `HEAD /api/mte-relay`, presenting `token` if any.
    async fn discover_once(&self, token: Option<&ClientIdToken>) -> Result<Session, Error> {
        let url = self.url("/api/mte-relay")?;
        let build = || {
            let mut req = Request::head(url.clone());
            if let Some(t) = token {
                req = req.header(RELAY_HEADER, format!("1.{t}"));
            }
            req.body(empty_body())
                .map_err(|e| Error::http("building the discovery request", e))
        };
        let resp = self
            .send_rebuildable("discovery (HEAD /api/mte-relay)", build)
            .await?;
        self.inner.discoveries.fetch_add(1, Ordering::Relaxed);
        let status = resp.status().as_u16();
        let headers = resp.headers();
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        self.observe(WireEvent::Discovery {
            status,
            relay_header: text(RELAY_HEADER),
            relay_info: text(RELAY_INFO_HEADER),
        });
        let Some(value) = text(RELAY_HEADER) else {
            return Err(Error::NotARelay { status });
        };
        let token = match RelayHeader::parse(&value) {
            Ok(RelayHeader::Discovery { token }) => token,
            Ok(RelayHeader::Exchange(_)) => {
                return Err(Error::BadResponse("discovery answered an exchange header"))
            }
            Err(pqrelay_protocol::RelayHeaderError::VersionUnsupported) => {
                return Err(Error::VersionUnsupported)
            }
            Err(e) => return Err(e.into()),
        };
        let info = text(RELAY_INFO_HEADER)
            .as_deref()
            .and_then(RelayInfo::parse)
            .ok_or(Error::BadResponse("missing or malformed x-mte-relay-info"))?;
        if !info.versions.contains(&1) {
            return Err(Error::VersionUnsupported);
        }
        Ok(Session { token, info })
    }

    /// Makes `session` current. `repair_all`: forget every pair unless that already happened
    /// since this pool generation (a new client id always forgets them).
    fn install(&self, session: Session, repair_all: Option<u64>) -> Arc<Session> {
        let relay_max = usize::try_from(session.info.max_pairs)
            .unwrap_or(usize::MAX)
            .max(1);
        let max = self.inner.max_pairs.min(relay_max);
        let session = Arc::new(session);
        let old = self
            .inner
            .session
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .replace(session.clone());
        let mut pool = self.inner.pool.lock();
        pool.set_bounds(max, self.inner.pairs.min(max));
        if old.is_some_and(|o| o.token.id() != session.token.id()) {
            pool.reset();
        } else if let Some(generation) = repair_all {
            pool.reset_since(generation);
        }
        drop(pool);
        self.inner.pool.wake();
        session
    }

    /// The session, discovering first if there is none.
    async fn session(&self) -> Result<Arc<Session>, Error> {
        if let Some(s) = self.current_session() {
            return Ok(s);
        }
        let _guard = self.inner.discover_lock.lock().await;
        if let Some(s) = self.current_session() {
            return Ok(s);
        }
        let session = self
            .discover_once(self.inner.initial_token.as_ref())
            .await?;
        Ok(self.install(session, None))
    }

    /// Re-discovers unless another task already replaced `stale`; `repair_all` as for
    /// [`install`](Self::install).
    async fn rediscover(&self, stale: &Arc<Session>, repair_all: Option<u64>) -> Result<(), Error> {
        let _guard = self.inner.discover_lock.lock().await;
        if self
            .current_session()
            .is_some_and(|s| s.token.id() != stale.token.id())
        {
            return Ok(());
        }
        let session = self.discover_once(Some(&stale.token)).await?;
        self.install(session, repair_all);
        Ok(())
    }

    /// `POST /api/mte-pair` for `count` new pairs with random pair ids.
    async fn pair(
        &self,
        session: &Session,
        count: usize,
        generation: u64,
    ) -> Result<Vec<PooledPair>, Error> {
        self.pair_ids(session, random_pair_ids(count)?, generation)
            .await
    }

    /// `POST /api/mte-pair` for the pair ids `ids` (fresh X-Wing keys; the relay replaces the
    /// state of a pair id it already has, §5).
    async fn pair_ids(
        &self,
        session: &Session,
        ids: Vec<PairId>,
        generation: u64,
    ) -> Result<Vec<PooledPair>, Error> {
        let count = ids.len();
        let pairing = seeded_pairing(&ids)?;
        let body = Bytes::from(pairing.request_body());
        let request_len = body.len();
        let url = self.url("/api/mte-pair")?;
        let build = || {
            Request::post(url.clone())
                .header(RELAY_HEADER, format!("1.{}", session.token))
                .header(CONTENT_TYPE, "application/json")
                .body(full_body(body.clone()))
                .map_err(|e| Error::http("building the pairing request", e))
        };
        let resp = self
            .send_rebuildable("pairing (POST /api/mte-pair)", build)
            .await?;
        let (parts, incoming) = resp.into_parts();
        let body = read_small(incoming, "reading the pairing answer").await?;
        let status = parts.status.as_u16();
        self.observe(WireEvent::Pairing {
            pairs: count,
            status,
            request_len,
            response_len: body.len(),
        });
        if status != 200 {
            return Err(relay_error(status, &parts.headers, &body));
        }
        if let Some(t) = Self::answered_token(&parts.headers) {
            self.update_token(t);
        }
        let id = session.token.id();
        let pairs = pairing.complete(&id, &body)?;
        Ok(pairs
            .into_iter()
            .map(|pair| PooledPair {
                pair,
                client_id: id,
                generation,
            })
            .collect())
    }

    /// Checks a pair out of the pool, pairing (and re-discovering once) as needed.
    async fn lease(&self) -> Result<(PairLease, Arc<Session>), Error> {
        let mut rediscovered = false;
        loop {
            let session = self.session().await?;
            match self.inner.pool.checkout().await {
                Checkout::Ready(p) => {
                    let lease = PairLease::new(self.inner.pool.clone(), p);
                    let stale = lease.client_id() != Some(session.token.id());
                    if stale {
                        let mut lease = lease;
                        lease.discard();
                        continue;
                    }
                    return Ok((lease, session));
                }
                Checkout::Pair { count, generation } => {
                    let reservation = Reservation {
                        pool: self.inner.pool.clone(),
                        count,
                        generation,
                        open: true,
                    };
                    match self.pair(&session, count, generation).await {
                        Ok(pairs) => {
                            if let Some(p) = reservation.complete(pairs) {
                                return Ok((PairLease::new(self.inner.pool.clone(), p), session));
                            }
                        }
                        Err(e) => {
                            drop(reservation);
                            let status = e.relay_status().unwrap_or(0);
                            match Recovery::for_status(status) {
                                Some(r) if r.rediscover && !rediscovered => {
                                    rediscovered = true;
                                    self.observe(WireEvent::Recovery {
                                        status,
                                        action: "re-discover",
                                        retried: true,
                                    });
                                    let all = (r.repair == Repair::All).then_some(generation);
                                    self.rediscover(&session, all).await?;
                                }
                                _ => return Err(e),
                            }
                        }
                    }
                }
                Checkout::Wait => {}
            }
        }
    }

    /// Re-pairs the pair of `lease` in place (same pair id) under the current session, for a
    /// retry on exactly that pair (§11). Returns the session the fresh pair belongs to.
    async fn repair_in_place(&self, lease: &mut PairLease) -> Result<Arc<Session>, Error> {
        let session = self.session().await?;
        let pid = pair_id_of(lease);
        let generation = self.inner.pool.lock().generation();
        let fresh = self
            .pair_ids(&session, vec![pid], generation)
            .await?
            .pop()
            .ok_or(Error::BadResponse("the pairing answer has no pair"))?;
        self.inner.pool.lock().repaired();
        lease.replace(fresh);
        // The pairing answer may have carried a re-signed token (same id): seal with it.
        Ok(self.current_session().unwrap_or(session))
    }

    /// Handles a relay error answer (§11): re-discovers and forgets pairs as `recovery` says,
    /// then either returns the lease (re-paired if needed) and session for the one retry, or
    /// the error for the caller.
    async fn recover(
        &self,
        mut lease: PairLease,
        session: &Arc<Session>,
        recovery: Recovery,
        replayable: bool,
        attempt: u32,
        err: Error,
    ) -> Result<(PairLease, Arc<Session>), Error> {
        let Error::Relay { status, code, .. } = &err else {
            return Err(err);
        };
        let status = *status;
        let generation = lease.generation().unwrap_or(u64::MAX);
        if recovery.repair != Repair::None {
            // Whatever follows, the stale pair never goes back to the pool as it is.
            lease.discard();
        }
        let all = (recovery.repair == Repair::All).then_some(generation);
        if recovery.rediscover {
            self.rediscover(session, all).await?;
        } else if let Some(generation) = all {
            self.inner.pool.lock().reset_since(generation);
        }
        let current = self.current_session().unwrap_or_else(|| session.clone());
        let pair_current = lease.client_id() == Some(current.token.id())
            && lease.generation() == Some(self.inner.pool.lock().generation());
        let plan = retry_on(&recovery, replayable, attempt, pair_current);
        self.observe(WireEvent::Recovery {
            status,
            action: recovery.action(),
            retried: plan.is_some(),
        });
        match plan {
            Some(RetryOn::SamePair) => Ok((lease, current)),
            Some(RetryOn::RepairedPair) => {
                let session = self.repair_in_place(&mut lease).await?;
                Ok((lease, session))
            }
            None if recovery.retry && !replayable && attempt == 0 => Err(Error::NotRetried {
                status,
                code: code.clone(),
            }),
            None => Err(err),
        }
    }

    /// Sends one request, recovering from relay errors as §11 says: a replayable request is
    /// retried once, on the pair that got the error (re-paired when the status asks for it),
    /// never on another pair of the pool. Independently, a replayable request written on a
    /// reused connection that closed before any answer byte is sealed again (next counter of
    /// the same pair) and sent once more on a new connection ([`crate::reuse`]).
    async fn execute(&self, mut req: RequestBuilder) -> Result<RelayResponse, Error> {
        if let Some(e) = req.error.take() {
            return Err(e);
        }
        pqrelay_protocol::validate_origin_form(&req.path)?;
        let mut body = Some(std::mem::replace(&mut req.body, Body::Empty));
        let mut attempt = 0u32;
        let mut retry: Option<(PairLease, Arc<Session>)> = None;
        let mut connection_retried = false;
        let mut fresh_connection = false;
        loop {
            let (mut lease, session) = match retry.take() {
                Some(x) => x,
                None => self.lease().await?,
            };
            let Some(pooled) = lease.take_pair() else {
                continue;
            };
            let PooledPair {
                pair,
                client_id,
                generation,
            } = pooled;
            let (keys, next) = match pair.next_exchange() {
                Ok(x) => x,
                Err(CounterError::Exhausted) => continue, // the lease frees the slot
                Err(e) => return Err(e.into()),
            };
            // The pair moves on before anything is sent (§6).
            lease.put_pair(PooledPair {
                pair: next,
                client_id,
                generation,
            });

            let this_body = match body.as_ref().and_then(Body::try_clone) {
                Some(b) => b,
                None => body.take().unwrap_or(Body::Empty),
            };
            let replayable = body.is_some();
            let plain = PlainHead {
                method: &req.method,
                path_and_query: &req.path,
                headers: &req.headers,
                body: this_body.kind(),
            };
            let head = seal_head(&session.token, pair_id_of(&lease), &keys, &plain, &req.seal)?;
            let wire_body: RequestBody = match this_body {
                Body::Empty => empty_body(),
                Body::Bytes(b) => full_body(seal_body(&keys, &head, &b)?),
                Body::Stream { stream, .. } => {
                    http_body_util::BodyExt::boxed_unsync(SealingBody::new(&keys, &head, stream))
                }
            };
            let mut http_req = Request::builder()
                .method(head.method.clone())
                .uri(self.url(&head.target)?)
                .body(wire_body)
                .map_err(|e| Error::http("building the request", e))?;
            *http_req.headers_mut() = head.headers.clone();
            if self.inner.observer.is_some() {
                let text = |n: &str| {
                    head.headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                self.observe(WireEvent::Request {
                    method: head.method.to_string(),
                    target: head.target.clone(),
                    relay_header: text(RELAY_HEADER),
                    sealed_headers: text(SEALED_HEADERS),
                    plain_headers: head.plain_headers.iter().map(|n| n.to_string()).collect(),
                    body_len: head.encoded_len,
                    has_body: plain.body != BodyKind::None,
                });
            }
            let sent = if std::mem::take(&mut fresh_connection) {
                self.inner.http.request_fresh(http_req).await
            } else {
                self.inner.http.request(http_req).await
            };
            let resp = match sent {
                Ok(resp) => resp,
                Err(e) if replayable && !connection_retried && closed_unanswered(&e) => {
                    // The relay never read it; the lease holds the pair at its next counter.
                    self.connection_retry("exchange");
                    connection_retried = true;
                    fresh_connection = true;
                    retry = Some((lease, session));
                    continue;
                }
                Err(e) => return Err(Error::http("sending the request", e)),
            };
            let (parts, incoming) = resp.into_parts();
            let status = parts.status.as_u16();
            if self.inner.observer.is_some() {
                let text = |n: &str| {
                    parts
                        .headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                self.observe(WireEvent::Response {
                    status,
                    relay_header: text(RELAY_HEADER),
                    sealed_headers: text(SEALED_HEADERS),
                    content_length: text("content-length").and_then(|v| v.parse().ok()),
                    relay_error: text(crate::exchange::RELAY_ERROR_HEADER),
                });
            }

            if is_relay_error(status, &parts.headers) {
                let raw = read_small(incoming, "reading the relay error").await?;
                let err = relay_error(status, &parts.headers, &raw);
                let Some(recovery) = Recovery::for_status(status) else {
                    return Err(err);
                };
                retry = Some(
                    self.recover(lease, &session, recovery, replayable, attempt, err)
                        .await?,
                );
                attempt += 1;
                self.inner.retries.fetch_add(1, Ordering::Relaxed);
                continue;
            }

            let opened = open_response_head(&keys, &head, &session.token, status, &parts.headers)?;
            if let Some(t) = opened.new_token.clone() {
                self.update_token(t);
            }
            let status = StatusCode::from_u16(status)
                .map_err(|_| Error::BadResponse("invalid status code"))?;
            let source: RequestBody = incoming
                .map_err(|e| -> BoxError { Box::new(e) })
                .boxed_unsync();
            let body = ResponseBody::sealed(source, &keys, &opened)
                .with_lease(lease, self.inner.observer.clone());
            return Ok(RelayResponse::new(status, &opened, parts.headers, body));
        }
    }
}

fn pair_id_of(lease: &PairLease) -> PairId {
    lease.pair_id().unwrap_or(PairId([0; 16]))
}

/// Reads a small body (relay error, pairing answer), bounded.
async fn read_small(body: hyper::body::Incoming, context: &'static str) -> Result<Bytes, Error> {
    Limited::new(body, MAX_SMALL_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| Error::Http { context, source: e })
}

/// A request being built; send it with [`send`](Self::send).
#[must_use = "a request does nothing until sent"]
pub struct RequestBuilder {
    client: RelayClient,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Body,
    seal: SealOptions,
    error: Option<Error>,
}

impl core::fmt::Debug for RequestBuilder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RequestBuilder")
            .field("method", &self.method)
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}

impl RequestBuilder {
    /// Adds a header (appended: repeated names are kept in order).
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        K: TryInto<HeaderName>,
        V: TryInto<HeaderValue>,
    {
        match (name.try_into(), value.try_into()) {
            (Ok(n), Ok(v)) => {
                self.headers.append(n, v);
            }
            _ => {
                self.error
                    .get_or_insert(Error::InvalidRequest("invalid header name or value".into()));
            }
        }
        self
    }

    /// Adds every header of `headers`.
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        for (name, value) in &headers {
            self.headers.append(name.clone(), value.clone());
        }
        self
    }

    /// Sets the body (bytes: sized and replayable; see [`Body`] for streams).
    pub fn body(mut self, body: impl Into<Body>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets a JSON body and `content-type: application/json`.
    pub fn json<T: serde::Serialize + ?Sized>(mut self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(v) => {
                self.headers
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                self.body = Body::Bytes(v.into());
            }
            Err(e) => {
                self.error.get_or_insert(Error::Body(Box::new(e)));
            }
        }
        self
    }

    /// Seals the path and query of this request (default: the client's setting).
    pub fn encode_url(mut self, on: bool) -> Self {
        self.seal.encode_url = on;
        self
    }

    /// Which headers of this request are sealed (default: the client's setting).
    pub fn seal_headers(mut self, selection: HeaderSelection) -> Self {
        self.seal.headers = selection;
        self
    }

    /// Sends the request and opens the response head. The body is read from the returned
    /// response; the pair stays checked out until it is read to the end or dropped.
    pub async fn send(self) -> Result<RelayResponse, Error> {
        let client = self.client.clone();
        client.execute(self).await
    }
}
