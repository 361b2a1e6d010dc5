//! Outbound mode (the vendor's "API Relay", server-to-server): this relay acts as a pqrelay
//! client for services behind it.
//!
//! With `OUTBOUND_TOKEN` set, a plain request carrying
//!
//! ```text
//! x-mte-outbound-token: <OUTBOUND_TOKEN>
//! x-mte-upstream: https://partner-relay.example     (an origin listed in OUTBOUND_UPSTREAMS)
//! x-mte-encode-headers: true | false | a,b,c        (optional, default true)
//! x-mte-encode-url: true | false                    (optional, default true)
//! ```
//!
//! is sealed by this relay (method, path and query, headers, body), sent to the remote relay,
//! and the remote's sealed answer is opened and returned plain. One [`client::Remote`] per
//! listed remote relay does discovery, pairing and recovery from 559–569 (re-pair,
//! re-discover, retry once when the body is replayable); its client id and pairs live in the
//! configured store ([`crate::store::outbound`]: memory, or Redis with `REDIS_URL`), so every
//! relay sharing the store shares them: one relay pairs, the others lease the same pairs.
//!
//! # A request's life
//!
//! 1. [`handle`], first thing in `request_filter`: a request with either control header is an
//!    outbound request. No or a wrong token → 401 (compared in constant time, never logged);
//!    no `x-mte-upstream` → 400; a remote relay not in `OUTBOUND_UPSTREAMS` → 403 (this is no
//!    open proxy).
//! 2. The `x-mte-*` control headers, `host`, framing and hop-by-hop headers are removed; the
//!    rest is sealed (as `x-mte-encode-headers` says) and forwarded by the remote relay.
//! 3. Body: up to [`REPLAY_BUFFER`] bytes are read first. A body that ends within them is sent
//!    as bytes (sized, replayable: a remote relay that lost its pairs, e.g. restarted, is
//!    re-paired and the request retried, the caller sees success). A longer body streams
//!    through a bounded channel ([`CHANNEL_DEPTH`] pieces) into the client's sealing body:
//!    sized when the caller sent `content-length`, streaming (chunked) otherwise. Memory stays
//!    bounded whatever the size; a streamed body cannot be replayed, so a recoverable remote
//!    error on it (the remote relay lost its state, e.g. restarted) is answered 502
//!    `outbound_failed` saying so, as is a connection cut mid-body (the remote relay refusing
//!    and closing); the shared pool is reset, and the next request pairs afresh.
//! 4. The opened response head is written (decoded headers, `content-length` when the remote
//!    sent a sized body, chunked otherwise) and the body streamed back record by record.
//!
//! The request body is read completely before the response is relayed (half duplex): an
//! upstream that answers while still reading a large body sees its answer held until then.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method};
use pingora_error::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;
use pingora_proxy::Session;
use pqrelay_client::engine::Outgoing;
use pqrelay_client::exchange::SealOptions;
use pqrelay_client::{Body, HeaderSelection, HttpOptions};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::values::parse_upstreams;
use crate::config::{Config, UpstreamSpec};
use crate::error::{ErrorKind, Refusal};
use crate::http::ctx::{RequestCtx, RouteKind};
use crate::http::reply::finish_response;
use crate::store::outbound::{OutboundBackend, OutboundPairs};
use crate::store::outbound_memory::OutboundMemory;
use crate::store::outbound_redis::OutboundRedis;
use crate::store::StoreConfig;

pub(crate) mod client;

use client::{Answer, OutboundError, Remote};

/// The header carrying `OUTBOUND_TOKEN`.
pub(crate) const TOKEN_HEADER: &str = "x-mte-outbound-token";
/// The header naming the remote relay (an origin).
pub(crate) const UPSTREAM_HEADER: &str = "x-mte-upstream";
/// Which request headers are sealed: `true` (all, the default), `false` (none but
/// `content-type`) or a comma-separated list of names.
pub(crate) const ENCODE_HEADERS_HEADER: &str = "x-mte-encode-headers";
/// Whether the path and query are sealed: `true` (the default) or `false`.
pub(crate) const ENCODE_URL_HEADER: &str = "x-mte-encode-url";
/// Request bodies up to this size are read whole and sent replayable.
pub(crate) const REPLAY_BUFFER: usize = 64 * 1024;
/// Pieces of a streamed request body in flight between the downstream reader and the sealer.
pub(crate) const CHANNEL_DEPTH: usize = 4;

/// Extra attempts of a replayable request after a transport error (each stale keep-alive
/// connection to a restarted remote relay costs one).
pub(crate) const TRANSPORT_RETRIES: usize = 3;

