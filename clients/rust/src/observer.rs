//! The wire observer: a hook that sees what crossed the wire (for `pqrelay-curl -v` and for
//! tests that assert what an attacker on the wire would see). It never sees keys or plaintext
//! beyond what was sent in the clear.

use std::sync::Arc;

/// Something that crossed the wire, as seen by an attacker between client and relay.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireEvent {
    /// A discovery request (`HEAD /api/mte-relay`) and its answer.
    Discovery {
        /// The HTTP status.
        status: u16,
        /// The `x-mte-relay` header answered, if any.
        relay_header: Option<String>,
        /// The `x-mte-relay-info` header answered, if any.
        relay_info: Option<String>,
        /// The fingerprints of the relay keys offered (`x-mte-relay-keys`), current first.
        relay_keys: Vec<String>,
    },
    /// A pairing request (`POST /api/mte-pair`) and its answer.
    Pairing {
        /// How many pairs were asked for.
        pairs: usize,
        /// The HTTP status.
        status: u16,
        /// Size of the request body.
        request_len: usize,
        /// Size of the response body.
        response_len: usize,
        /// The fingerprint of the relay key paired with.
        relay_key: String,
    },
    /// An exchange request as sent.
    Request {
        /// The method (plain on the wire).
        method: String,
        /// The request-target on the wire: `/<sealed>` or the plain path when not sealed.
        target: String,
        /// The `x-mte-relay` header.
        relay_header: String,
        /// The `x-mte-relay-eh` header.
        sealed_headers: String,
        /// Names of caller headers sent in the clear.
        plain_headers: Vec<String>,
        /// The wire body: `Some(n)` for a sized body of `n` encoded bytes, `None` when streamed
        /// (chunked) or absent (see `has_body`).
        body_len: Option<u64>,
        /// Whether the request has a body.
        has_body: bool,
    },
    /// The head of an exchange response as received.
    Response {
        /// The HTTP status.
        status: u16,
        /// The `x-mte-relay` header, if any.
        relay_header: Option<String>,
        /// The `x-mte-relay-eh` header, if any.
        sealed_headers: Option<String>,
        /// The `content-length` header, if any (absent when chunked).
        content_length: Option<u64>,
        /// The `x-mte-relay-error` header of a relay error answer, if any.
        relay_error: Option<String>,
        /// The `x-mte-relay-verdict` header of a relay error answer, if any (§11.2; see
        /// [`WireEvent::RelayError`] for whether its tag verified).
        verdict: Option<String>,
    },
    /// An exchange got a relay error reply; whether its tag verified (§11.2).
    RelayError {
        /// The HTTP status.
        status: u16,
        /// The tag verified with the exchange's error key: the verdict is the relay's.
        authenticated: bool,
    },
    /// A response body was read to its end.
    ResponseBody {
        /// Bytes received on the wire.
        wire_len: u64,
        /// Plain bytes decoded.
        plain_len: u64,
    },
    /// The client re-paired or re-discovered after a relay error, and possibly retried.
    Recovery {
        /// The relay error status that caused it.
        status: u16,
        /// What the client did: `"re-pair"`, `"re-pair all"`, `"re-discover"`, `"retry"`...
        action: &'static str,
        /// Whether the request is sent again.
        retried: bool,
    },
    /// A request is sent again as §12 allows without a §11.1 action: with flag `retry` on the
    /// same pair (a non-idempotent request), or on the same pair after an answer that did not
    /// open.
    Resend {
        /// Why.
        reason: &'static str,
        /// The next attempt carries flag `retry`.
        retry_flag: bool,
    },
    /// A request ended with outcome unknown (§12).
    OutcomeUnknown {
        /// What happened to the last attempt.
        reason: String,
    },
    /// A request is sent again on a new connection: an idempotent exchange whose connection
    /// failed before an answer, or a discovery or pairing written on a reused keep-alive
    /// connection that closed before any answer byte.
    ConnectionRetry {
        /// Which request: `"exchange"`, `"discovery (HEAD /api/mte-relay)"` or
        /// `"pairing (POST /api/mte-pair)"`.
        request: &'static str,
    },
    /// A discovery or pairing was refused with 429 (`rate_limited`) or 503 (`pairing_busy`,
    /// `state_store_unavailable`, ...): the client waits `Retry-After` (at most 10 s, 1 s when
    /// absent or not delta-seconds) plus a little jitter, then sends it again (§11.1).
    RetryAfter {
        /// Which request: `"discovery (HEAD /api/mte-relay)"` or `"pairing (POST /api/mte-pair)"`.
        request: &'static str,
        /// The status answered (429 or 503).
        status: u16,
        /// The attempt that was refused (1 for the first).
        attempt: u32,
        /// How long the client waits before the next attempt, jitter included.
        wait_ms: u64,
    },
}

/// A wire observer callback; shared by every clone of the client.
pub type WireObserver = Arc<dyn Fn(&WireEvent) + Send + Sync>;
