//! Routing: what a request is, decided once in `request_filter`.
//!
//! Order: the site of the request's `Host` (421 for a host outside `DOMAIN_MAP`) → edge limits
//! ([`super::guard::guard_request`]) → CORS preflight → the relay's own routes ([`super::own`])
//! → `PASS_THROUGH_ROUTES` → MTE routes. When `MTE_ROUTES` is set only matching paths are MTE
//! routes and every other path 404s; otherwise every path that is not passed through is an MTE
//! route. An MTE route needs an `x-mte-relay` header whose client id verifies; it is parsed and
//! verified here, once, and handed on in [`Routed::Mte`].

use pingora_error::Result;
use pingora_http::RequestHeader;
use pingora_proxy::Session;
use pqrelay_protocol::{Flags, RelayHeader};

use super::ctx::{RelayRequest, RequestCtx, RouteKind};
use super::relay_header::{relay_header, verify};
use super::reply::refuse;
use super::{cors, guard, own};
use crate::config::values::{matches_any, normalize_host};
use crate::error::{ErrorKind, Refusal};
use crate::site::Selection;
use crate::state::RelayState;

/// What routing decided.
#[derive(Debug)]
pub(crate) enum Routed {
    /// The relay answered (its own route, a preflight, or an error).
    Answered,
    /// Proxy the request untouched.
    PassThrough,
    /// An exchange on an MTE route, its `x-mte-relay` header verified.
    Mte(RelayRequest),
}

/// The routing step of `request_filter`; sets `ctx.site` and `ctx.route`.
pub(crate) async fn route(
    state: &RelayState,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Result<Routed> {
    match state.sites.select(|| request_host(session.req_header())) {
        Selection::Site(site) => ctx.site = site,
        Selection::Unknown => {
            let why = "this relay serves no site for the request's Host";
            let refusal = Refusal::new(ErrorKind::MISDIRECTED_REQUEST, why);
            return refused(session, ctx, &refusal).await;
        }
    }
    if guard::guard_request(&state.config.limits, session, ctx).await? {
        return Ok(Routed::Answered);
    }
    let req = session.req_header();
    ctx.cors_origin = cors::allowed_origin(&ctx.site.config, req);

    if cors::is_preflight(req) {
        ctx.route = RouteKind::Preflight;
        return match cors::preflight(&state.config.cors_methods, req, ctx.cors_origin.as_deref()) {
            Ok(mut resp) => {
                super::reply::finish_response(ctx, &mut resp);
                // Boxed (rare path): keeps the routing future small.
                Box::pin(session.write_response_header(Box::new(resp), true)).await?;
                Ok(Routed::Answered)
            }
            Err(refusal) => {
                // A refused preflight carries no CORS headers at all.
                ctx.cors_origin = None;
                let why = match refusal {
                    cors::PreflightRefusal::Origin => "origin not allowed",
                    cors::PreflightRefusal::Method => "method not allowed",
                };
                let refusal = Refusal::new(ErrorKind::CORS_FORBIDDEN, why);
                refused(session, ctx, &refusal).await
            }
        };
    }

    let path = req.uri.path().to_owned();
    if own::serve(state, session, ctx, &path).await? {
        return Ok(Routed::Answered);
    }

    let site = ctx.site.clone();
    if matches_any(&site.config.pass_through_routes, &path) {
        ctx.route = RouteKind::PassThrough;
        return Ok(Routed::PassThrough);
    }

    let header = relay_header(session.req_header());
    // With MTE_ROUTES set, an unlisted path is a 404, except that an exchange with a sealed
    // URL (wire path `/<sealed>`) is checked on its decoded path once it opened.
    if let Some(mte_routes) = &site.config.mte_routes {
        let sealed_url = matches!(
            &header,
            Some(Ok(RelayHeader::Exchange(h))) if h.flags.contains(Flags::URL)
        );
        if !sealed_url && !matches_any(mte_routes, &path) {
            let refusal = Refusal::new(ErrorKind::NOT_FOUND, "no such route");
            return refused(session, ctx, &refusal).await;
        }
    }
    let why = "this is an MTE route: the request needs an x-mte-relay header";
    let verified = header
        .unwrap_or_else(|| Err(Refusal::new(ErrorKind::RELAY_HEADER_INVALID, why)))
        .and_then(|h| verify(&site, h));
    ctx.route = RouteKind::Mte;
    match verified {
        Ok(relay) => {
            super::framing::drop_informational_on_mte(session);
            Ok(Routed::Mte(relay))
        }
        Err(refusal) => refused(session, ctx, &refusal).await,
    }
}

/// Answers with the refusal.
async fn refused(session: &mut Session, ctx: &mut RequestCtx, refusal: &Refusal) -> Result<Routed> {
    refuse(session, ctx, refusal).await?;
    Ok(Routed::Answered)
}

/// The request's host (`Host`, else the URI's authority), normalised; `None` without one.
fn request_host(req: &RequestHeader) -> Option<String> {
    let raw = req
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri.authority().map(|a| a.as_str().to_owned()))?;
    normalize_host(&raw)
}
