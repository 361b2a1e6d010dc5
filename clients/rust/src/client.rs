//! [`RelayClient`]: a pqrelay client over the send / recover engine ([`crate::engine`]) with
//! its pairs in this process ([`crate::local`]).

use std::path::PathBuf;
use std::sync::Arc;

use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use http::{Method, Uri};
use pqrelay_protocol::{ClientIdToken, KeyId, RelayInfo};

use crate::body::Body;
use crate::engine::{origin_of, Engine, EngineError, EngineSettings, Outgoing, Sent};
use crate::error::Error;
use crate::exchange::{HeaderSelection, SealOptions};
use crate::local::{LocalPairs, Persist};
use crate::observer::{WireEvent, WireObserver};
use crate::pool::PoolStats;
use crate::response::RelayResponse;
use crate::transport::{http_client, HttpClient, HttpOptions};
use crate::trust_store::TrustStore;

/// Default number of pairs paired at first use (and per growth step).
pub const DEFAULT_PAIRS: usize = 5;
/// Default bound on the pool (never above the relay's `max-pairs`).
pub const DEFAULT_MAX_PAIRS: usize = 25;

/// Counters of a client, for tests that assert re-pairing happened and for monitoring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    /// The pair pool.
    pub pool: PoolStats,
    /// Discoveries done (the first one included).
    pub discoveries: u64,
    /// Requests sent again after a relay error (§11.1 action, then a new attempt).
    pub retries: u64,
    /// Requests sent again on a new connection: idempotent exchanges whose connection failed
    /// before an answer; discoveries and pairings written on a reused keep-alive connection
    /// that closed before any answer byte.
    pub connection_retries: u64,
    /// Non-idempotent requests sent again with flag `retry` on the same pair (§12).
    pub retry_attempts: u64,
    /// Requests that ended with [`Error::OutcomeUnknown`].
    pub outcomes_unknown: u64,
    /// Times the relay handed back a re-signed token that was stored.
    pub token_updates: u64,
    /// Discoveries and pairings sent again after a 429 (`rate_limited`) or 503 (e.g.
    /// `pairing_busy`) answer, once its `Retry-After` had passed (§11.1; at most
    /// [`PAIRING_ATTEMPTS`](crate::engine::PAIRING_ATTEMPTS) attempts in all).
    pub busy_retries: u64,
}

/// A pqrelay client: discovers the relay, keeps a pool of pairs and sends sealed requests.
///
/// Cheap to clone (`Arc` inside), `Send + Sync`: share one across tasks. Discovery and the
/// first pairing happen on first use, or eagerly with [`connect`](Self::connect).
///
/// **Trust** (§13): with [`ClientBuilder::pin`], the client pairs only with those relay keys.
/// Without pins it trusts the keys it stored for this relay origin (in memory, in a
/// [`ClientBuilder::trust_store`] file, or given with [`ClientBuilder::trusted_keys`]), and at
/// first contact the relay's current key; after every confirmed pairing it stores the keys the
/// relay confirmed. A key it does not trust, or a pairing the relay does not confirm, is a hard
/// error ([`Error::RelayKeyNotTrusted`], [`Error::PairingNotConfirmed`]) naming the
/// fingerprints.
#[derive(Clone)]
pub struct RelayClient {
    engine: Arc<Engine<LocalPairs>>,
    seal: SealOptions,
}

impl core::fmt::Debug for RelayClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RelayClient")
            .field("base", self.engine.base_url())
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
    pins: Vec<String>,
    trusted: Vec<String>,
    trust_store: Option<PathBuf>,
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

    /// A stored client id token to present at discovery (see [`RelayClient::token`]); it
    /// takes precedence over the one of a [`trust_store`](Self::trust_store).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Pins a relay key by its fingerprint (`sha256:` and 43 characters, as `pqrelay keygen`
    /// and `pqrelay check-config` print it); repeatable. With pins, the client pairs only with
    /// these keys, whatever it stored (§13).
    pub fn pin(mut self, fingerprint: impl Into<String>) -> Self {
        self.pins.push(fingerprint.into());
        self
    }

    /// Relay keys trusted on first use that the application stored (see
    /// [`RelayClient::trusted_keys`]), as fingerprints; with a
    /// [`trust_store`](Self::trust_store) they are added to its own.
    pub fn trusted_keys<I, F>(mut self, fingerprints: I) -> Self
    where
        I: IntoIterator<Item = F>,
        F: Into<String>,
    {
        self.trusted
            .extend(fingerprints.into_iter().map(Into::into));
        self
    }

    /// Keeps the client id token and the relay keys trusted on first use in this
    /// known-relays file ([`crate::trust_store`]), under the relay's origin: read at
    /// [`build`](Self::build), written whenever they change.
    pub fn trust_store(mut self, path: impl Into<PathBuf>) -> Self {
        self.trust_store = Some(path.into());
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
    /// or fingerprint that is malformed, an unreadable or malformed trust store, or an
    /// unusable CA file. Does no network I/O.
    pub fn build(self) -> Result<RelayClient, Error> {
        let base = parse_base(&self.base)?;
        let origin = origin_of(&base);
        let persist = self.trust_store.map(|path| Persist {
            store: TrustStore::new(path),
            origin: origin.clone(),
        });
        let known = match &persist {
            Some(p) => p.store.load(&origin)?.unwrap_or_default(),
            None => Default::default(),
        };
        let initial_token = match &self.token {
            Some(t) => Some(
                ClientIdToken::parse(t.trim())
                    .map_err(|_| Error::InvalidRequest("malformed client id token".into()))?,
            ),
            None => known.token,
        };
        let pins = parse_fingerprints(&self.pins)?;
        let mut trusted = known.trusted;
        for key in parse_fingerprints(&self.trusted)? {
            if !trusted.contains(&key) {
                trusted.push(key);
            }
        }
        let http = match self.http {
            Some(h) => h,
            None => http_client(&self.http_options)?,
        };
        let max_pairs = self.max_pairs;
        let pairs = LocalPairs::new(self.pairs.min(max_pairs), max_pairs, trusted, persist);
        let settings = EngineSettings {
            initial_token,
            pins,
            observer: self.observer,
            ..EngineSettings::default()
        };
        Ok(RelayClient {
            engine: Arc::new(Engine::new(base, http, pairs, settings)),
            seal: self.seal,
        })
    }
}

