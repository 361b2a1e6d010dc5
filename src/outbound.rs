//! Outbound mode (the vendor's "API Relay", server-to-server): this relay acts as a pqrelay
//! client for services behind it.
//!
//! With `OUTBOUND_TOKEN` set, a plain request carrying
//!
//! ```text
//! x-mte-outbound-token: <OUTBOUND_TOKEN>
//! x-mte-upstream: https://partner-relay.example     (an origin listed in OUTBOUND_UPSTREAMS)
//! x-mte-encode-url: true | false                    (optional, default true; yes/no/on/off/1/0)
//! x-mte-encode-headers: true | false | a,b,c        (optional: accepted, everything is sealed)
//! x-mte-encode-type: MTE | MKE                      (optional: accepted, logged)
//! ```
//!
//! is sealed by this relay (method, path and query, every header, body), sent to the remote
//! relay, and the remote's sealed answer is opened and returned plain. Every forwarded header is
//! sealed whatever `x-mte-encode-headers` says: a version-2 relay forwards only sealed request
//! headers (cookies excepted, PROTOCOL.md §9.2), so a plain one would be dropped on the way
//! ([`options`]).
//!
//! One [`client::Remote`] per remote relay of `OUTBOUND_UPSTREAMS` does discovery, pairing
//! with a trusted relay key (the entry's pins, `https://b.example;pin=sha256:…`, else trust on
//! first use shared by the fleet), recovery from 559–569 and the delivery rules of §12; its
//! client id, trusted keys and pairs live in the configured store ([`crate::store::outbound`]:
//! memory, or Redis with `REDIS_URL`), so every relay sharing the store shares them.
//!
//! # A request's life
//!
//! 1. [`handle`], first thing in `request_filter`: a request with either control header is an
//!    outbound request. No or a wrong token → 401 (compared in constant time, never logged);
//!    no `x-mte-upstream` → 400; a remote relay not in `OUTBOUND_UPSTREAMS` → 403 (this is no
//!    open proxy); an option value that is not accepted → 400 naming the accepted values.
//! 2. The `x-mte-*` control headers, `host`, framing and hop-by-hop headers are removed; the
//!    rest is sealed and forwarded by the remote relay.
//! 3. Body ([`forward`]): none stays none; `content-length: 0` stays an empty body
//!    (`content-length: 0`, no invented content type). Up to [`REPLAY_BUFFER`] bytes are read
//!    first: a body that ends within them is sent as bytes (sized, replayable). A longer body
//!    streams through a bounded channel ([`CHANNEL_DEPTH`] pieces) into the client's sealing
//!    body, sized when the caller sent `content-length`, chunked otherwise; memory stays
//!    bounded whatever the size.
//! 4. The engine sends it as §12 says: an idempotent request (or one with `idempotency-key`)
//!    is sent again after a recoverable error or a lost connection; any other only when the
//!    remote relay proved it never ran, or once with flag `retry` — otherwise the caller gets
//!    **502 `outcome_unknown`**: the remote upstream may or may not have run it. A remote relay
//!    whose key is not trusted (pins, or the keys first seen) or that does not confirm the
//!    pairing is 502 `outbound_failed` naming the fingerprints.
//! 5. The opened response head is written (decoded headers, `content-length` when the remote
//!    sent a sized body, chunked otherwise) and the body streamed back record by record.
//!
//! The request body is read completely before the response is relayed (half duplex): an
//! upstream that answers while still reading a large body sees its answer held until then.

use std::sync::Arc;

use http::HeaderValue;
use pingora_error::Result;
use pingora_proxy::Session;
use pqrelay_client::HttpOptions;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::values::{parse_upstreams, RemoteRelay};
use crate::config::{Config, UpstreamSpec};
use crate::error::{ErrorKind, Refusal};
use crate::http::ctx::{RequestCtx, RouteKind};
use crate::store::outbound::{OutboundBackend, OutboundPairs};
use crate::store::outbound_memory::OutboundMemory;
use crate::store::outbound_redis::OutboundRedis;
use crate::store::StoreConfig;

