//! Routing: route patterns, the routing decision of `request_filter`, and the routes the relay
//! answers itself.
//!
//! Order: edge limits ([`crate::limits::guard_request`]) → CORS preflight → the relay's own
//! routes → `PASS_THROUGH_ROUTES` → MTE routes. When `MTE_ROUTES` is set only matching paths
//! are MTE routes and every other path 404s; otherwise every path that is not passed through is
//! an MTE route. An MTE route needs an `x-mte-relay` header whose client id verifies (561 when
//! missing, 568 for an unknown version, 566 when the signature does not verify).

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method};
use pingora_error::Result;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;
use sha2::{Digest, Sha256};

use crate::client_id::ClientIdSigner;
use crate::cors;
use crate::ctx::{MteRequest, RequestCtx, RouteKind};
use crate::error::{ErrorKind, ERROR_HEADER};
use crate::state::RelayState;

/// The protocol's request/response header.
pub const RELAY_HEADER: &str = "x-mte-relay";
/// Discovery's capability header.
pub const RELAY_INFO_HEADER: &str = "x-mte-relay-info";
/// Protocol version this relay speaks.
pub const PROTOCOL_VERSION: &str = "1";
/// Record size of the exchange's STREAM encoding, announced by discovery.
pub const CHUNK_SIZE: usize = 65536;
/// How far a message counter may skip ahead, announced by discovery.
pub const MAX_SKIP: usize = 16;
/// The browser client (`clients/js/dist`, built by the JS client's reproducible bundle) served
/// at `/public/mte-relay-browser.js`.
const BROWSER_JS: &[u8] = include_bytes!("../clients/js/dist/mte-relay-browser.js");
/// The demo page (`clients/js/demo`), served under `/demo/` when DEMO is on.
const DEMO_INDEX: &[u8] = include_bytes!("../clients/js/demo/index.html");
/// The demo page's script.
const DEMO_JS: &[u8] = include_bytes!("../clients/js/demo/demo.js");
/// The demo page's style sheet.
const DEMO_CSS: &[u8] = include_bytes!("../clients/js/demo/demo.css");

/// A route pattern from `PASS_THROUGH_ROUTES` or `MTE_ROUTES`.
///
/// Matched against the path without the query. A trailing `*` matches any rest of the path
/// (`/api/v1/*` matches `/api/v1/x/y`, and `/api/v1` itself); a `*` elsewhere matches exactly
/// one segment (`/users/*/profile`); anything else must match exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    raw: String,
    segments: Vec<String>,
    prefix: bool,
}

impl RoutePattern {
    /// Parses a pattern; it must start with `/`.
    pub fn parse(s: &str) -> Result<RoutePattern, &'static str> {
        if !s.starts_with('/') {
            return Err("a route must start with /");
        }
        if s.contains('?') || s.contains('#') {
            return Err("a route must not contain a query or fragment");
        }
        let mut segments: Vec<String> = s[1..].split('/').map(str::to_owned).collect();
        let prefix = segments.last().is_some_and(|l| l == "*");
        if prefix {
            segments.pop();
        }
        if segments.iter().any(|seg| seg.contains('*') && seg != "*") {
            return Err("`*` must stand for a whole segment (e.g. /api/*/items or /api/*)");
        }
        Ok(RoutePattern {
            raw: s.to_owned(),
            segments,
            prefix,
        })
    }

    /// Whether `path` (without query) matches.
    pub fn matches(&self, path: &str) -> bool {
        let rest = path.strip_prefix('/').unwrap_or(path);
        let parts: Vec<&str> = rest.split('/').collect();
        if self.prefix {
            // "/api/v1/*" matches "/api/v1", "/api/v1/" and anything below.
            let pat = &self.segments;
            let parts: Vec<&str> = if parts.last() == Some(&"") && parts.len() > pat.len() {
                parts[..parts.len() - 1].to_vec()
            } else {
                parts
            };
            parts.len() >= pat.len() && seg_match(pat, &parts[..pat.len()])
        } else {
            parts.len() == self.segments.len() && seg_match(&self.segments, &parts)
        }
    }
}

