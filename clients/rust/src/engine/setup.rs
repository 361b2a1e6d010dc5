//! What the engine does before an exchange: discovery (§5), the choice of a trusted relay key
//! and pairing (§6, §13), obtaining a pair from the source, pairing a fresh pair in place of a
//! failed one, adopting a re-signed token.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER};
use http::uri::PathAndQuery;
use http::{Request, Response, Uri};
use http_body_util::{BodyExt as _, Limited};
use pqrelay_protocol::kem::{ESEED_SIZE, SEED_SIZE};
use pqrelay_protocol::names::{
    DISCOVERY_PATH, INFO_HEADER, JSON_CONTENT_TYPE, KEYS_HEADER, PAIRING_PATH, RELAY_HEADER,
};
use pqrelay_protocol::{
    ClientId, ClientIdToken, ClientPair, ClientPairing, DecapsulationSeed, KeyId, PairId,
    RelayHeader, RelayHeaderError, RelayInfo, RelayInfoError, RelayKeyConfig, RelayKeyError,
    RelayKeys,
};

use super::{Engine, EngineError, RelayView};
use crate::error::Error;
use crate::exchange::relay_error;
use crate::observer::WireEvent;
use crate::recovery::{Recovery, Repair};
use crate::reuse::closed_unanswered;
use crate::source::{Discovered, Leased, Obtained, PairSource, PoolSession as _};
use crate::transport::{empty_body, full_body, RequestBody};

/// Largest relay error or pairing answer body read.
const MAX_SMALL_BODY: usize = 64 * 1024;
/// Most relay key ids kept as trusted on first use (confirmed keys first, then older ones).
pub const MAX_TRUSTED_KEYS: usize = 32;

/// Most attempts of one discovery or pairing request that the relay refuses with 429
/// (`rate_limited`) or 503 (`pairing_busy`, ...): the first, and after each refusal its
/// `Retry-After` wait ([`retry_after`]) and one more, so at most two waits (§11.1). The last
/// refusal goes to the caller as [`Error::Relay`]. A refused pairing created no pair (the relay
/// refuses before anything else), so sending it again (with fresh pair ids) is safe; sealed
/// exchanges are never sent again for this (§12 decides).
pub const PAIRING_ATTEMPTS: u32 = 3;
/// The longest `Retry-After` honoured: a larger value waits this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// The most random jitter added to a `Retry-After` wait (0 to this, uniformly), so that clients
/// refused together do not all come back at the same instant.
pub const RETRY_JITTER: Duration = Duration::from_millis(250);

/// How long to wait before sending again a discovery or pairing answered `status` with
/// `headers`, jitter not included: `None` unless `status` is 429 or 503; else `Retry-After` in
/// delta-seconds, at most [`MAX_RETRY_AFTER`], and 1 s when it is absent or not delta-seconds
/// (an HTTP-date is not honoured).
pub fn retry_after(status: u16, headers: &HeaderMap) -> Option<Duration> {
    if status != 429 && status != 503 {
        return None;
    }
    let seconds = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .map_or(1, |v| v.parse::<u64>().unwrap_or(u64::MAX));
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

/// `wait` plus random jitter of 0 to [`RETRY_JITTER`].
fn with_jitter(wait: Duration) -> Duration {
    let max = RETRY_JITTER.as_millis() as u64;
    let r = random::<2>().map_or(0, u16::from_le_bytes);
    wait + Duration::from_millis(u64::from(r) % (max + 1))
}

/// `count` random pair ids (OS randomness).
pub fn random_pair_ids(count: usize) -> Result<Vec<PairId>, Error> {
    (0..count).map(|_| random::<16>().map(PairId)).collect()
}

/// The client side of a pairing request of client `id` to `relay_key` for the pair ids `ids`,
/// with fresh random `eseed_R` and ephemeral X-Wing seed (§6).
pub fn seeded_pairing(
    id: ClientId,
    relay_key: &RelayKeyConfig,
    ids: Vec<PairId>,
) -> Result<ClientPairing, Error> {
    let eseed = random::<ESEED_SIZE>()?;
    let seed = DecapsulationSeed::from_bytes(random::<SEED_SIZE>()?);
    Ok(ClientPairing::new(id, relay_key, &eseed, &seed, ids)?)
}

fn random<const N: usize>() -> Result<[u8; N], Error> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b)
        .map_err(|e| Error::http("reading OS randomness", e.to_string()))?;
    Ok(b)
}