/// Request headers never forwarded: the client sets framing and `host` itself.
const HOP_BY_HOP: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "expect",
];

/// Outbound mode: the token's digest and one client per allowed remote relay.
pub(crate) struct Outbound {
    token_digest: [u8; 32],
    remotes: Vec<(UpstreamSpec, Remote)>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let remotes: Vec<String> = self.remotes.iter().map(|(s, _)| s.to_string()).collect();
        f.debug_struct("Outbound")
            .field("remotes", &remotes)
            .finish_non_exhaustive()
    }
}

impl Outbound {
    /// Builds outbound mode from `OUTBOUND_TOKEN` / `OUTBOUND_UPSTREAMS` (`Ok(None)` when the
    /// token is not set). No I/O: remote relays are discovered and paired on first use. An
    /// `https` remote is verified against the web PKI roots plus `UPSTREAM_CA_FILE`. Client
    /// state goes to Redis when `REDIS_URL` is set (sealed with `STATE_SECRET`), else memory.
    pub(crate) fn new(config: &Config) -> Result<Option<Outbound>, String> {
        let Some(token) = &config.outbound_token else {
            return Ok(None);
        };
        let http = pqrelay_client::http_client(&http_options(config)?)
            .map_err(|e| format!("outbound HTTP client: {e}"))?;
        let backend: Arc<dyn OutboundBackend> = match StoreConfig::from_config(config).redis {
            Some(redis) => Arc::new(OutboundRedis::new(&redis).map_err(|e| e.to_string())?),
            None => Arc::new(OutboundMemory::default()),
        };
        let secret = config.state_secret();
        let mut remotes = Vec::new();
        for spec in &config.outbound_upstreams {
            let origin = spec.to_string();
            let base = origin
                .parse()
                .map_err(|_| format!("OUTBOUND_UPSTREAMS {spec}: not a URL"))?;
            let pairs = OutboundPairs::new(backend.clone(), secret.expose().as_bytes(), &origin);
            let remote = client::remote(base, http.clone(), pairs, config.max_pool_size);
            remotes.push((spec.clone(), remote));
        }
        Ok(Some(Outbound {
            token_digest: Sha256::digest(token.expose().as_bytes()).into(),
            remotes,
        }))
    }

    /// Whether the presented token is the configured one (constant time, over digests so the
    /// length leaks nothing either).
    fn token_ok(&self, presented: Option<&HeaderValue>) -> bool {
        presented.is_some_and(|v| {
            let digest = Sha256::digest(v.as_bytes());
            bool::from(digest.as_slice().ct_eq(&self.token_digest))
        })
    }

    /// The client of an allowed remote relay.
    fn client_for(&self, spec: &UpstreamSpec) -> Option<&Remote> {
        self.remotes.iter().find(|(s, _)| s == spec).map(|(_, c)| c)
    }
}

/// Options of the HTTP client to remote relays: `UPSTREAM_CONNECT_TIMEOUT_MS`, and the web PKI
/// roots plus `UPSTREAM_CA_FILE` for `https`.
fn http_options(config: &Config) -> Result<HttpOptions, String> {
    let mut options = HttpOptions::default();
    options.connect_timeout = Some(config.limits.upstream_connect_timeout);
    if let Some(ca) = &config.upstream_ca_file {
        let pem =
            std::fs::read(ca).map_err(|e| format!("UPSTREAM_CA_FILE {}: {e}", ca.display()))?;
        options.extra_ca_pem = Some(pem);
    }
    Ok(options)
}

/// How the caller asked the request to be sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SealChoice {
    encode_url: Option<bool>,
    headers: Option<HeaderSelection>,
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// Parses `x-mte-encode-url` and `x-mte-encode-headers`.
fn seal_choice(headers: &HeaderMap) -> Result<SealChoice, &'static str> {
    let text = |name: &str| -> Result<Option<&str>, &'static str> {
        headers
            .get(name)
            .map(|v| {
                v.to_str()
                    .map_err(|_| "an x-mte-encode-* value is not ASCII")
            })
            .transpose()
    };
    let encode_url = match text(ENCODE_URL_HEADER)? {
        None => None,
        Some(v) => Some(parse_bool(v).ok_or("x-mte-encode-url must be true or false")?),
    };
    let headers = match text(ENCODE_HEADERS_HEADER)? {
        None => None,
        Some(v) => Some(match parse_bool(v) {
            Some(true) => HeaderSelection::All,
            Some(false) => HeaderSelection::Only(Vec::new()),
            None => {
                let mut names = Vec::new();
                for n in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    names.push(
                        HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes())
                            .map_err(|_| "x-mte-encode-headers lists an invalid header name")?,
                    );
                }
                HeaderSelection::Only(names)
            }
        }),
    };
    Ok(SealChoice {
        encode_url,
        headers,
    })
}