fn seg_match(pat: &[String], parts: &[&str]) -> bool {
    pat.iter()
        .zip(parts)
        .all(|(p, s)| (p == "*" && !s.is_empty()) || p == s)
}

impl fmt::Display for RoutePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// Whether any pattern matches `path`.
pub fn matches_any(patterns: &[RoutePattern], path: &str) -> bool {
    patterns.iter().any(|p| p.matches(path))
}

/// The routing step of `request_filter`. `Ok(true)` when the relay answered.
pub async fn route_request(
    state: &RelayState,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Result<bool> {
    if crate::limits::guard_request(state, session, ctx).await? {
        return Ok(true);
    }
    let req = session.req_header();
    ctx.cors_origin = cors::allowed_origin(&state.config, req);

    if cors::is_preflight(req) {
        ctx.route = RouteKind::Preflight;
        return match cors::preflight(&state.config, req, ctx.cors_origin.as_deref()) {
            Ok(mut resp) => {
                add_configured_headers(state, &mut resp);
                session.write_response_header(Box::new(resp), true).await?;
                Ok(true)
            }
            Err(refusal) => {
                // A refused preflight carries no CORS headers at all.
                ctx.cors_origin = None;
                let why = match refusal {
                    cors::PreflightRefusal::Origin => "origin not allowed",
                    cors::PreflightRefusal::Method => "method not allowed",
                };
                send_error(state, session, ctx, ErrorKind::CORS_FORBIDDEN, why).await
            }
        };
    }

    let path = req.uri.path().to_owned();
    if let Some(answered) = own_route(state, session, ctx, &path).await? {
        return Ok(answered);
    }

    if matches_any(&state.config.pass_through_routes, &path) {
        ctx.route = RouteKind::PassThrough;
        return Ok(false);
    }

    // With MTE_ROUTES set, an unlisted path is a 404, except that an exchange with a sealed
    // URL (wire path `/<sealed>`) is checked on its decoded path once it opened.
    if let Some(mte_routes) = &state.config.mte_routes {
        if !has_sealed_url(session.req_header()) && !matches_any(mte_routes, &path) {
            return send_error(state, session, ctx, ErrorKind::NOT_FOUND, "no such route").await;
        }
    }

    let header = session
        .req_header()
        .headers
        .get(RELAY_HEADER)
        .map(|v| v.to_str().map(str::to_owned));
    match header {
        None => {
            send_error(
                state,
                session,
                ctx,
                ErrorKind::RELAY_HEADER_INVALID,
                "this is an MTE route: the request needs an x-mte-relay header",
            )
            .await
        }
        Some(Err(_)) => {
            send_error(
                state,
                session,
                ctx,
                ErrorKind::RELAY_HEADER_INVALID,
                "x-mte-relay is not ASCII",
            )
            .await
        }
        Some(Ok(value)) => match verify_relay_header(&state.signer, &value) {
            Ok(mte) => {
                match crate::exchange::request::begin(state, session.req_header(), &mte).await {
                    Ok(exchange) => {
                        ctx.route = RouteKind::Mte(mte);
                        ctx.exchange = Some(Box::new(exchange));
                        Ok(false)
                    }
                    Err(r) => {
                        ctx.route = RouteKind::Mte(mte);
                        send_error(state, session, ctx, r.kind, r.message).await
                    }
                }
            }
            Err((kind, message)) => send_error(state, session, ctx, kind, message).await,
        },
    }
}

/// Whether the request's `x-mte-relay` is an exchange header with the `url` flag.
fn has_sealed_url(req: &pingora_http::RequestHeader) -> bool {
    use pqrelay_protocol::{Flags, RelayHeader};
    let value = req.headers.get(RELAY_HEADER).and_then(|v| v.to_str().ok());
    matches!(
        value.map(|v| RelayHeader::parse(v.trim())),
        Some(Ok(RelayHeader::Exchange(h))) if h.flags.contains(Flags::URL)
    )
}

/// Parses `x-mte-relay: 1.<token>[.<more fields>]` and verifies the client id.
pub fn verify_relay_header(
    signer: &ClientIdSigner,
    value: &str,
) -> std::result::Result<MteRequest, (ErrorKind, &'static str)> {
    let mut parts = value.trim().split('.');
    let version = parts.next().unwrap_or_default();
    if version.is_empty() {
        return Err((ErrorKind::RELAY_HEADER_INVALID, "x-mte-relay is empty"));
    }
    if version != PROTOCOL_VERSION {
        return Err((
            ErrorKind::VERSION_UNSUPPORTED,
            "unsupported protocol version",
        ));
    }
    let token = match parts.next() {
        Some(t) if !t.is_empty() => t,
        _ => {
            return Err((
                ErrorKind::CLIENT_ID_MISSING,
                "x-mte-relay carries no client id",
            ))
        }
    };
    let verified = signer
        .verify(token)
        .map_err(|_| (ErrorKind::INVALID_CLIENT_ID, "client id does not verify"))?;
    Ok(MteRequest {
        client_id: verified.id,
        current_token: verified.current_token,
        token_is_current: verified.token_is_current,
        fields: parts.map(str::to_owned).collect(),
    })
}

/// A route the relay answers itself.
enum OwnRoute {
    Discovery,
    Pair,
    Ready,
    Errors,
    BrowserJs,
    Echo(String),
    /// The demo page's files (only when DEMO is on): `(content type, bytes)`.
    Demo(&'static str, &'static [u8]),
    /// `/demo` → `/demo/` (the page loads `./demo.js`).
    DemoRedirect,
}

impl OwnRoute {
    fn of(path: &str, demo: bool) -> Option<OwnRoute> {
        Some(match path {
            "/api/mte-relay" => OwnRoute::Discovery,
            "/api/mte-pair" => OwnRoute::Pair,
            "/api/mte-ready" => OwnRoute::Ready,
            "/api/mte-errors" => OwnRoute::Errors,
            "/public/mte-relay-browser.js" => OwnRoute::BrowserJs,
            "/demo" if demo => OwnRoute::DemoRedirect,
            "/demo/" | "/demo/index.html" if demo => {
                OwnRoute::Demo("text/html; charset=utf-8", DEMO_INDEX)
            }
            "/demo/demo.js" if demo => OwnRoute::Demo("text/javascript; charset=utf-8", DEMO_JS),
            "/demo/demo.css" if demo => OwnRoute::Demo("text/css; charset=utf-8", DEMO_CSS),
            _ => match path.strip_prefix("/api/mte-echo/") {
                Some(msg) if !msg.is_empty() && !msg.contains('/') => OwnRoute::Echo(msg.into()),
                _ => return None,
            },
        })
    }

    fn name(&self) -> &'static str {
        match self {
            OwnRoute::Discovery => "discovery",
            OwnRoute::Pair => "pair",
            OwnRoute::Ready => "ready",
            OwnRoute::Errors => "errors",
            OwnRoute::BrowserJs => "browser-js",
            OwnRoute::Echo(_) => "echo",
            OwnRoute::Demo(..) | OwnRoute::DemoRedirect => "demo",
        }
    }

    /// The `Allow` header value: the methods this route answers.
    fn allow(&self) -> &'static str {
        match self {
            OwnRoute::Pair => "POST",
            _ => "GET, HEAD",
        }
    }
}