/// `keys` first, then the ids of `before` not among them, at most [`MAX_TRUSTED_KEYS`]: what
/// trust on first use stores after a confirmed pairing (§13).
pub fn merge_trusted(keys: &[KeyId], before: &[KeyId]) -> Vec<KeyId> {
    let mut all = keys.to_vec();
    all.extend(before.iter().filter(|k| !keys.contains(k)));
    all.truncate(MAX_TRUSTED_KEYS);
    all
}

/// Reads a small body (relay error, pairing answer), bounded.
pub(super) async fn read_small(
    body: hyper::body::Incoming,
    context: &'static str,
) -> Result<Bytes, Error> {
    Limited::new(body, MAX_SMALL_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| Error::Http { context, source: e })
}

/// The value of header `name` as text, if present and visible ASCII.
pub(super) fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The `x-mte-relay` token of a discovery or pairing answer, if it parses.
fn answered_token(headers: &HeaderMap) -> Option<ClientIdToken> {
    let value = headers.get(RELAY_HEADER)?.to_str().ok()?;
    RelayHeader::parse_response(value)
        .ok()?
        .into_discovery()
        .ok()
}

/// `x-mte-relay: 2.<token>` of discovery and pairing requests.
fn discovery_header(token: &ClientIdToken) -> String {
    RelayHeader::Discovery {
        token: token.clone(),
    }
    .encode()
}

impl<S: PairSource> Engine<S> {
    /// The relay's URL with `path_and_query` (a `String` is moved in, not copied).
    pub(super) fn url<T>(&self, path_and_query: T) -> Result<Uri, Error>
    where
        PathAndQuery: TryFrom<T>,
    {
        let mut parts = self.base.clone().into_parts();
        parts.path_and_query = Some(
            PathAndQuery::try_from(path_and_query)
                .map_err(|_| Error::InvalidRequest("unusable request target".into()))?,
        );
        Uri::from_parts(parts).map_err(|_| Error::InvalidRequest("unusable request URL".into()))
    }

    /// Sends a request that `build` can make again (discovery, pairing: nothing is sealed per
    /// attempt), once more on a new connection if the reused connection it was written on
    /// closed before any answer ([`crate::reuse`]). `context` names the request in errors.
    async fn send_rebuildable(
        &self,
        context: &'static str,
        build: impl Fn() -> Result<Request<RequestBody>, Error>,
    ) -> Result<Response<hyper::body::Incoming>, Error> {
        match self.http.request(build()?).await {
            Ok(resp) => Ok(resp),
            Err(e) if closed_unanswered(&e) => {
                self.connection_retry(context);
                (self.http.request_fresh(build()?).await).map_err(|e| Error::http(context, e))
            }
            Err(e) => Err(Error::http(context, e)),
        }
    }

    /// Counts and reports the wait after attempt `attempt` of a discovery or pairing was
    /// refused with `status`, then waits `wait` plus jitter.
    async fn back_off(&self, request: &'static str, status: u16, attempt: u32, wait: Duration) {
        let wait = with_jitter(wait);
        self.counters.busy_retries.fetch_add(1, Ordering::Relaxed);
        self.observe(WireEvent::RetryAfter {
            request,
            status,
            attempt,
            wait_ms: wait.as_millis() as u64,
        });
        tokio::time::sleep(wait).await;
    }