/// The caller's headers to seal or forward: without `x-mte-*`, `host`, framing and
/// hop-by-hop headers (including those named by `Connection`).
fn forwarded_headers(headers: &HeaderMap) -> HeaderMap {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let n = name.as_str();
        if n.starts_with("x-mte-") || HOP_BY_HOP.contains(&n) || named.iter().any(|c| c == n) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// The first step of `request_filter`: `Ok(None)` when this is not an outbound request (or
/// outbound mode is off); otherwise the request is answered here (`Ok(Some(true))`).
pub(crate) async fn handle(
    outbound: Option<&Outbound>,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Result<Option<bool>> {
    let Some(outbound) = outbound else {
        return Ok(None);
    };
    let req = session.req_header();
    if !req.headers.contains_key(TOKEN_HEADER) && !req.headers.contains_key(UPSTREAM_HEADER) {
        return Ok(None);
    }
    ctx.route = RouteKind::Outbound;
    if !outbound.token_ok(req.headers.get(TOKEN_HEADER)) {
        let kind = ErrorKind::OUTBOUND_UNAUTHORIZED;
        let message = "x-mte-outbound-token is missing or wrong";
        return answer_error(session, ctx, kind, message).await.map(Some);
    }
    let remote = match req.headers.get(UPSTREAM_HEADER).map(|v| v.to_str()) {
        None => Err("an outbound request needs x-mte-upstream: <origin of the remote relay>"),
        Some(Err(_)) => Err("x-mte-upstream is not ASCII"),
        Some(Ok(v)) => match parse_upstreams(v).as_deref() {
            Ok([one]) => Ok(one.clone()),
            _ => Err("x-mte-upstream must be one origin such as https://relay.example.com"),
        },
    };
    let remote = match remote {
        Ok(r) => r,
        Err(message) => {
            let kind = ErrorKind::OUTBOUND_UPSTREAM_MISSING;
            return answer_error(session, ctx, kind, message).await.map(Some);
        }
    };
    let Some(client) = outbound.client_for(&remote) else {
        let kind = ErrorKind::OUTBOUND_UPSTREAM_FORBIDDEN;
        let message = "x-mte-upstream is not one of this relay's OUTBOUND_UPSTREAMS";
        return answer_error(session, ctx, kind, message).await.map(Some);
    };
    let choice = match seal_choice(&req.headers) {
        Ok(c) => c,
        Err(message) => {
            return answer_error(session, ctx, ErrorKind::BAD_REQUEST, message)
                .await
                .map(Some);
        }
    };
    ctx.upstream = Some(Arc::new(remote));
    forward(session, ctx, client, &choice).await.map(Some)
}

/// Answers with an error reply of this row and message.
async fn answer_error(
    session: &mut Session,
    ctx: &mut RequestCtx,
    kind: ErrorKind,
    message: &str,
) -> Result<bool> {
    let refusal = Refusal::new(kind, message.to_owned());
    crate::http::reply::refuse(session, ctx, &refusal).await
}

/// What the caller's request body looks like.
struct BodyPlan {
    /// The request has a body (`content-length` or chunked).
    present: bool,
    /// Its declared length.
    len: Option<u64>,
}

fn body_plan(session: &Session) -> BodyPlan {
    let h = &session.req_header().headers;
    let len = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let chunked = h.get_all(header::TRANSFER_ENCODING).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.to_ascii_lowercase().contains("chunked"))
    });
    BodyPlan {
        present: len.is_some() || chunked,
        len,
    }
}

