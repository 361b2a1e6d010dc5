//! Writing the relay's own responses: [`send`] a complete response, [`refuse`] with an error
//! reply, and [`finish_response`] to decorate every response (the relay's and the upstream's)
//! with CORS and the site's `HEADERS`.

use std::time::Duration;

use bytes::Bytes;
use http::{header, Method};
use pingora_error::Result;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;
use pqrelay_protocol::names::ERROR_HEADER;
use pqrelay_protocol::ErrorReport;

use super::cors;
use super::ctx::{RequestCtx, RouteKind};
use crate::error::Refusal;

/// The content type of the relay's JSON answers.
pub(crate) const JSON: &str = "application/json; charset=utf-8";

/// How much of a refused request's body is read and dropped after the error reply.
const LINGER_BYTES: usize = 16 * 1024 * 1024;
/// How long reading a refused request's body may take after the error reply.
const LINGER_TIME: Duration = Duration::from_secs(5);

/// Writes a complete response: status, content type, extra headers, CORS and `HEADERS`.
/// The body is left out for HEAD requests and 304s (Content-Length still describes it).
/// Always `Ok(true)` ("answered") unless writing fails.
pub(crate) async fn send(
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
    finish_response(ctx, &mut resp);
    let bodiless = session.req_header().method == Method::HEAD || status == 304;
    if bodiless || body.is_empty() {
        session.write_response_header(Box::new(resp), true).await?;
    } else {
        session.write_response_header(Box::new(resp), false).await?;
        session.write_response_body(Some(body), true).await?;
    }
    Ok(true)
}

/// A `200` JSON answer that must not be cached.
pub(crate) async fn send_json_no_store(
    session: &mut Session,
    ctx: &RequestCtx,
    body: &serde_json::Value,
) -> Result<bool> {
    let cache = [(header::CACHE_CONTROL.as_str(), "no-store")];
    let body = Bytes::from(body.to_string());
    send(session, ctx, 200, JSON, &cache, body).await
}

/// Answers with an error reply (JSON body, `x-mte-relay-error`, the refusal's `Retry-After` /
/// `Allow`, and for an exchange's error its verdict and tag, PROTOCOL.md §11.2), then reads and
/// drops what the client still sends. Always `Ok(true)`.
pub(crate) async fn refuse(
    session: &mut Session,
    ctx: &mut RequestCtx,
    refusal: &Refusal,
) -> Result<bool> {
    // Boxed: the reply's writes make a future of ~1.5 KiB; inline, it would grow the future of
    // every filter that may refuse, which Pingora allocates and moves on every request.
    Box::pin(write_refusal(session, ctx, refusal)).await
}

/// The body of [`refuse`], boxed there.
async fn write_refusal(
    session: &mut Session,
    ctx: &mut RequestCtx,
    refusal: &Refusal,
) -> Result<bool> {
    if matches!(ctx.route, RouteKind::Unrouted | RouteKind::Mte) {
        ctx.route = RouteKind::Rejected;
    }
    let kind = refusal.kind;
    ctx.error_code = Some(kind.code);
    let auth = refusal.auth.as_ref().and_then(|auth| {
        let report = ErrorReport {
            exchange: auth.exchange,
            status: kind.status,
            code: kind.code,
            verdict: auth.verdict,
        };
        // Codes are short table names: the tag always fits.
        Some((auth.verdict, report.headers(&auth.key).ok()?))
    });
    let verdict = auth.as_ref().map(|(v, _)| *v);
    let body = Bytes::from(kind.body(&refusal.message, verdict));
    let retry_after = refusal.retry_after.map(|s| s.to_string());
    let mut headers = vec![
        (ERROR_HEADER, kind.code),
        (header::CACHE_CONTROL.as_str(), "no-store"),
    ];
    if let Some(s) = &retry_after {
        headers.push((header::RETRY_AFTER.as_str(), s));
    }
    if let Some(allow) = refusal.allow {
        headers.push((header::ALLOW.as_str(), allow));
    }
    if let Some((_, tagged)) = &auth {
        headers.extend(tagged.iter().map(|(name, value)| (*name, value.as_str())));
    }
    let sent = send(session, ctx, kind.status, JSON, &headers, body).await;
    discard_request_body(session).await;
    sent
}

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

/// Decorates every response (the relay's own and the upstream's): CORS and the site's
/// `HEADERS`.
pub(crate) fn finish_response(ctx: &RequestCtx, resp: &mut ResponseHeader) {
    cors::decorate(resp, ctx.cors_origin.as_deref());
    for (k, v) in &ctx.site.config.headers {
        let _ = resp.insert_header(k.clone(), v.clone());
    }
}