    /// `HEAD /api/mte-relay`, presenting `token` if any (§5): the token, the relay's
    /// parameters and its keys; remembered as the relay's current view. A 429 or 503 answer
    /// is tried again after its `Retry-After` ([`PAIRING_ATTEMPTS`] attempts in all).
    async fn discover_once(&self, token: Option<&ClientIdToken>) -> Result<Discovered, Error> {
        let url = self.url(DISCOVERY_PATH)?;
        let build = || {
            let mut req = Request::head(url.clone());
            if let Some(t) = token {
                req = req.header(RELAY_HEADER, discovery_header(t));
            }
            req.body(empty_body())
                .map_err(|e| Error::http("building the discovery request", e))
        };
        const REQUEST: &str = "discovery (HEAD /api/mte-relay)";
        let mut attempt = 1;
        let resp = loop {
            let resp = self.send_rebuildable(REQUEST, build).await?;
            let status = resp.status().as_u16();
            let wait = retry_after(status, resp.headers());
            let Some(wait) = wait.filter(|_| attempt < PAIRING_ATTEMPTS) else {
                break resp;
            };
            let text = |name: &str| header_text(resp.headers(), name);
            self.observe(WireEvent::Discovery {
                status,
                relay_header: text(RELAY_HEADER),
                relay_info: text(INFO_HEADER),
                relay_keys: Vec::new(),
            });
            drop(resp);
            self.back_off(REQUEST, status, attempt, wait).await;
            attempt += 1;
        };
        self.counters.discoveries.fetch_add(1, Ordering::Relaxed);
        let status = resp.status().as_u16();
        let text = |name: &str| header_text(resp.headers(), name);
        let Some(value) = text(RELAY_HEADER) else {
            self.observe(WireEvent::Discovery {
                status,
                relay_header: None,
                relay_info: text(INFO_HEADER),
                relay_keys: Vec::new(),
            });
            return Err(Error::NotARelay { status });
        };
        let keys = text(KEYS_HEADER)
            .ok_or(RelayKeyError::NoneUsable)
            .and_then(|v| RelayKeys::parse(&v));
        self.observe(WireEvent::Discovery {
            status,
            relay_header: Some(value.clone()),
            relay_info: text(INFO_HEADER),
            relay_keys: keys
                .iter()
                .flat_map(|k| k.ids())
                .map(|k| k.fingerprint())
                .collect(),
        });
        let token = match RelayHeader::parse_response(&value).map(RelayHeader::into_discovery) {
            Ok(Ok(token)) => token,
            Ok(Err(_)) => return Err(Error::BadResponse("discovery answered an exchange header")),
            Err(RelayHeaderError::VersionUnsupported) => return Err(Error::VersionUnsupported),
            Err(e) => return Err(e.into()),
        };
        let info = text(INFO_HEADER)
            .ok_or(RelayInfoError::Malformed("x-mte-relay-info missing"))
            .and_then(|v| RelayInfo::parse(&v))
            .map_err(|e| match e {
                RelayInfoError::Unsupported(_) => Error::VersionUnsupported,
                e => e.into(),
            })?;
        let keys = keys?;
        let view = RelayView {
            info: info.clone(),
            keys: keys.clone(),
        };
        *self.relay.write().unwrap_or_else(|e| e.into_inner()) = Some(view);
        Ok(Discovered { token, info, keys })
    }

    /// The session, discovering first if there is none.
    pub(super) async fn session(&self) -> Result<S::Session, EngineError<S::Error>> {
        if let Some(s) = self.source.session().await.map_err(EngineError::Source)? {
            return Ok(s);
        }
        let _guard = self.discover_lock.lock().await;
        if let Some(s) = self.source.session().await.map_err(EngineError::Source)? {
            return Ok(s);
        }
        let found = Box::pin(self.discover_once(self.settings.initial_token.as_ref())).await?;
        (self.source.install(found, None, false).await).map_err(EngineError::Source)
    }