/// Parses fingerprints (`sha256:` and 43 characters of base64url).
fn parse_fingerprints(list: &[String]) -> Result<Vec<KeyId>, Error> {
    list.iter()
        .map(|f| {
            KeyId::parse_fingerprint(f.trim()).map_err(|_| {
                Error::InvalidRequest(format!(
                    "{f:?} is not a relay key fingerprint (sha256: and 43 characters of base64url)"
                ))
            })
        })
        .collect()
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
            pins: Vec::new(),
            trusted: Vec::new(),
            trust_store: None,
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
            seal: self.seal.clone(),
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
        self.engine.ready().await.map_err(client_error)
    }

    /// The hyper client this client sends through (share it for plain traffic).
    pub fn http(&self) -> &HttpClient {
        self.engine.http()
    }

    /// The relay base URL.
    pub fn base_url(&self) -> &Uri {
        self.engine.base_url()
    }

    /// The current client id token (persist it and pass it to [`ClientBuilder::token`] to
    /// keep the same id); `None` before discovery.
    pub fn token(&self) -> Option<String> {
        self.engine.source().token().map(|t| t.encode())
    }

    /// The relay's `x-mte-relay-info` parameters; `None` before discovery.
    pub fn relay_info(&self) -> Option<RelayInfo> {
        self.engine.relay_info()
    }

    /// The relay's origin (`scheme://host:port`), the key of its trust store entry.
    pub fn origin(&self) -> &str {
        self.engine.origin()
    }

    /// The relay keys trusted on first use for this relay (persist them beside the token and
    /// pass them to [`ClientBuilder::trusted_keys`]); empty before the first confirmed
    /// pairing. Pins are not listed.
    pub fn trusted_keys(&self) -> Vec<KeyId> {
        self.engine.source().trusted()
    }

    /// The relay keys offered at the last discovery, current first; `None` before discovery.
    pub fn offered_keys(&self) -> Option<Vec<KeyId>> {
        self.engine.offered_keys()
    }

    /// Counters: pool state, pairings, discoveries, retries.
    pub fn stats(&self) -> ClientStats {
        let engine = self.engine.stats();
        ClientStats {
            pool: self.engine.source().stats(),
            discoveries: engine.discoveries,
            retries: engine.retries,
            connection_retries: engine.connection_retries,
            retry_attempts: engine.retry_attempts,
            outcomes_unknown: engine.outcomes_unknown,
            token_updates: engine.token_updates,
            busy_retries: engine.busy_retries,
        }
    }
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
    ///
    /// A `POST`, `PUT` or `PATCH` without a body is sent with an empty one
    /// (`content-length: 0`). A request that is not idempotent (§12: not `GET HEAD OPTIONS
    /// TRACE PUT DELETE` and no `idempotency-key` header) is never run twice: when the client
    /// cannot know whether the upstream ran it, the answer is [`Error::OutcomeUnknown`].
    pub async fn send(mut self) -> Result<RelayResponse, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let carries_content = [Method::POST, Method::PUT, Method::PATCH].contains(&self.method);
        if carries_content && matches!(self.body, Body::Empty) {
            self.body = Body::Bytes(Default::default());
        }
        let outgoing = Outgoing {
            method: self.method,
            path_and_query: self.path,
            headers: self.headers,
            seal: self.seal,
        };
        let sent = self.client.engine.send(&outgoing, self.body).await;
        let Sent {
            response, lease, ..
        } = sent.map_err(client_error)?;
        Ok(response.with_lease(lease))
    }
}

/// The client's error for an engine error (its pair source fails only on its trust store).
fn client_error(e: EngineError<Error>) -> Error {
    match e {
        EngineError::Exchange(e) | EngineError::StreamCut(e) | EngineError::Source(e) => e,
    }
}
