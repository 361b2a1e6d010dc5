//! CORS as browsers need it.
//!
//! Only origins listed in `CORS_ORIGINS` are reflected, always with
//! `Access-Control-Allow-Credentials: true` (never `*`, never an arbitrary origin). Every
//! response carries `Vary: Origin`. Preflights are answered by the relay with the allowed
//! methods (`CORS_METHODS` plus OPTIONS and HEAD) and the requested headers; a preflight from a
//! disallowed origin or for a disallowed method gets 403 without CORS headers.

use http::header::{self, HeaderValue};
use pingora_http::{RequestHeader, ResponseHeader};

use crate::config::SiteConfig;

/// How long a browser may cache a preflight answer, in seconds.
pub(crate) const PREFLIGHT_MAX_AGE: u32 = 600;

/// The request's `Origin`, normalised, when it is in the site's `CORS_ORIGINS`.
pub(crate) fn allowed_origin(site: &SiteConfig, req: &RequestHeader) -> Option<String> {
    let origin = req.headers.get(header::ORIGIN)?.to_str().ok()?;
    let origin = origin.trim().to_ascii_lowercase();
    site.cors_origins.contains(&origin).then_some(origin)
}

/// `true` for a CORS preflight: OPTIONS with `Origin` and `Access-Control-Request-Method`.
pub(crate) fn is_preflight(req: &RequestHeader) -> bool {
    req.method == http::Method::OPTIONS
        && req.headers.contains_key(header::ORIGIN)
        && req
            .headers
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// Why a preflight is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PreflightRefusal {
    /// The origin is not in `CORS_ORIGINS`.
    Origin,
    /// The requested method is not allowed.
    Method,
}

/// Answers a preflight: the response headers (status 204) or why it is refused.
/// `methods` is `CORS_METHODS` (with OPTIONS and HEAD).
pub(crate) fn preflight(
    methods: &[String],
    req: &RequestHeader,
    origin: Option<&str>,
) -> Result<ResponseHeader, PreflightRefusal> {
    let origin = origin.ok_or(PreflightRefusal::Origin)?;
    let method = req
        .headers
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|v| v.to_str().ok())
        .map(|m| m.trim().to_ascii_uppercase())
        .unwrap_or_default();
    if !methods.contains(&method) {
        return Err(PreflightRefusal::Method);
    }
    let mut resp = ResponseHeader::build(204, Some(8)).map_err(|_| PreflightRefusal::Method)?;
    let methods = methods.join(", ");
    let _ = resp.insert_header(header::ACCESS_CONTROL_ALLOW_METHODS, methods);
    if let Some(h) = requested_headers(req) {
        let _ = resp.insert_header(header::ACCESS_CONTROL_ALLOW_HEADERS, h);
    }
    let _ = resp.insert_header(
        header::ACCESS_CONTROL_MAX_AGE,
        PREFLIGHT_MAX_AGE.to_string(),
    );
    let _ = resp.insert_header(header::CONTENT_LENGTH, "0");
    decorate(&mut resp, Some(origin));
    let _ = resp.append_header(
        header::VARY,
        "Access-Control-Request-Method, Access-Control-Request-Headers",
    );
    Ok(resp)
}

/// The requested headers, kept only when every name is a valid header token.
fn requested_headers(req: &RequestHeader) -> Option<String> {
    let mut names = Vec::new();
    for v in req
        .headers
        .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .iter()
    {
        for name in v.to_str().ok()?.split(',') {
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            http::HeaderName::from_bytes(name.as_bytes()).ok()?;
            names.push(name.to_ascii_lowercase());
        }
    }
    (!names.is_empty()).then(|| names.join(", "))
}

/// The protocol's response headers a browser script must read, comma-separated.
fn exposed_headers() -> HeaderValue {
    static EXPOSED: std::sync::OnceLock<HeaderValue> = std::sync::OnceLock::new();
    let joined = || pqrelay_protocol::names::EXPOSED_HEADERS.join(", ");
    EXPOSED
        .get_or_init(|| HeaderValue::from_str(&joined()).unwrap_or(HeaderValue::from_static("")))
        .clone()
}

/// Adds CORS headers for an allowed origin and `Vary: Origin` to any response.
pub(crate) fn decorate(resp: &mut ResponseHeader, origin: Option<&str>) {
    if let Some(origin) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        let _ = resp.insert_header(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        let _ = resp.insert_header(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        let _ = resp.insert_header(header::ACCESS_CONTROL_EXPOSE_HEADERS, exposed_headers());
    } else {
        // Never pass through an upstream's own CORS answer for an origin we did not allow.
        for h in [
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
        ] {
            resp.remove_header(&h);
        }
    }
    let has_vary_origin = resp.headers.get_all(header::VARY).iter().any(|v| {
        v.to_str()
            .map(|s| {
                s.split(',')
                    .any(|p| p.trim().eq_ignore_ascii_case("origin"))
            })
            .unwrap_or(false)
    });
    if !has_vary_origin {
        let _ = resp.append_header(header::VARY, HeaderValue::from_static("Origin"));
    }
}