    /// Re-discovers with `stale`'s token unless another task (or relay) already replaced
    /// `stale`; `reset` as for [`PairSource::install`].
    pub(super) async fn rediscover(
        &self,
        stale: &S::Session,
        reset: bool,
    ) -> Result<S::Session, EngineError<S::Error>> {
        let _guard = self.discover_lock.lock().await;
        if let Some(current) = (self.source.replaced(stale).await).map_err(EngineError::Source)? {
            return Ok(current);
        }
        let found = self.discover_once(Some(stale.token())).await?;
        (self.source.install(found, Some(stale), reset).await).map_err(EngineError::Source)
    }

    /// Stores a re-signed token of `session`'s client id; returns the session to go on with.
    pub(super) async fn adopt(&self, session: &S::Session, token: ClientIdToken) -> S::Session {
        if token.id() != session.token().id() || token == *session.token() {
            return session.clone();
        }
        match self.source.adopt(session, token).await {
            Some(adopted) => {
                let n = &self.counters.token_updates;
                n.fetch_add(1, Ordering::Relaxed);
                adopted
            }
            None => session.clone(),
        }
    }

    /// The relay's view (parameters, offered keys): the last discovery's, or a discovery now
    /// presenting `session`'s token (another relay of a fleet may have discovered).
    async fn view(&self, session: &S::Session) -> Result<RelayView, Error> {
        if let Some(view) = self.relay_view() {
            return Ok(view);
        }
        let _guard = self.discover_lock.lock().await;
        if let Some(view) = self.relay_view() {
            return Ok(view);
        }
        let found = self.discover_once(Some(session.token())).await?;
        Ok(RelayView {
            info: found.info,
            keys: found.keys,
        })
    }

    /// The relay key to pair with (§13): the first offered key that is pinned, or stored on
    /// first use, or (nothing stored yet) the first offered key. None is a hard error.
    fn choose_key(
        &self,
        session: &S::Session,
        offered: &RelayKeys,
    ) -> Result<RelayKeyConfig, Error> {
        let pinned = !self.settings.pins.is_empty();
        let trusted = if pinned {
            &self.settings.pins[..]
        } else {
            session.trusted()
        };
        match offered.choose(trusted) {
            Ok(key) => Ok(key.clone()),
            Err(_) => Err(Error::RelayKeyNotTrusted {
                origin: self.origin.clone(),
                pinned,
                trusted: trusted.to_vec(),
                offered: offered.ids(),
            }),
        }
    }

    /// `POST /api/mte-pair` for up to `count` fresh pairs (at most the relay's `max-pairs`)
    /// with a trusted relay key (§6, §13). Returns the pairs and the session to go on with
    /// (the answer may carry a re-signed token; trust on first use stores the confirmed keys).
    /// A 429 or 503 answer is tried again after its `Retry-After` ([`PAIRING_ATTEMPTS`]
    /// attempts in all).
    async fn pair(
        &self,
        session: &S::Session,
        count: usize,
    ) -> Result<(Vec<ClientPair>, S::Session), EngineError<S::Error>> {
        const REQUEST: &str = "pairing (POST /api/mte-pair)";
        let view = self.view(session).await?;
        let count = count.clamp(1, view.info.pairs_per_request());
        let key = self.choose_key(session, &view.keys)?;
        let url = self.url(PAIRING_PATH)?;
        let relay_header = discovery_header(session.token());
        let mut attempt = 1;
        let (pairing, parts, body) = loop {
            // Fresh randomness and pair ids for every attempt (§6).
            let pairing = seeded_pairing(session.token().id(), &key, random_pair_ids(count)?)?;
            let body = Bytes::copy_from_slice(pairing.request_body());
            let request_len = body.len();
            let build = || {
                Request::post(url.clone())
                    .header(RELAY_HEADER, relay_header.as_str())
                    .header(CONTENT_TYPE, JSON_CONTENT_TYPE)
                    .body(full_body(body.clone()))
                    .map_err(|e| Error::http("building the pairing request", e))
            };
            let resp = self.send_rebuildable(REQUEST, build).await?;
            let (parts, incoming) = resp.into_parts();
            let body = read_small(incoming, "reading the pairing answer").await?;
            let status = parts.status.as_u16();
            self.observe(WireEvent::Pairing {
                pairs: count,
                status,
                request_len,
                response_len: body.len(),
                relay_key: key.id().fingerprint(),
            });
            let wait = retry_after(status, &parts.headers);
            let Some(wait) = wait.filter(|_| attempt < PAIRING_ATTEMPTS) else {
                break (pairing, parts, body);
            };
            self.back_off(REQUEST, status, attempt, wait).await;
            attempt += 1;
        };
        let status = parts.status.as_u16();
        if status != 200 {
            return Err(relay_error(status, &parts.headers, &body, None).into());
        }
        let confirmed = pairing
            .complete(&body)
            .map_err(|reason| Error::PairingNotConfirmed {
                origin: self.origin.clone(),
                reason,
            })?;
        let mut session = match answered_token(&parts.headers) {
            Some(t) => self.adopt(session, t).await,
            None => session.clone(),
        };
        let trusted = merge_trusted(&confirmed.keys, session.trusted());
        if self.settings.pins.is_empty() && trusted != session.trusted() {
            let stored = self.source.trust(&session, trusted).await;
            session = stored.map_err(EngineError::Source)?;
        }
        let pairs = confirmed.pairs.into_iter().map(|(_, p)| p).collect();
        Ok((pairs, session))
    }

