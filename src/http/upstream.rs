//! The upstream side of a proxied request: the peer with the configured timeouts, and the
//! request head the upstream receives (`Host`, `X-Forwarded-*`, `HEADERS`).

use http::header;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::RequestHeader;
use pingora_proxy::Session;

use super::ctx::RequestCtx;
use crate::config::Limits;

/// The next upstream of the request's site (round robin, healthy first) with the configured
/// connect and read/write timeouts; records the choice in `ctx`.
pub(crate) fn peer(limits: &Limits, ctx: &mut RequestCtx) -> Option<Box<HttpPeer>> {
    ctx.tries += 1;
    let (mut peer, spec) = ctx.site.upstreams.select()?;
    peer.options.connection_timeout = Some(limits.upstream_connect_timeout);
    peer.options.total_connection_timeout = Some(limits.upstream_connect_timeout);
    peer.options.read_timeout = Some(limits.upstream_read_timeout);
    peer.options.write_timeout = Some(limits.upstream_read_timeout);
    ctx.upstream = Some(spec);
    ctx.upstream_started = crate::metrics::start();
    Some(peer)
}

/// Rewrites the upstream request: `Host` names the chosen upstream, `X-Forwarded-For`,
/// `X-Forwarded-Proto` and `X-Forwarded-Host` describe the client's request, and the site's
/// `HEADERS` are added.
pub(crate) fn prepare_request(
    session: &Session,
    req: &mut RequestHeader,
    ctx: &RequestCtx,
) -> pingora_error::Result<()> {
    if let Some(spec) = &ctx.upstream {
        if let Some(host) = req.headers.get(header::HOST).cloned() {
            req.insert_header("x-forwarded-host", host)?;
        }
        req.insert_header(header::HOST, spec.host_header())?;
    }
    if let Some(addr) = session.client_addr().and_then(|a| a.as_inet()) {
        let ip = addr.ip().to_string();
        let xff = match req
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            Some(prev) if !prev.trim().is_empty() => format!("{prev}, {ip}"),
            _ => ip,
        };
        req.insert_header("x-forwarded-for", xff)?;
    }
    if !req.headers.contains_key("x-forwarded-proto") {
        req.insert_header("x-forwarded-proto", "http")?;
    }
    for (k, v) in &ctx.site.config.headers {
        req.insert_header(k.clone(), v.clone())?;
    }
    Ok(())
}
