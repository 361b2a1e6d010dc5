//! The relay as a Pingora `ProxyHttp`. Each filter is a few lines delegating to the layer that
//! owns the logic.
//!
//! A request's life:
//! 1. `request_filter`: the client's address ([`client_addr::of_session`]: the peer, or behind
//!    `TRUSTED_PROXIES` the first untrusted `X-Forwarded-For` hop); outbound mode ([`outbound::handle`]) answers requests for a remote
//!    relay; otherwise [`routes::route`] picks the site, guards the edge, answers preflights
//!    and the relay's own routes, and decides pass-through or MTE; an MTE request then opens
//!    ([`exchange::request::begin`]: sealed URL and headers opened, the pair's next state
//!    committed), else it is refused.
//! 2. `upstream_peer` → [`upstream::peer`] (round robin, healthy first, configured timeouts);
//!    `fail_to_connect` retries the next backend.
//! 3. `upstream_request_filter` → [`exchange::request::rewrite_upstream_request`] for an MTE
//!    request, then [`upstream::prepare_request`] (Host, X-Forwarded-*, `HEADERS`).
//! 4. `request_body_filter` → [`exchange::request::decode_body`] (STREAM records opened as
//!    they arrive).
//! 5. `response_filter` → interim (1xx) responses through [`framing::informational`] (never in
//!    the clear on an MTE route), then [`exchange::response::seal_head`], then [`reply::finish_response`]
//!    (CORS, `HEADERS`); `response_body_filter` → [`exchange::response::seal_body`].
//! 6. `fail_to_proxy` answers errors in the JSON error shape; `logging` writes the access line
//!    (the client address of [`client_addr`]) and records the request's metrics.
//!
//! Once a body byte went through the decoder no retry is allowed (Pingora would replay the
//! buffered body into a decoder that already consumed it).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};

use crate::error::{ErrorKind, Refusal};
use crate::exchange::{self, Exchange};
use crate::http::ctx::RequestCtx;
use crate::http::routes::{self, Routed};
use crate::http::{client_addr, framing, reply, upstream};
use crate::logging::ACCESS_TARGET;
use crate::outbound::{self, Outbound};
use crate::state::RelayState;

/// The relay service.
pub(crate) struct Relay {
    /// Shared state.
    pub state: Arc<RelayState>,
    /// Outbound mode (`OUTBOUND_TOKEN`); `None` when off.
    pub outbound: Option<Outbound>,
}

/// The per-request context: the HTTP layer's, and the exchange of an MTE request.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// Routing, site, upstream and logging state.
    pub http: RequestCtx,
    /// The exchange of an MTE request once its header block opened (keys, decoder, encoder).
    pub exchange: Option<Box<Exchange>>,
}

impl Ctx {
    fn body_started(&self) -> bool {
        self.exchange.as_ref().is_some_and(|x| x.body_started)
    }
}