/// Seals and sends the request, then writes the opened answer.
async fn forward(
    session: &mut Session,
    ctx: &mut RequestCtx,
    client: &Remote,
    choice: &SealChoice,
) -> Result<bool> {
    let req = session.req_header();
    let method = req.method.clone();
    let target = req
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let headers = forwarded_headers(&req.headers);
    let plan = body_plan(session);
    let expects_continue = req
        .headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if plan.present && expects_continue {
        session.write_continue_response().await?;
    }

    // The first REPLAY_BUFFER bytes: a body that ends within them is sent replayable.
    let mut first = BytesMut::new();
    let mut ended = !plan.present;
    while !ended && first.len() < REPLAY_BUFFER {
        match session.read_request_body().await? {
            Some(piece) => first.extend_from_slice(&piece),
            None => ended = true,
        }
    }

    let mut seal = SealOptions::default();
    if let Some(on) = choice.encode_url {
        seal = seal.with_encode_url(on);
    }
    if let Some(sel) = &choice.headers {
        seal = seal.with_headers(sel.clone());
    }
    let request = Outgoing {
        method: method.clone(),
        path_and_query: target,
        headers,
        seal,
    };

    let sent = if ended {
        let body = first.freeze();
        let body = |present: bool| {
            if present {
                Body::Bytes(body.clone())
            } else {
                Body::Empty
            }
        };
        let mut attempt = 0;
        loop {
            match client.send(&request, body(plan.present)).await {
                Err(e) if attempt < TRANSPORT_RETRIES && retryable_transport(&e, &method) => {
                    log::debug!("outbound: retrying after a transport error: {e}");
                    attempt += 1;
                }
                other => break other,
            }
        }
    } else {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(CHANNEL_DEPTH);
        let head = futures::stream::once(futures::future::ready(Ok(first.freeze())));
        let rest = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let stream = head.chain(rest);
        let body = match plan.len {
            Some(len) => Body::sized_stream(stream, len),
            None => Body::stream(stream),
        };
        let downstream = &mut *session;
        let pump = async move {
            loop {
                match downstream.read_request_body().await {
                    Ok(Some(piece)) => {
                        if tx.send(Ok(piece)).await.is_err() {
                            return Ok(()); // the sender gave up; its error says why
                        }
                    }
                    Ok(None) => return Ok(()),
                    Err(e) => {
                        let io = std::io::Error::other("the caller's request body failed");
                        let _ = tx.send(Err(io)).await;
                        return Err(e);
                    }
                }
            }
        };
        let (sent, pumped) = tokio::join!(client.send(&request, body), pump);
        pumped?;
        sent
    };

    let resp = match sent {
        Ok(resp) => resp,
        Err(e) => return refuse(session, ctx, &e).await,
    };
    write_answer(session, ctx, &method, client, resp).await
}

/// Whether a transport failure of a replayable request may be retried: the method is
/// idempotent, or hyper says the request was never sent or the connection closed before an
/// answer (a keep-alive connection the remote relay closed, e.g. when it restarted; the
/// remote relay forwards nothing before the whole sealed head arrived).
fn retryable_transport(e: &OutboundError, method: &Method) -> bool {
    let OutboundError::Exchange(pqrelay_client::Error::Http { source, .. }) = e else {
        return false;
    };
    if method.is_idempotent() {
        return true;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
    while let Some(c) = cause {
        if let Some(h) = c.downcast_ref::<hyper::Error>() {
            if h.is_canceled() || h.is_incomplete_message() {
                return true;
            }
        }
        cause = c.source();
    }
    false
}

/// Answers a failed outbound request: the remote relay's own ordinary errors (400, 404, 413,
/// 502, ...) keep their status and code; the shared store failing is 503
/// `state_store_unavailable`; anything else, including a 559–569 that could not be retried,
/// is 502 `outbound_failed`.
async fn refuse(session: &mut Session, ctx: &mut RequestCtx, e: &OutboundError) -> Result<bool> {
    let e = match e {
        OutboundError::StreamCut(e) => {
            let kind = ErrorKind::OUTBOUND_FAILED;
            let message = format!(
                "the connection to the remote relay failed while the streamed request body \
                 (over {} KiB) was being sent ({e}); the remote relay may have refused the \
                 exchange (e.g. it lost this relay's pair state). The body cannot be replayed; \
                 the pairs were renewed: send the request again",
                REPLAY_BUFFER / 1024
            );
            log::warn!("outbound: {message}");
            return answer_error(session, ctx, kind, &message).await;
        }
        OutboundError::Exchange(e) => e,
        OutboundError::Source(e) => {
            let kind = ErrorKind::STATE_STORE_UNAVAILABLE;
            let message = format!("outbound client state: {e}");
            log::warn!("outbound: {message}");
            return answer_error(session, ctx, kind, &message).await;
        }
    };
    let (kind, message) = match e {
        pqrelay_client::Error::NotRetried { status, code } => (
            ErrorKind::OUTBOUND_FAILED,
            format!(
                "the remote relay lost this relay's pair state ({status} {code}) and the request \
                 body was streamed (over {} KiB) so it cannot be replayed; nothing reached the \
                 remote upstream and the pairs were renewed: send the request again",
                REPLAY_BUFFER / 1024
            ),
        ),
        pqrelay_client::Error::Relay {
            status,
            code,
            message,
        } => {
            let known = ErrorKind::for_code(code).filter(|k| k.status == *status);
            match known {
                Some(k) if !(559..=569).contains(status) => {
                    (k, format!("the remote relay answered: {message}"))
                }
                _ => (
                    ErrorKind::OUTBOUND_FAILED,
                    format!(
                        "the remote relay refused the exchange ({status} {code}); its pairs were renewed, retry"
                    ),
                ),
            }
        }
        other => (
            ErrorKind::OUTBOUND_FAILED,
            format!("the remote relay failed: {other}"),
        ),
    };
    log::warn!("outbound: {message}");
    answer_error(session, ctx, kind, &message).await
}

/// Writes the opened response: status, decoded headers, framing, then the body as it opens;
/// the pair goes back to the shared pool once the body ended.
async fn write_answer(
    session: &mut Session,
    ctx: &mut RequestCtx,
    method: &Method,
    client: &Remote,
    mut resp: Answer,
) -> Result<bool> {
    let status = resp.response.status();
    let mut head = ResponseHeader::build(status, Some(resp.response.headers().len() + 6))?;
    for (name, value) in resp.response.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            head.append_header(name.clone(), value.clone())?;
        }
    }
    let bodiless = *method == Method::HEAD
        || status.is_informational()
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED;
    match resp.response.content_length() {
        Some(len) if !bodiless => head.insert_header(header::CONTENT_LENGTH, len.to_string())?,
        _ if !bodiless => head.insert_header(header::TRANSFER_ENCODING, "chunked")?,
        _ => {}
    }
    finish_response(ctx, &mut head);
    if bodiless {
        session.write_response_header(Box::new(head), true).await?;
        give_back(client, resp).await;
        return Ok(true);
    }
    session.write_response_header(Box::new(head), false).await?;
    while let Some(piece) = resp.response.chunk().await.transpose() {
        match piece {
            Ok(b) if b.is_empty() => {}
            Ok(b) => session.write_response_body(Some(b), false).await?,
            Err(e) => {
                // The head is out: all that is left is to cut the response short.
                log::warn!("outbound: the remote relay's body failed: {e}");
                return Err(Error::explain(
                    ErrorType::ReadError,
                    "outbound: the remote relay's body failed",
                ));
            }
        }
    }
    give_back(client, resp).await;
    session.write_response_body(None, true).await?;
    Ok(true)
}

