//! The routes the relay answers itself: discovery (`HEAD /api/mte-relay`), pairing
//! (`POST /api/mte-pair`, [`super::pairing`]), readiness, the error table, the echo health route,
//! the browser client and, in demo mode, the demo page.

use std::sync::OnceLock;

use bytes::Bytes;
use http::header;
use pingora_error::Result;
use pingora_proxy::Session;
use pqrelay_protocol::names::{
    DISCOVERY_PATH, ERRORS_PATH, INFO_HEADER, KEYS_HEADER, PAIRING_PATH, RELAY_HEADER,
};
use pqrelay_protocol::{RelayHeader, RelayInfo};
use sha2::{Digest, Sha256};

use super::ctx::{RequestCtx, RouteKind};
use super::relay_header::{relay_header, verify};
use super::reply::{refuse, send, send_json_no_store, JSON};
use crate::error::{ErrorKind, Refusal};
use crate::state::RelayState;

/// The browser client (`clients/js/dist`, built by the JS client's reproducible bundle) served
/// at `/public/mte-relay-browser.js`.
const BROWSER_JS: &[u8] = include_bytes!("../../clients/js/dist/mte-relay-browser.js");
/// The demo page (`clients/js/demo`), served under `/demo/` when DEMO is on.
const DEMO_INDEX: &[u8] = include_bytes!("../../clients/js/demo/index.html");
/// The demo page's script.
const DEMO_JS: &[u8] = include_bytes!("../../clients/js/demo/demo.js");
/// The demo page's style sheet.
const DEMO_CSS: &[u8] = include_bytes!("../../clients/js/demo/demo.css");

/// A route the relay answers itself.
enum OwnRoute {
    Discovery,
    Pair,
    Ready,
    Errors,
    BrowserJs,
    /// `/api/mte-echo/<msg>`, or `/api/mte-echo[/]` without a message (`None`).
    Echo(Option<String>),
    /// The demo page's files (only when DEMO is on): `(content type, bytes)`.
    Demo(&'static str, &'static [u8]),
    /// `/demo` → `/demo/` (the page loads `./demo.js`).
    DemoRedirect,
}

