//! The upstream side of a proxied request: the peer with the configured timeouts, and the
//! request head the upstream receives (`Host`, `X-Forwarded-*`, `HEADERS`).

use http::{header, HeaderValue};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::RequestHeader;
use pingora_proxy::Session;

use super::client_addr;
use super::ctx::RequestCtx;
use crate::config::values::normalize_host;
use crate::config::{Config, Limits};

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

/// Rewrites the upstream request: `Host` names the chosen upstream; `X-Forwarded-For` and
/// `X-Forwarded-Proto` describe the client as [`super::client_addr`] resolved it (the client's
/// own values are replaced); `X-Forwarded-Host` is the request's `Host` when that is a
/// `PUBLIC_HOSTS` entry or a `DOMAIN_MAP` site, else absent; the site's `HEADERS` are added.
pub(crate) fn prepare_request(
    config: &Config,
    session: &Session,
    req: &mut RequestHeader,
    ctx: &RequestCtx,
) -> pingora_error::Result<()> {
    let public = forwarded_host(config, ctx, req);
    match public {
        Some(host) => req.insert_header("x-forwarded-host", host)?,
        None => {
            req.remove_header("x-forwarded-host");
        }
    }
    if let Some(spec) = &ctx.upstream {
        req.insert_header(header::HOST, spec.host_header())?;
    }
    let own = client_addr::own_scheme(session);
    match &ctx.client {
        Some(client) => {
            req.insert_header("x-forwarded-for", client.forwarded_for())?;
            let proto = HeaderValue::from_static(client.forwarded_proto(own));
            req.insert_header("x-forwarded-proto", proto)?;
        }
        None => {
            req.remove_header("x-forwarded-for");
            req.insert_header("x-forwarded-proto", HeaderValue::from_static(own))?;
        }
    }
    for (k, v) in &ctx.site.config.headers {
        req.insert_header(k.clone(), v.clone())?;
    }
    Ok(())
}

/// The request's `Host`, when the upstream may see it in `X-Forwarded-Host`.
fn forwarded_host(config: &Config, ctx: &RequestCtx, req: &RequestHeader) -> Option<HeaderValue> {
    ctx.upstream.as_ref()?;
    if ctx.site.host.is_none() && config.public_hosts.is_empty() {
        return None;
    }
    let host = req.headers.get(header::HOST)?;
    let name = normalize_host(host.to_str().ok()?)?;
    let public =
        ctx.site.host.as_deref() == Some(name.as_str()) || config.public_hosts.contains(&name);
    public.then(|| host.clone())
}