/// Returns the answer's pair to the shared pool (a store failure loses the pair only).
async fn give_back(client: &Remote, resp: Answer) {
    if let Err(e) = client.finish(resp).await {
        log::warn!("outbound: a pair could not be returned to the store: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn seal_choice_reads_the_vendor_options() {
        let c = seal_choice(&map(&[])).unwrap();
        assert_eq!((c.encode_url, c.headers), (None, None));
        let c = seal_choice(&map(&[
            ("x-mte-encode-url", "false"),
            ("x-mte-encode-headers", "Authorization, x-a"),
        ]))
        .unwrap();
        assert_eq!(c.encode_url, Some(false));
        assert_eq!(
            c.headers,
            Some(HeaderSelection::Only(vec![
                HeaderName::from_static("authorization"),
                HeaderName::from_static("x-a")
            ]))
        );
        let c = seal_choice(&map(&[("x-mte-encode-headers", "false")])).unwrap();
        assert_eq!(c.headers, Some(HeaderSelection::Only(vec![])));
        assert!(seal_choice(&map(&[("x-mte-encode-url", "maybe")])).is_err());
        assert!(seal_choice(&map(&[("x-mte-encode-headers", "a b")])).is_err());
    }

    #[test]
    fn control_and_hop_by_hop_headers_are_not_forwarded() {
        let h = forwarded_headers(&map(&[
            ("x-mte-outbound-token", "t"),
            ("x-mte-upstream", "http://x"),
            ("host", "relay-a"),
            ("connection", "keep-alive, x-drop"),
            ("x-drop", "1"),
            ("content-length", "3"),
            ("authorization", "Bearer x"),
            ("x-keep", "1"),
        ]));
        let names: Vec<&str> = h.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["authorization", "x-keep"]);
    }

    #[test]
    fn token_is_compared_by_digest() {
        let o = Outbound {
            token_digest: Sha256::digest(b"right-token").into(),
            remotes: Vec::new(),
        };
        assert!(o.token_ok(Some(&HeaderValue::from_static("right-token"))));
        assert!(!o.token_ok(Some(&HeaderValue::from_static("right-tokem"))));
        assert!(!o.token_ok(Some(&HeaderValue::from_static(""))));
        assert!(!o.token_ok(None));
    }
}