impl OwnRoute {
    fn of(path: &str, demo: bool) -> Option<OwnRoute> {
        Some(match path {
            DISCOVERY_PATH => OwnRoute::Discovery,
            PAIRING_PATH => OwnRoute::Pair,
            "/api/mte-ready" => OwnRoute::Ready,
            ERRORS_PATH => OwnRoute::Errors,
            "/public/mte-relay-browser.js" => OwnRoute::BrowserJs,
            "/demo" if demo => OwnRoute::DemoRedirect,
            "/demo/" | "/demo/index.html" if demo => {
                OwnRoute::Demo("text/html; charset=utf-8", DEMO_INDEX)
            }
            "/demo/demo.js" if demo => OwnRoute::Demo("text/javascript; charset=utf-8", DEMO_JS),
            "/demo/demo.css" if demo => OwnRoute::Demo("text/css; charset=utf-8", DEMO_CSS),
            "/api/mte-echo" | "/api/mte-echo/" => OwnRoute::Echo(None),
            _ => match path.strip_prefix("/api/mte-echo/") {
                Some(msg) if !msg.contains('/') => OwnRoute::Echo(Some(msg.into())),
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

/// Serves the relay's own routes: `Ok(true)` when `path` is one of them (answered), `Ok(false)`
/// otherwise.
pub(crate) async fn serve(
    state: &RelayState,
    session: &mut Session,
    ctx: &mut RequestCtx,
    path: &str,
) -> Result<bool> {
    let Some(own) = OwnRoute::of(path, state.config.demo) else {
        return Ok(false);
    };
    // Boxed, so that the requests of other routes do not carry this future's size.
    Box::pin(answer(state, session, ctx, own)).await
}

/// Answers `own`.
async fn answer(
    state: &RelayState,
    session: &mut Session,
    ctx: &mut RequestCtx,
    own: OwnRoute,
) -> Result<bool> {
    ctx.route = RouteKind::Own(own.name());
    let method = session.req_header().method.as_str();
    if !own.allow().split(", ").any(|m| m == method) {
        let why = "method not allowed on this route";
        let refusal = Refusal::new(ErrorKind::METHOD_NOT_ALLOWED, why).allow(own.allow());
        return refuse(session, ctx, &refusal).await;
    }
    let no_cache = [(header::CACHE_CONTROL.as_str(), "no-cache")];
    match own {
        OwnRoute::Discovery => discovery(state, session, ctx).await,
        OwnRoute::Pair => super::pairing::serve(state, session, ctx).await,
        OwnRoute::Ready => ready(state, session, ctx).await,
        OwnRoute::Demo(content_type, body) => {
            let body = Bytes::from_static(body);
            send(session, ctx, 200, content_type, &no_cache, body).await
        }
        OwnRoute::DemoRedirect => {
            let location = [(header::LOCATION.as_str(), "/demo/")];
            send(session, ctx, 301, "text/plain", &location, Bytes::new()).await
        }
        OwnRoute::Errors => {
            let body = Bytes::from(crate::error::error_table_json());
            send(session, ctx, 200, JSON, &no_cache, body).await
        }
        OwnRoute::BrowserJs => browser_js(session, ctx).await,
        OwnRoute::Echo(msg) => echo(session, ctx, msg.as_deref()).await,
    }
}

/// `GET /api/mte-ready`: 200 `{"ready":true,"store":"<kind>"}` when the state store answers;
/// 503 `shutting_down` while this process shuts down or hands over to a new one
/// ([`crate::lifecycle::is_draining`]), 503 `state_store_unavailable` when the store does not
/// answer.
async fn ready(state: &RelayState, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
    if crate::lifecycle::is_draining() {
        let why = "this relay process is shutting down";
        return refuse(session, ctx, &Refusal::new(ErrorKind::SHUTTING_DOWN, why)).await;
    }
    match state.store.ping().await {
        Ok(()) => {
            let body = serde_json::json!({ "ready": true, "store": state.store.kind() });
            send_json_no_store(session, ctx, &body).await
        }
        Err(e) => {
            log::warn!("readiness: {e}");
            let why = "the state store does not answer";
            let refusal = Refusal::new(ErrorKind::STATE_STORE_UNAVAILABLE, why);
            refuse(session, ctx, &refusal).await
        }
    }
}

/// `GET /api/mte-echo/<msg>`: `{"echo":"<msg>","time":"<UTC RFC 3339>"}`, as the vendor guide
/// says; without a message (`/api/mte-echo`, `/api/mte-echo/`) the vendor's route answers
/// `{"echo":true,"time":…}`, which health checks call.
async fn echo(session: &mut Session, ctx: &mut RequestCtx, msg: Option<&str>) -> Result<bool> {
    let echo = match msg {
        Some(msg) => {
            serde_json::Value::from(percent_encoding::percent_decode_str(msg).decode_utf8_lossy())
        }
        None => serde_json::Value::Bool(true),
    };
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let body = serde_json::json!({ "echo": echo, "time": time });
    send_json_no_store(session, ctx, &body).await
}

/// `HEAD /api/mte-relay`: (re)issues the client id and announces the relay's parameters and
/// keys (PROTOCOL.md §5). A sent token that verifies keeps its id (re-signed if needed);
/// anything else gets a fresh id.
async fn discovery(
    state: &RelayState,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Result<bool> {
    let site = ctx.site.clone();
    let sent = relay_header(session.req_header())
        .and_then(Result::ok)
        .and_then(|h| verify(&site, h).ok());
    let token = match sent {
        Some(relay) => relay.client.token,
        None => match crate::site::issue_client_id(&site.signer) {
            Ok(token) => token,
            Err(_) => {
                let why = "cannot issue a client id";
                return refuse(session, ctx, &Refusal::new(ErrorKind::INTERNAL, why)).await;
            }
        },
    };
    let relay = RelayHeader::Discovery { token }.encode();
    let info = RelayInfo::new(state.config.max_pool_size as u64).encode();
    let keys = site.relay_keys.header_value();
    let headers = [
        (RELAY_HEADER, relay.as_str()),
        (INFO_HEADER, info.as_str()),
        (KEYS_HEADER, keys.as_str()),
        (header::CACHE_CONTROL.as_str(), "no-store"),
    ];
    let text = "text/plain; charset=utf-8";
    send(session, ctx, 200, text, &headers, Bytes::new()).await
}

fn browser_js_etag() -> &'static str {
    static ETAG: OnceLock<String> = OnceLock::new();
    ETAG.get_or_init(|| {
        let digest = Sha256::digest(BROWSER_JS);
        let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
        format!("\"{hex}\"")
    })
}

/// `GET /public/mte-relay-browser.js`: the browser client, cached and revalidated by ETag.
async fn browser_js(session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
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
    let js = "text/javascript; charset=utf-8";
    send(session, ctx, status, js, &headers, body).await
}