    /// Obtains a pair from the source, pairing (and re-discovering once) as needed: after
    /// 560 or 566, and after `400 unknown_relay_key` (§13: if the key is still offered and
    /// still refused, the error goes to the caller).
    pub(super) async fn lease(&self) -> Result<Leased<S>, EngineError<S::Error>> {
        let mut rediscovered = false;
        loop {
            let session = self.session().await?;
            let obtained = self.source.obtain(&session).await;
            let (count, ticket, session) = match obtained.map_err(EngineError::Source)? {
                Obtained::Leased(lease, session) => return Ok((lease, session)),
                Obtained::Again => continue,
                Obtained::Pair {
                    count,
                    ticket,
                    session,
                } => (count, ticket, session),
            };
            let e = match Box::pin(self.pair(&session, count)).await {
                Ok((pairs, session)) => {
                    let paired = self.source.paired(ticket, &session, pairs).await;
                    if let Some(leased) = paired.map_err(EngineError::Source)? {
                        return Ok(leased);
                    }
                    continue;
                }
                Err(e) => e,
            };
            drop(ticket);
            let (status, unknown_key) = match &e {
                EngineError::Exchange(Error::Relay { status, code, .. }) => {
                    (*status, code == "unknown_relay_key")
                }
                _ => return Err(e),
            };
            let recovery = Recovery::for_status(status).filter(|r| r.rediscover);
            if rediscovered || !(unknown_key || recovery.is_some()) {
                return Err(e);
            }
            rediscovered = true;
            self.observe(WireEvent::Recovery {
                status,
                action: "re-discover",
                retried: true,
            });
            let reset = recovery.is_some_and(|r| r.repair == Repair::All);
            Box::pin(self.rediscover(&session, reset)).await?;
        }
    }

    /// Pairs a fresh pair under `current` in place of the pair of `lease` (§11.1 re-pair; a
    /// pair id is never replaced, so it has a new id) for a resend on exactly that pair.
    /// Returns the session the fresh pair belongs to.
    pub(super) async fn repair_in_place(
        &self,
        lease: &mut S::Lease,
        current: &S::Session,
    ) -> Result<S::Session, EngineError<S::Error>> {
        let (mut fresh, session) = self.pair(current, 1).await?;
        let fresh = fresh
            .pop()
            .ok_or(Error::BadResponse("the pairing answer has no pair"))?;
        self.source.repaired(lease, fresh, &session);
        Ok(session)
    }
}