pub(crate) mod client;
mod forward;
pub(crate) mod options;

use client::Remote;

/// The header carrying `OUTBOUND_TOKEN`.
pub(crate) const TOKEN_HEADER: &str = "x-mte-outbound-token";
/// The header naming the remote relay (an origin).
pub(crate) const UPSTREAM_HEADER: &str = "x-mte-upstream";
/// Request bodies up to this size are read whole and sent replayable.
pub(crate) const REPLAY_BUFFER: usize = 64 * 1024;
/// Pieces of a streamed request body in flight between the downstream reader and the sealer.
pub(crate) const CHANNEL_DEPTH: usize = 4;

/// Outbound mode: the token's digest and one client per allowed remote relay.
pub(crate) struct Outbound {
    token_digest: [u8; 32],
    remotes: Vec<(UpstreamSpec, Remote)>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let remotes: Vec<String> = self.remotes.iter().map(|(s, _)| s.to_string()).collect();
        f.debug_struct("Outbound")
            .field("remotes", &remotes)
            .finish_non_exhaustive()
    }
}

impl Outbound {
    /// Builds outbound mode from `OUTBOUND_TOKEN` / `OUTBOUND_UPSTREAMS` (`Ok(None)` when the
    /// token is not set). No I/O: remote relays are discovered and paired on first use. An
    /// `https` remote is verified against the web PKI roots plus `UPSTREAM_CA_FILE`. Client
    /// state goes to Redis when `REDIS_URL` is set (sealed with `STATE_SECRET`), else memory.
    pub(crate) fn new(config: &Config) -> Result<Option<Outbound>, String> {
        let Some(token) = &config.outbound_token else {
            return Ok(None);
        };
        let http = pqrelay_client::http_client(&http_options(config)?)
            .map_err(|e| format!("outbound HTTP client: {e}"))?;
        let backend: Arc<dyn OutboundBackend> = match StoreConfig::from_config(config).redis {
            Some(redis) => Arc::new(OutboundRedis::new(&redis).map_err(|e| e.to_string())?),
            None => Arc::new(OutboundMemory::default()),
        };
        let secret = config.state_secret();
        let mut remotes = Vec::new();
        for RemoteRelay { spec, pins } in config.outbound_upstreams.iter().cloned() {
            let origin = spec.to_string();
            let base = origin
                .parse()
                .map_err(|_| format!("OUTBOUND_UPSTREAMS {spec}: not a URL"))?;
            let pairs = OutboundPairs::new(backend.clone(), secret.expose().as_bytes(), &origin);
            let remote = client::remote(base, http.clone(), pairs, pins, config.max_pool_size);
            remotes.push((spec, remote));
        }
        Ok(Some(Outbound {
            token_digest: Sha256::digest(token.expose().as_bytes()).into(),
            remotes,
        }))
    }

    /// Whether the presented token is the configured one (constant time, over digests so the
    /// length leaks nothing either).
    fn token_ok(&self, presented: Option<&HeaderValue>) -> bool {
        presented.is_some_and(|v| {
            let digest = Sha256::digest(v.as_bytes());
            bool::from(digest.as_slice().ct_eq(&self.token_digest))
        })
    }

    /// The client of an allowed remote relay.
    fn client_for(&self, spec: &UpstreamSpec) -> Option<&Remote> {
        self.remotes.iter().find(|(s, _)| s == spec).map(|(_, c)| c)
    }
}

/// Options of the HTTP client to remote relays: `UPSTREAM_CONNECT_TIMEOUT_MS`, and the web PKI
/// roots plus `UPSTREAM_CA_FILE` for `https`.
fn http_options(config: &Config) -> Result<HttpOptions, String> {
    let mut options = HttpOptions::default();
    options.connect_timeout = Some(config.limits.upstream_connect_timeout);
    if let Some(ca) = &config.upstream_ca_file {
        let pem =
            std::fs::read(ca).map_err(|e| format!("UPSTREAM_CA_FILE {}: {e}", ca.display()))?;
        options.extra_ca_pem = Some(pem);
    }
    Ok(options)
}

