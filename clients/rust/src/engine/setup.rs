//! What the engine does before an exchange: discovery (§4), pairing (§5), obtaining a pair from
//! the source, re-pairing a pair in place, adopting a re-signed token.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::header::{HeaderMap, CONTENT_TYPE};
use http::{Request, Response, Uri};
use http_body_util::{BodyExt as _, Limited};
use pqrelay_protocol::kem::SEED_SIZE;
use pqrelay_protocol::{
    ClientIdToken, ClientPair, ClientPairing, DecapsulationSeed, PairId, RelayHeader, RelayInfo,
};

use super::{Engine, EngineError};
use crate::error::Error;
use crate::exchange::{relay_error, RELAY_HEADER, RELAY_INFO_HEADER};
use crate::observer::WireEvent;
use crate::recovery::{Recovery, Repair};
use crate::reuse::closed_unanswered;
use crate::source::{Discovered, Leased, Obtained, PairSource, PoolSession as _};
use crate::transport::{empty_body, full_body, RequestBody};

/// Largest relay error or pairing answer body read.
const MAX_SMALL_BODY: usize = 64 * 1024;

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
    match RelayHeader::parse(value).ok()? {
        RelayHeader::Discovery { token } => Some(token),
        RelayHeader::Exchange(h) => Some(h.token),
    }
}

impl<S: PairSource> Engine<S> {
    pub(super) fn url(&self, path_and_query: &str) -> Result<Uri, Error> {
        let mut parts = self.base.clone().into_parts();
        parts.path_and_query = Some(
            path_and_query
                .parse()
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

    /// `HEAD /api/mte-relay`, presenting `token` if any.
    async fn discover_once(&self, token: Option<&ClientIdToken>) -> Result<Discovered, Error> {
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
        self.counters.discoveries.fetch_add(1, Ordering::Relaxed);
        let status = resp.status().as_u16();
        let text = |name: &str| header_text(resp.headers(), name);
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
        Ok(Discovered { token, info })
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
        let found = self
            .discover_once(self.settings.initial_token.as_ref())
            .await?;
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

    /// `POST /api/mte-pair` for the pair ids `ids` (fresh X-Wing keys; the relay replaces the
    /// state of a pair id it already has, §5). Returns the pairs and the session to go on with
    /// (the answer may carry a re-signed token).
    async fn pair_ids(
        &self,
        session: &S::Session,
        ids: Vec<PairId>,
    ) -> Result<(Vec<ClientPair>, S::Session), Error> {
        let count = ids.len();
        let pairing = seeded_pairing(&ids)?;
        let body = Bytes::from(pairing.request_body());
        let request_len = body.len();
        let url = self.url("/api/mte-pair")?;
        let build = || {
            Request::post(url.clone())
                .header(RELAY_HEADER, format!("1.{}", session.token()))
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
        let pairs = pairing.complete(&session.token().id(), &body)?;
        let session = match answered_token(&parts.headers) {
            Some(t) => self.adopt(session, t).await,
            None => session.clone(),
        };
        Ok((pairs, session))
    }

    /// Obtains a pair from the source, pairing (and re-discovering once) as needed.
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
            let ids = random_pair_ids(count)?;
            match self.pair_ids(&session, ids).await {
                Ok((pairs, session)) => {
                    let paired = self.source.paired(ticket, &session, pairs).await;
                    if let Some(leased) = paired.map_err(EngineError::Source)? {
                        return Ok(leased);
                    }
                }
                Err(e) => {
                    drop(ticket);
                    let status = e.relay_status().unwrap_or(0);
                    match Recovery::for_status(status) {
                        Some(r) if r.rediscover && !rediscovered => {
                            rediscovered = true;
                            self.observe(WireEvent::Recovery {
                                status,
                                action: "re-discover",
                                retried: true,
                            });
                            self.rediscover(&session, r.repair == Repair::All).await?;
                        }
                        _ => return Err(e.into()),
                    }
                }
            }
        }
    }

    /// Re-pairs pair `pid` of `lease` in place (same pair id) under `current`, for a retry on
    /// exactly that pair (§11). Returns the session the fresh pair belongs to.
    pub(super) async fn repair_in_place(
        &self,
        lease: &mut S::Lease,
        pid: PairId,
        current: &S::Session,
    ) -> Result<S::Session, EngineError<S::Error>> {
        let (mut fresh, session) = self.pair_ids(current, vec![pid]).await?;
        let fresh = fresh
            .pop()
            .ok_or(Error::BadResponse("the pairing answer has no pair"))?;
        self.source.repaired(lease, fresh, &session);
        Ok(session)
    }
}