#[async_trait]
impl ProxyHttp for Relay {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            http: RequestCtx::new(self.state.sites.top.clone()),
            exchange: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        crate::lifecycle::close_when_draining(session, self.state.shares_state());
        let config = &self.state.config;
        ctx.http.client = client_addr::of_session(&config.trusted_proxies, session);
        if let Some(client) = &ctx.http.client {
            client_addr::observe(config, client);
        }
        if let Some(answered) =
            outbound::handle(self.outbound.as_ref(), session, &mut ctx.http).await?
        {
            return Ok(answered);
        }
        match routes::route(&self.state, session, &mut ctx.http).await? {
            Routed::Answered => Ok(true),
            Routed::PassThrough => Ok(false),
            Routed::Mte(relay) => {
                let site = ctx.http.site.clone();
                match exchange::request::begin(&site, session.req_header(), &relay).await {
                    Ok(x) => {
                        ctx.exchange = Some(x);
                        Ok(false)
                    }
                    Err(refusal) => reply::refuse(session, &mut ctx.http, &refusal).await,
                }
            }
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        upstream::peer(&self.state.config.limits, &mut ctx.http)
            .ok_or_else(|| Error::explain(ErrorType::ConnectNoRoute, "no upstream available"))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // Nothing reached the upstream: try the next backend, once each (an MTE request only
        // while its body decoder has seen nothing).
        let backends = ctx.http.site.upstreams.len();
        e.set_retry(ctx.http.tries < backends && !ctx.body_started());
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        if ctx.body_started()
            || !session.req_header().method.is_idempotent()
            || session.as_ref().retry_buffer_truncated()
        {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(x) = ctx.exchange.as_mut() {
            let plain = &self.state.config.plain_headers;
            exchange::request::rewrite_upstream_request(x, req, plain)?;
        }
        upstream::prepare_request(&self.state.config, session, req, &ctx.http)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        match ctx.exchange.as_mut() {
            Some(x) => exchange::request::decode_body(x, body, end_of_stream),
            None => Ok(()),
        }
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if resp.status.is_informational() {
            return framing::informational(resp, ctx.exchange.is_some());
        }
        if let Some(started) = ctx.http.upstream_started.take() {
            let route = ctx.http.route.metric_label();
            crate::metrics::upstream_answered(route, started.elapsed());
        }
        if let Some(x) = ctx.exchange.as_mut() {
            let is_head = session.req_header().method == http::Method::HEAD;
            exchange::response::seal_head(x, is_head, resp)?;
        }
        reply::finish_response(&ctx.http, resp);
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<Duration>> {
        if let Some(x) = ctx.exchange.as_mut() {
            exchange::response::seal_body(x, body, end_of_stream)?;
        }
        Ok(None)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let status = failure_status(e);
        if status > 0 && session.response_written().is_none() {
            // The connection is not reused (below): say so, or a client that reuses it at
            // once loses its next request.
            session.set_keepalive(None);
            let kind = ErrorKind::for_status(status);
            let mut refusal = Refusal::new(kind, kind.meaning);
            if let Some(x) = &ctx.exchange {
                // After the commit: say, authenticated, how far the request got (§11.2).
                refusal = refusal.authenticated(x.auth(x.verdict()));
            }
            if reply::refuse(session, &mut ctx.http, &refusal)
                .await
                .is_err()
            {
                log::debug!("could not send the error reply");
            }
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        crate::http::deadline::next_request(session, self.state.config.limits.client_timeout);
        let req = session.req_header();
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        let http = &ctx.http;
        let error_code = http.error_code.or_else(|| match e.map(|e| e.etype()) {
            Some(ErrorType::HTTPStatus(s)) => Some(ErrorKind::for_status(*s).code),
            _ => None,
        });
        let elapsed = http.started.elapsed();
        crate::metrics::request_done(http.route.metric_label(), status, elapsed, error_code);
        log::info!(
            target: ACCESS_TARGET,
            "{} \"{} {}\" {status} {}ms route={} upstream={} error={}",
            ClientShown(http.client.as_ref(), session.client_addr()),
            req.method,
            req.uri.path(),
            elapsed.as_millis(),
            http.route.name(),
            OrDash(http.upstream.as_deref()),
            http.error_code
                .or_else(|| e.map(|e| e.etype().as_str()))
                .unwrap_or("-"),
        );
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, _error: &Error) -> bool {
        // The access line already names the error; Pingora's own line would repeat it with
        // the peer's details at error level.
        !log::log_enabled!(target: "pqrelay", log::Level::Debug)
    }
}

/// The status answered for a proxying failure (0: none, the client is gone).
fn failure_status(e: &Error) -> u16 {
    match e.etype() {
        ErrorType::HTTPStatus(code) => *code,
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
            if e.esource() == &ErrorSource::Upstream =>
        {
            504
        }
        _ => match e.esource() {
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => match e.etype() {
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => 500,
        },
    }
}

/// The access line's client: the address trusted proxies named, else the peer with its port.
struct ClientShown<'a>(
    Option<&'a client_addr::ClientAddr>,
    Option<&'a pingora_core::protocols::l4::socket::SocketAddr>,
);

impl std::fmt::Display for ClientShown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.0, self.1) {
            (Some(c), _) if c.is_forwarded() => c.ip.fmt(f),
            (_, Some(peer)) => peer.fmt(f),
            (Some(c), None) => c.ip.fmt(f),
            (None, None) => Ok(()),
        }
    }
}

/// An optional value in the access line: the value, or `-`.
struct OrDash<T>(Option<T>);

impl<T: std::fmt::Display> std::fmt::Display for OrDash<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str("-"),
        }
    }
}
