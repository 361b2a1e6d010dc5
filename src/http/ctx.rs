//! Per-request state shared by the HTTP layer's steps.

use std::sync::Arc;
use std::time::Instant;

use pqrelay_protocol::client_id::VerifiedClientId;
use pqrelay_protocol::RelayHeader;

use super::client_addr::ClientAddr;
use crate::config::UpstreamSpec;
use crate::site::Site;

/// What kind of request this is, decided by routing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum RouteKind {
    /// Not routed yet (or the request failed before routing).
    #[default]
    Unrouted,
    /// A CORS preflight answered by the relay.
    Preflight,
    /// A route the relay answers itself (`/api/mte-relay`, `/api/mte-echo/...`, ...).
    Own(&'static str),
    /// A `PASS_THROUGH_ROUTES` route, proxied untouched.
    PassThrough,
    /// An MTE request (an exchange, once its `x-mte-relay` header verified).
    Mte,
    /// An outbound-mode request, sealed to a remote relay.
    Outbound,
    /// Answered by the relay with an error.
    Rejected,
}

impl RouteKind {
    /// Short name for access logs.
    pub(crate) fn name(self) -> &'static str {
        match self {
            RouteKind::Unrouted => "unrouted",
            RouteKind::Preflight => "preflight",
            RouteKind::Own(name) => name,
            RouteKind::PassThrough => "pass-through",
            RouteKind::Mte => "mte",
            RouteKind::Outbound => "outbound",
            RouteKind::Rejected => "rejected",
        }
    }

    /// The bounded `route` label of the metrics.
    pub(crate) fn metric_label(self) -> &'static str {
        match self {
            RouteKind::Mte => "mte",
            RouteKind::PassThrough => "pass_through",
            RouteKind::Own(_) | RouteKind::Outbound => "own",
            RouteKind::Preflight => "preflight",
            RouteKind::Rejected => "rejected",
            RouteKind::Unrouted => "unrouted",
        }
    }
}

/// The request's `x-mte-relay` header, parsed and its client id verified — once per request.
#[derive(Debug, Clone)]
pub(crate) struct RelayRequest {
    /// The parsed header (discovery form `1.<token>`, or an exchange).
    pub header: RelayHeader,
    /// The verified client id, and its token under the current secret.
    pub client: VerifiedClientId,
}

/// The HTTP layer's per-request context.
#[derive(Debug)]
pub(crate) struct RequestCtx {
    /// The site serving this request.
    pub site: Arc<Site>,
    /// Where the request comes from (set first thing; `None` without an IP peer).
    pub client: Option<ClientAddr>,
    /// Routing decision.
    pub route: RouteKind,
    /// The request's `Origin` when it is allowed (reflected in CORS headers).
    pub cors_origin: Option<String>,
    /// The upstream chosen for this request.
    pub upstream: Option<Arc<UpstreamSpec>>,
    /// Upstream connection attempts so far.
    pub tries: usize,
    /// When the upstream was chosen, while its response header is awaited (metrics only).
    pub upstream_started: Option<Instant>,
    /// Error code of a relay error reply, for the access log.
    pub error_code: Option<&'static str>,
    /// When the request started.
    pub started: Instant,
}

impl RequestCtx {
    /// A context for a request served (until site selection says otherwise) by `site`.
    pub(crate) fn new(site: Arc<Site>) -> RequestCtx {
        RequestCtx {
            site,
            client: None,
            route: RouteKind::Unrouted,
            cors_origin: None,
            upstream: None,
            tries: 0,
            upstream_started: None,
            error_code: None,
            started: Instant::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_are_the_documented_ones() {
        for kind in [
            RouteKind::Unrouted,
            RouteKind::Preflight,
            RouteKind::Own("echo"),
            RouteKind::PassThrough,
            RouteKind::Mte,
            RouteKind::Outbound,
            RouteKind::Rejected,
        ] {
            let labels = [
                "mte",
                "pass_through",
                "own",
                "preflight",
                "rejected",
                "unrouted",
            ];
            assert!(labels.contains(&kind.metric_label()));
        }
    }
}