/// Serves the relay's own routes. `Ok(None)` when `path` is not one of them.
async fn own_route(
    state: &RelayState,
    session: &mut Session,
    ctx: &mut RequestCtx,
    path: &str,
) -> Result<Option<bool>> {
    let Some(own) = OwnRoute::of(path, state.config.demo) else {
        return Ok(None);
    };
    ctx.route = RouteKind::Own(own.name());
    let method = session.req_header().method.as_str().to_owned();
    if !own.allow().split(", ").any(|m| m == method) {
        return method_not_allowed(state, session, ctx, own.allow())
            .await
            .map(Some);
    }
    let answered = match own {
        OwnRoute::Discovery => discovery(state, session, ctx).await?,
        OwnRoute::Pair => crate::pairing::handle(state, session, ctx).await?,
        OwnRoute::Ready => ready(state, session, ctx).await?,
        OwnRoute::Demo(content_type, body) => {
            let cache = [(header::CACHE_CONTROL.as_str(), "no-cache")];
            let body = Bytes::from_static(body);
            send(state, session, ctx, 200, content_type, &cache, body).await?
        }
        OwnRoute::DemoRedirect => {
            let location = [(header::LOCATION.as_str(), "/demo/")];
            send(
                state,
                session,
                ctx,
                301,
                "text/plain",
                &location,
                Bytes::new(),
            )
            .await?
        }
        OwnRoute::Errors => {
            let body = Bytes::from(crate::error::error_table_json());
            let cache = [(header::CACHE_CONTROL.as_str(), "no-cache")];
            send(state, session, ctx, 200, JSON, &cache, body).await?
        }
        OwnRoute::BrowserJs => browser_js(state, session, ctx).await?,
        OwnRoute::Echo(msg) => echo(state, session, ctx, &msg).await?,
    };
    Ok(Some(answered))
}

