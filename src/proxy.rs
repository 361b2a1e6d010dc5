//! The relay as a Pingora `ProxyHttp`. Each filter is a few lines delegating to the modules
//! that own the logic.
//!
//! A request's life:
//! 1. `request_filter` → [`routes::route_request`]: CORS preflight, the relay's own routes,
//!    pass-through, then MTE routes. It either answers (`Ok(true)`, via [`routes::send`] or
//!    [`routes::send_error`], which add CORS and `HEADERS`) or sets [`RequestCtx::route`].
//! 2. `upstream_peer` → [`crate::upstream::Upstreams::select`] (round robin, healthy first)
//!    with the configured timeouts ([`crate::limits::apply_upstream_timeouts`]);
//!    `fail_to_connect` retries the next backend.
//! 3. `upstream_request_filter` → [`crate::upstream::prepare_request`] (Host, X-Forwarded-*,
//!    `HEADERS`).
//!    For MTE requests [`exchange::request::rewrite_upstream_request`] first puts the decoded
//!    target and headers in place.
//! 4. `request_body_filter` → [`exchange::request::decode_body`] (MTE: STREAM records opened as
//!    they arrive).
//! 5. `response_filter` → [`exchange::response::seal_head`] (MTE), then
//!    [`routes::finish_response`] (CORS, `HEADERS`); `response_body_filter` →
//!    [`exchange::response::seal_body`].
//! 6. `fail_to_proxy` answers errors in the JSON error shape; `logging` writes the access line
//!    and records the request's metrics ([`crate::metrics::request_done`]).
//!
//! An MTE request reaches the proxy phases only after [`exchange::request::begin`] opened its
//! sealed items and committed the pair's next state; its [`crate::exchange::Exchange`] lives in
//! [`RequestCtx::exchange`]. Once a body byte went through the decoder no retry is allowed
//! (Pingora would replay the buffered body into a decoder that already consumed it).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};

use crate::ctx::RequestCtx;
use crate::error::ErrorKind;
use crate::exchange;
use crate::logging::ACCESS_TARGET;
use crate::routes;
use crate::state::RelayState;

/// The relay service.
pub struct Relay {
    /// Shared state.
    pub state: Arc<RelayState>,
}

impl Relay {
    /// The state serving this request: its `DOMAIN_MAP` site, else the relay's own.
    fn site(&self, ctx: &RequestCtx) -> Arc<RelayState> {
        ctx.site
            .as_ref()
            .map_or_else(|| self.state.clone(), |s| s.state.clone())
    }
}

#[async_trait]
impl ProxyHttp for Relay {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        crate::lifecycle::close_when_draining(session, self.state.store.as_ref());
        if let Some(answered) = crate::outbound::handle(&self.state, session, ctx).await? {
            return Ok(answered);
        }
        match crate::domains::select(&self.state, session.req_header()) {
            crate::domains::Selection::Default => {}
            crate::domains::Selection::Site(site) => ctx.site = Some(site),
            crate::domains::Selection::Unknown => {
                return crate::domains::misdirected(&self.state, session, ctx).await
            }
        }
        routes::route_request(&self.site(ctx), session, ctx).await
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        ctx.tries += 1;
        let (mut peer, spec) =
            self.site(ctx).upstreams.select().ok_or_else(|| {
                Error::explain(ErrorType::ConnectNoRoute, "no upstream available")
            })?;
        crate::limits::apply_upstream_timeouts(&self.state.config.limits, &mut peer);
        ctx.upstream = Some(spec);
        crate::metrics::upstream_chosen(ctx);
        Ok(peer)
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // Nothing reached the upstream: try the next backend, once each (an MTE request only
        // while its body decoder has seen nothing).
        let body_started = ctx.exchange.as_ref().is_some_and(|x| x.body_started);
        e.set_retry(ctx.tries < self.site(ctx).upstreams.len && !body_started);
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        let replay_unsafe = ctx.exchange.as_ref().is_some_and(|x| x.body_started);
        if replay_unsafe
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
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(x) = &ctx.exchange {
            exchange::request::rewrite_upstream_request(x, req)?;
        }
        crate::upstream::prepare_request(&self.site(ctx).config, session, req, ctx)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
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
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if resp.status.is_informational() {
            return Ok(());
        }
        crate::metrics::upstream_answered(ctx);
        if let Some(x) = ctx.exchange.as_mut() {
            let is_head = session.req_header().method == http::Method::HEAD;
            exchange::response::seal_head(x, is_head, resp)?;
        }
        routes::finish_response(&self.site(ctx), ctx, resp);
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if let Some(x) = ctx.exchange.as_mut() {
            exchange::response::seal_body(x, body, end_of_stream)?;
        }
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let status = match e.etype() {
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
        };
        if status > 0 && session.response_written().is_none() {
            // The connection is not reused (below): say so, or a client that reuses it at
            // once loses its next request.
            session.set_keepalive(None);
            let kind = ErrorKind::for_status(status);
            if routes::send_error(&self.site(ctx), session, ctx, kind, kind.meaning)
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

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let req = session.req_header();
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        crate::metrics::request_done(ctx, status, e);
        log::info!(
            target: ACCESS_TARGET,
            "{} \"{} {}\" {status} {}ms route={} upstream={} error={}",
            OrEmpty(session.client_addr()),
            req.method,
            req.uri.path(),
            ctx.started.elapsed().as_millis(),
            ctx.route.name(),
            OrDash(ctx.upstream.as_deref()),
            ctx.error_code
                .or_else(|| e.map(|e| e.etype().as_str()))
                .unwrap_or("-"),
        );
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, _error: &Error) -> bool {
        // The access line already names the error; Pingora's own line would repeat it with
        // the peer's details at error level.
        !log::log_enabled!(target: "pqrelay", log::Level::Debug)
    }
}

/// An optional value in the access line: the value, or nothing.
struct OrEmpty<T>(Option<T>);

impl<T: std::fmt::Display> std::fmt::Display for OrEmpty<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => Ok(()),
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
