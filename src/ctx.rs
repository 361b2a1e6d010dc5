//! Per-request state shared by the proxy's filters.

use std::sync::Arc;
use std::time::Instant;

use crate::client_id::CLIENT_ID_LEN;
use crate::upstream::UpstreamSpec;

/// What kind of request this is, decided by `request_filter`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RouteKind {
    /// Not routed yet (or the request failed before routing).
    #[default]
    Unrouted,
    /// A CORS preflight answered by the relay.
    Preflight,
    /// A route the relay answers itself (`/api/mte-relay`, `/api/mte-echo/...`, ...).
    Own(&'static str),
    /// A `PASS_THROUGH_ROUTES` route, proxied untouched.
    PassThrough,
    /// An MTE request: it carried an `x-mte-relay` header whose client id verified.
    ///
    /// This is the seam for the exchange: decoding the request body, encoding the response
    /// body and updating pair state hang off this variant.
    Mte(MteRequest),
    /// Answered by the relay with an error.
    Rejected,
}

impl RouteKind {
    /// Short name for access logs.
    pub fn name(&self) -> &'static str {
        match self {
            RouteKind::Unrouted => "unrouted",
            RouteKind::Preflight => "preflight",
            RouteKind::Own(name) => name,
            RouteKind::PassThrough => "pass-through",
            RouteKind::Mte(_) => "mte",
            RouteKind::Rejected => "rejected",
        }
    }
}

/// An MTE request whose client id verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MteRequest {
    /// The verified raw client id.
    pub client_id: [u8; CLIENT_ID_LEN],
    /// The client id token under the current secret (send it back when `!token_is_current`).
    pub current_token: String,
    /// `false` when the client's token was signed with a previous secret.
    pub token_is_current: bool,
    /// The `x-mte-relay` fields after `1.<token>`: `<pair-id>.<counter>.<flags>` for exchange
    /// requests, unparsed (empty on a bare `1.<token>`).
    pub fields: Vec<String>,
}

/// The proxy's per-request context.
#[derive(Debug)]
pub struct RequestCtx {
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
    /// The exchange of an MTE request once its header block opened (keys, decoder, encoder).
    pub exchange: Option<Box<crate::exchange::Exchange>>,
    /// The `DOMAIN_MAP` site serving this request; `None` = the relay's own state.
    pub site: Option<crate::domains::SiteRef>,
}

impl Default for RequestCtx {
    fn default() -> Self {
        RequestCtx {
            route: RouteKind::Unrouted,
            cors_origin: None,
            upstream: None,
            tries: 0,
            upstream_started: None,
            error_code: None,
            started: Instant::now(),
            exchange: None,
            site: None,
        }
    }
}