const JSON: &str = "application/json; charset=utf-8";

/// `GET /api/mte-ready`: 200 `{"ready":true,"store":"<kind>"}` when the state store answers;
/// 503 `shutting_down` while this process shuts down or hands over to a new one
/// ([`crate::lifecycle::is_draining`]), 503 `state_store_unavailable` when the store does not
/// answer.
async fn ready(state: &RelayState, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
    if crate::lifecycle::is_draining() {
        let why = "this relay process is shutting down";
        return send_error(state, session, ctx, ErrorKind::SHUTTING_DOWN, why).await;
    }
    match state.store.ping().await {
        Ok(()) => {
            let body = serde_json::json!({ "ready": true, "store": state.store.kind() });
            send_json_no_store(state, session, ctx, &body).await
        }
        Err(e) => {
            log::warn!("readiness: {e}");
            let kind = ErrorKind::STATE_STORE_UNAVAILABLE;
            send_error(state, session, ctx, kind, "the state store does not answer").await
        }
    }
}

async fn echo(
    state: &RelayState,
    session: &mut Session,
    ctx: &mut RequestCtx,
    msg: &str,
) -> Result<bool> {
    let msg = percent_encoding::percent_decode_str(msg).decode_utf8_lossy();
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let body = serde_json::json!({ "echo": msg, "time": time });
    send_json_no_store(state, session, ctx, &body).await
}

/// A `200` JSON answer that must not be cached.
async fn send_json_no_store(
    state: &RelayState,
    session: &mut Session,
    ctx: &RequestCtx,
    body: &serde_json::Value,
) -> Result<bool> {
    let cache = [(header::CACHE_CONTROL.as_str(), "no-store")];
    let body = Bytes::from(body.to_string());
    send(state, session, ctx, 200, JSON, &cache, body).await
}

