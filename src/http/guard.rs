//! The first guards of the public edge (docs/SECURITY.md): the client connection's timeouts,
//! the size and shape of the request head, and the pairing rates.
//!
//! - [`guard_request`]: sets the client connection's idle timeout, then refuses a
//!   request-target over `MAX_URL_BYTES` (414), header fields over `MAX_HEADER_BYTES` (431) and
//!   any target that is not a plain origin-form path (400 `invalid_url`: the protocol crate's
//!   `validate_origin_form_within`, the rules of PROTOCOL.md §9.2, also applied to the decoded
//!   URL of an MTE request), then normalises `Content-Length` ([`super::framing`]: one value,
//!   400 when the values differ).
//! - [`check_pairing_rate`]: pairing requests per client IP (the address of
//!   [`super::client_addr`], so behind trusted proxies the real client's) and per client id
//!   (429).
//!
//! Pingora itself already refuses (400, connection closed) request heads over 1 MiB or with more
//! than 256 fields, differing duplicate `Content-Length`s (equal ones it accepts, so
//! [`super::framing::content_length`] makes them one), a final `Transfer-Encoding` other
//! than `chunked` (e.g. `xchunked`), `Transfer-Encoding` on HTTP/1.0, obs-fold and CONNECT; it
//! drops `Content-Length` when `Transfer-Encoding` is present and re-writes every forwarded
//! head itself (no byte of the client's head is copied upstream). The head read deadline is
//! [`super::deadline`].

use std::hash::Hash;
use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Duration;

use pingora_error::Result;
use pingora_limits::rate::Rate;
use pingora_proxy::Session;
use pqrelay_protocol::validate_origin_form_within;

use super::ctx::RequestCtx;
use super::reply::refuse;
use crate::config::Limits;
use crate::error::{ErrorKind, Refusal};

/// The window of the pairing rates, also the `Retry-After` of a 429.
pub(crate) const RATE_WINDOW: Duration = Duration::from_secs(1);

/// The first step of routing: client timeouts, then size and shape of the request head.
/// `Ok(true)` when the relay answered with an error.
pub(crate) async fn guard_request(
    limits: &Limits,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Result<bool> {
    session.set_read_timeout(Some(limits.client_timeout));
    session.set_write_timeout(Some(limits.client_timeout));
    let req = session.req_header();
    let url_len = req.raw_path().len();
    if url_len > limits.max_url_bytes {
        let message = format!(
            "the request-target is {url_len} bytes; the limit is {} (MAX_URL_BYTES)",
            limits.max_url_bytes
        );
        return refuse(
            session,
            ctx,
            &Refusal::new(ErrorKind::URI_TOO_LONG, message),
        )
        .await;
    }
    let header_bytes = header_bytes(req);
    if header_bytes > limits.max_header_bytes {
        let message = format!(
            "the request headers are {header_bytes} bytes; the limit is {} (MAX_HEADER_BYTES)",
            limits.max_header_bytes
        );
        let refusal = Refusal::new(ErrorKind::HEADERS_TOO_LARGE, message);
        return refuse(session, ctx, &refusal).await;
    }
    let refusal = match std::str::from_utf8(req.raw_path()) {
        Ok(target) => validate_origin_form_within(target, limits.max_url_bytes)
            .err()
            .map(|e| Refusal::protocol(&e.into())),
        Err(_) => Some(Refusal::new(
            ErrorKind::INVALID_URL,
            "the request-target is not ASCII",
        )),
    };
    let refusal =
        refusal.or_else(|| super::framing::content_length(session.req_header_mut()).err());
    match refusal {
        Some(refusal) => refuse(session, ctx, &refusal).await,
        None => Ok(false),
    }
}

/// The size of the request's header fields as counted against `MAX_HEADER_BYTES`: name, value
/// and 4 bytes (`: ` and CRLF) per field.
pub(crate) fn header_bytes(req: &pingora_http::RequestHeader) -> usize {
    req.headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum()
}

/// Pairing-rate counters, one per process: shared by every `DOMAIN_MAP` site, so a client IP
/// is limited across sites.
struct PairRates {
    per_ip: Rate,
    per_client: Rate,
}

static PAIR_RATES: LazyLock<PairRates> = LazyLock::new(|| PairRates {
    per_ip: Rate::new(RATE_WINDOW),
    per_client: Rate::new(RATE_WINDOW),
});

/// Counts one pairing request against `limit` per [`RATE_WINDOW`] for `key`; the message of
/// a refusal when over.
fn over_rate<K: Hash>(rate: &Rate, key: &K, limit: u32, what: &str, env: &str) -> Option<String> {
    if limit == 0 {
        return None;
    }
    let seen = rate.observe(key, 1);
    (seen > limit as isize).then(|| {
        format!("more than {limit} pairing requests per second {what} ({env}); retry after 1 s")
    })
}

/// Counts a pairing request from `ip` (always) and for `client` (once its id verified);
/// the 429 (with `Retry-After: 1`) when either is over its rate.
pub(crate) fn check_pairing_rate(
    limits: &Limits,
    ip: Option<IpAddr>,
    client: Option<&[u8; 16]>,
) -> Result<(), Refusal> {
    let rates = &*PAIR_RATES;
    if let Some(ip) = ip {
        if let Some(m) = over_rate(
            &rates.per_ip,
            &ip,
            limits.pair_rate_per_ip,
            "from this IP address",
            "PAIR_RATE_PER_IP",
        ) {
            return Err(rate_limited(m));
        }
    }
    if let Some(id) = client {
        if let Some(m) = over_rate(
            &rates.per_client,
            id,
            limits.pair_rate_per_client,
            "for this client id",
            "PAIR_RATE_PER_CLIENT",
        ) {
            return Err(rate_limited(m));
        }
    }
    Ok(())
}

fn rate_limited(message: String) -> Refusal {
    Refusal::new(ErrorKind::RATE_LIMITED, message).retry_after(RATE_WINDOW.as_secs() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairing_rate_counts_per_key() {
        let limits = Limits {
            pair_rate_per_ip: 3,
            pair_rate_per_client: 2,
            ..Limits::default()
        };
        let ip: IpAddr = "192.0.2.77".parse().unwrap();
        for _ in 0..3 {
            assert!(check_pairing_rate(&limits, Some(ip), None).is_ok());
        }
        let refused = check_pairing_rate(&limits, Some(ip), None).unwrap_err();
        assert!(refused.message.contains("PAIR_RATE_PER_IP"), "{refused:?}");
        let client = [9u8; 16];
        let other: IpAddr = "192.0.2.78".parse().unwrap();
        assert!(check_pairing_rate(&limits, Some(other), Some(&client)).is_ok());
        assert!(check_pairing_rate(&limits, None, Some(&client)).is_ok());
        let refused = check_pairing_rate(&limits, None, Some(&client)).unwrap_err();
        assert!(
            refused.message.contains("PAIR_RATE_PER_CLIENT"),
            "{refused:?}"
        );
        assert_eq!(refused.retry_after, Some(1));
        let off = Limits {
            pair_rate_per_ip: 0,
            ..limits
        };
        for _ in 0..10 {
            assert!(check_pairing_rate(&off, Some(ip), None).is_ok());
        }
    }
}