/// The first step of `request_filter`: `Ok(None)` when this is not an outbound request (or
/// outbound mode is off); otherwise the request is answered here (`Ok(Some(true))`).
pub(crate) async fn handle(
    outbound: Option<&Outbound>,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Result<Option<bool>> {
    let Some(outbound) = outbound else {
        return Ok(None);
    };
    let req = session.req_header();
    if !req.headers.contains_key(TOKEN_HEADER) && !req.headers.contains_key(UPSTREAM_HEADER) {
        return Ok(None);
    }
    ctx.route = RouteKind::Outbound;
    if !outbound.token_ok(req.headers.get(TOKEN_HEADER)) {
        let kind = ErrorKind::OUTBOUND_UNAUTHORIZED;
        let message = "x-mte-outbound-token is missing or wrong";
        return answer_error(session, ctx, kind, message).await.map(Some);
    }
    let remote = match req.headers.get(UPSTREAM_HEADER).map(|v| v.to_str()) {
        None => Err("an outbound request needs x-mte-upstream: <origin of the remote relay>"),
        Some(Err(_)) => Err("x-mte-upstream is not ASCII"),
        Some(Ok(v)) => match parse_upstreams(v).as_deref() {
            Ok([one]) => Ok(one.clone()),
            _ => Err("x-mte-upstream must be one origin such as https://relay.example.com"),
        },
    };
    let remote = match remote {
        Ok(r) => r,
        Err(message) => {
            let kind = ErrorKind::OUTBOUND_UPSTREAM_MISSING;
            return answer_error(session, ctx, kind, message).await.map(Some);
        }
    };
    let Some(client) = outbound.client_for(&remote) else {
        let kind = ErrorKind::OUTBOUND_UPSTREAM_FORBIDDEN;
        let message = "x-mte-upstream is not one of this relay's OUTBOUND_UPSTREAMS";
        return answer_error(session, ctx, kind, message).await.map(Some);
    };
    let options = match options::parse_options(&req.headers) {
        Ok(o) => o,
        Err(message) => {
            return answer_error(session, ctx, ErrorKind::BAD_REQUEST, &message)
                .await
                .map(Some);
        }
    };
    if let Some(t) = options.encode_type {
        log::debug!("outbound: x-mte-encode-type {t} (one encoding: accepted as is)");
    }
    if let Some(h) = &options.encode_headers {
        log::debug!("outbound: x-mte-encode-headers {h:?} (every forwarded header is sealed)");
    }
    ctx.upstream = Some(Arc::new(remote));
    // Boxed: the forwarding future (a whole client exchange) is ~11 KiB; inline it would grow
    // every request's `request_filter` future, which Pingora boxes and moves per request.
    Box::pin(forward::forward(session, ctx, client, &options))
        .await
        .map(Some)
}

/// Answers with an error reply of this row and message.
pub(crate) async fn answer_error(
    session: &mut Session,
    ctx: &mut RequestCtx,
    kind: ErrorKind,
    message: &str,
) -> Result<bool> {
    let refusal = Refusal::new(kind, message.to_owned());
    crate::http::reply::refuse(session, ctx, &refusal).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_compared_by_digest() {
        let o = Outbound {
            token_digest: Sha256::digest(b"right-token").into(),
            remotes: Vec::new(),
        };
        assert!(o.token_ok(Some(&HeaderValue::from_static("right-token"))));
        assert!(!o.token_ok(Some(&HeaderValue::from_static("right-tokem"))));
        assert!(!o.token_ok(Some(&HeaderValue::from_static(""))));
        assert!(!o.token_ok(None));
    }
}