/// `HEAD /api/mte-relay`: (re)issues the client id and announces capabilities.
async fn discovery(
    state: &RelayState,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Result<bool> {
    let sent = session
        .req_header()
        .headers
        .get(RELAY_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| verify_relay_header(&state.signer, v).ok());
    let token = match sent {
        Some(mte) => mte.current_token,
        None => match state.signer.try_issue() {
            Ok((_, token)) => token,
            Err(_) => {
                return send_error(
                    state,
                    session,
                    ctx,
                    ErrorKind::INTERNAL,
                    "cannot issue a client id",
                )
                .await
            }
        },
    };
    let relay = format!("{PROTOCOL_VERSION}.{token}");
    let info = format!(
        "versions={PROTOCOL_VERSION};max-pairs={};chunk-size={CHUNK_SIZE};max-skip={MAX_SKIP}",
        state.config.max_pool_size
    );
    send(
        state,
        session,
        ctx,
        200,
        "text/plain; charset=utf-8",
        &[
            (RELAY_HEADER, relay.as_str()),
            (RELAY_INFO_HEADER, info.as_str()),
            (header::CACHE_CONTROL.as_str(), "no-store"),
        ],
        Bytes::new(),
    )
    .await
}

fn browser_js_etag() -> &'static str {
    static ETAG: OnceLock<String> = OnceLock::new();
    ETAG.get_or_init(|| {
        let digest = Sha256::digest(BROWSER_JS);
        let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
        format!("\"{hex}\"")
    })
}

async fn browser_js(
    state: &RelayState,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Result<bool> {
    let etag = browser_js_etag();
    let not_modified = session
        .req_header()
        .headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let headers = [
        (
            header::CACHE_CONTROL.as_str(),
            "public, max-age=3600, must-revalidate",
        ),
        (header::ETAG.as_str(), etag),
        ("x-content-type-options", "nosniff"),
    ];
    let (status, body) = if not_modified {
        (304, Bytes::new())
    } else {
        (200, Bytes::from_static(BROWSER_JS))
    };
    send(
        state,
        session,
        ctx,
        status,
        "text/javascript; charset=utf-8",
        &headers,
        body,
    )
    .await
}

async fn method_not_allowed(
    state: &RelayState,
    session: &mut Session,
    ctx: &mut RequestCtx,
    allow: &'static str,
) -> Result<bool> {
    let kind = ErrorKind::METHOD_NOT_ALLOWED;
    let allow = [(header::ALLOW.as_str(), allow)];
    send_error_with(
        state,
        session,
        ctx,
        kind,
        "method not allowed on this route",
        &allow,
    )
    .await
}

/// Answers with an error reply (JSON body and `x-mte-relay-error`). Always `Ok(true)`.
pub async fn send_error(
    state: &RelayState,
    session: &mut Session,
    ctx: &mut RequestCtx,
    kind: ErrorKind,
    message: &str,
) -> Result<bool> {
    send_error_with(state, session, ctx, kind, message, &[]).await
}

/// [`send_error`] with extra response headers.
pub async fn send_error_with(
    state: &RelayState,
    session: &mut Session,
    ctx: &mut RequestCtx,
    kind: ErrorKind,
    message: &str,
    extra: &[(&str, &str)],
) -> Result<bool> {
    if matches!(ctx.route, RouteKind::Unrouted | RouteKind::Mte(_)) {
        ctx.route = RouteKind::Rejected;
    }
    ctx.error_code = Some(kind.code);
    let body = Bytes::from(kind.body(message));
    let mut headers = vec![
        (ERROR_HEADER, kind.code),
        (header::CACHE_CONTROL.as_str(), "no-store"),
    ];
    headers.extend_from_slice(extra);
    let sent = send(state, session, ctx, kind.status, JSON, &headers, body).await;
    discard_request_body(session).await;
    sent
}

/// How much of a refused request's body is read and dropped after the error reply.
const LINGER_BYTES: usize = 16 * 1024 * 1024;
/// How long reading a refused request's body may take after the error reply.
const LINGER_TIME: Duration = Duration::from_secs(5);

/// After an error reply sent before the request body was read: reads and drops what the client
/// is still sending (at most [`LINGER_BYTES`] within [`LINGER_TIME`], like nginx's lingering
/// close). Closing a connection with unread bytes resets it, and a client that writes its whole
/// body before reading would lose the reply.
async fn discard_request_body(session: &mut Session) {
    let expects_continue = session
        .req_header()
        .headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    // A client waiting for `100 Continue` sends no body after a final reply.
    if expects_continue || session.is_body_done() {
        return;
    }
    let drain = async {
        let mut seen = 0usize;
        while let Ok(Some(piece)) = session.read_request_body().await {
            seen += piece.len();
            if seen > LINGER_BYTES {
                break;
            }
        }
    };
    if tokio::time::timeout(LINGER_TIME, drain).await.is_err() {
        log::debug!("gave up reading a refused request's body");
    }
}

/// Writes a complete response: status, content type, extra headers, CORS and `HEADERS`.
/// The body is left out for HEAD requests and 304s (Content-Length still describes it).
pub async fn send(
    state: &RelayState,
    session: &mut Session,
    ctx: &RequestCtx,
    status: u16,
    content_type: &str,
    extra: &[(&str, &str)],
    body: Bytes,
) -> Result<bool> {
    let mut resp = ResponseHeader::build(status, Some(extra.len() + 8))?;
    if status != 304 {
        resp.insert_header(header::CONTENT_TYPE, content_type)?;
        resp.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
    }
    for (k, v) in extra {
        resp.append_header(k.to_string(), *v)?;
    }
    finish_response(state, ctx, &mut resp);
    let head = session.req_header().method == Method::HEAD || status == 304;
    if head || body.is_empty() {
        session.write_response_header(Box::new(resp), true).await?;
    } else {
        session.write_response_header(Box::new(resp), false).await?;
        session.write_response_body(Some(body), true).await?;
    }
    Ok(true)
}

/// Decorates every response (the relay's own and the upstream's): CORS and `HEADERS`.
pub fn finish_response(state: &RelayState, ctx: &RequestCtx, resp: &mut ResponseHeader) {
    cors::decorate(resp, ctx.cors_origin.as_deref());
    add_configured_headers(state, resp);
}

fn add_configured_headers(state: &RelayState, resp: &mut ResponseHeader) {
    for (k, v) in &state.config.headers {
        let _ = resp.insert_header(k.clone(), v.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> RoutePattern {
        RoutePattern::parse(s).unwrap()
    }

    #[test]
    fn exact_routes_match_exactly() {
        assert!(p("/health").matches("/health"));
        assert!(!p("/health").matches("/health/x"));
        assert!(!p("/health").matches("/healthz"));
    }

    #[test]
    fn trailing_star_is_a_prefix() {
        let r = p("/api/v1/*");
        assert!(r.matches("/api/v1/x"));
        assert!(r.matches("/api/v1/x/y"));
        assert!(r.matches("/api/v1"));
        assert!(r.matches("/api/v1/"));
        assert!(!r.matches("/api/v2/x"));
        assert!(!r.matches("/api/v10/x"));
        assert!(p("/*").matches("/anything/at/all"));
    }

    #[test]
    fn inner_star_is_one_segment() {
        let r = p("/users/*/profile");
        assert!(r.matches("/users/42/profile"));
        assert!(!r.matches("/users/profile"));
        assert!(!r.matches("/users/4/2/profile"));
    }

    #[test]
    fn bad_patterns_are_rejected() {
        assert!(RoutePattern::parse("health").is_err());
        assert!(RoutePattern::parse("/api/v*").is_err());
        assert!(RoutePattern::parse("/a?b").is_err());
    }

    #[test]
    fn relay_header_parsing() {
        let s = ClientIdSigner::new(b"0123456789abcdef0123456789abcdef", vec![]);
        let (_, token) = s.issue();
        let ok = verify_relay_header(&s, &format!("1.{token}.p1.7.0")).unwrap();
        assert_eq!(ok.fields, ["p1", "7", "0"]);
        assert_eq!(verify_relay_header(&s, "").unwrap_err().0.status, 561);
        assert_eq!(verify_relay_header(&s, "2.x").unwrap_err().0.status, 568);
        assert_eq!(verify_relay_header(&s, "1").unwrap_err().0.status, 560);
        assert_eq!(verify_relay_header(&s, "1.abc").unwrap_err().0.status, 566);
    }
}
