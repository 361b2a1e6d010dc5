//! The relay's error statuses and the one refusal type.
//!
//! [`ERROR_TABLE`] is served by `GET /api/mte-errors`; every error reply the relay writes is a
//! [`Refusal`]: a row of the table, a message safe to send in the clear, and the few reply
//! headers a refusal may need (`Retry-After`, `Allow`). Every error reply has the JSON body
//! `{"status":N,"error":"<code>","message":"<reason>"}` and the header
//! `x-mte-relay-error: <code>`. Statuses 559–569 are MTE errors (the client reacts by
//! re-pairing or re-discovering); the others are ordinary HTTP errors with the same body shape.

use std::borrow::Cow;

use pqrelay_protocol::{ErrorTagKey, ExchangeId, Verdict};
use serde::Serialize;

/// Name of the response header that carries the error code of an error reply.
pub const ERROR_HEADER: &str = "x-mte-relay-error";

/// One row of the error table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ErrorKind {
    /// HTTP status code.
    pub status: u16,
    /// Stable machine-readable code, also sent in `x-mte-relay-error`.
    pub code: &'static str,
    /// What went wrong.
    pub meaning: &'static str,
    /// What a client should do about it.
    pub client_action: &'static str,
}

macro_rules! kinds {
    ($($name:ident = $status:literal, $code:literal, $meaning:literal, $action:literal;)*) => {
        impl ErrorKind {
            $(
                #[doc = concat!("`", stringify!($status), " ", $code, "`: ", $meaning)]
                pub const $name: ErrorKind = ErrorKind {
                    status: $status,
                    code: $code,
                    meaning: $meaning,
                    client_action: $action,
                };
            )*
        }

        /// Every error the relay can answer with, MTE statuses first.
        pub const ERROR_TABLE: &[ErrorKind] = &[$(ErrorKind::$name),*];
    };
}

kinds! {
    MTE_ERROR = 559, "mte_error",
        "Generic state or cryptographic failure for this pair.",
        "Re-pair this pair.";
    CLIENT_ID_MISSING = 560, "client_id_missing",
        "The request carries no client id.",
        "Re-discover (HEAD /api/mte-relay).";
    RELAY_HEADER_INVALID = 561, "relay_header_invalid",
        "The x-mte-relay header is missing or malformed on an MTE route.",
        "Re-pair this pair.";
    DECODE_FAILED = 562, "decode_failed",
        "The relay could not decode the request.",
        "Re-pair this pair.";
    STATE_NOT_FOUND = 563, "state_not_found",
        "The relay holds no state for this pair.",
        "Re-pair this pair.";
    COUNTER_REJECTED = 564, "counter_rejected",
        "The message counter was replayed, stale, too far ahead, or used concurrently.",
        "Re-pair this pair.";
    STATE_STORE_FAILED = 565, "state_store_failed",
        "The relay could not save the pair's state.",
        "Retry, then re-pair this pair.";
    INVALID_CLIENT_ID = 566, "invalid_client_id",
        "The client id's signature does not verify.",
        "Re-discover, then re-pair all pairs.";
    ENCODE_FAILED = 567, "encode_failed",
        "The relay could not encode the response.",
        "Retry.";
    VERSION_UNSUPPORTED = 568, "version_unsupported",
        "The protocol version in x-mte-relay is not supported.",
        "Re-discover.";
    REPAIR_REQUIRED = 569, "repair_required",
        "Every pair must be renewed (state sealed under another secret, or made with a relay key no longer configured).",
        "Re-pair all pairs.";
    RETRY_REFUSED = 564, "retry_refused",
        "A retry request whose previous attempt was accepted: the outcome of the request is unknown.",
        "None: report the outcome as unknown.";
    UNKNOWN_RELAY_KEY = 400, "unknown_relay_key",
        "The pairing request names a relay key this relay does not hold (the message lists the ones it has).",
        "Re-discover; pair with an offered key you trust.";
    BAD_REQUEST = 400, "bad_request",
        "The request is malformed.",
        "Fix the request.";
    FORBIDDEN_HEADER = 400, "forbidden_header",
        "The request carries a header the relay does not accept.",
        "Fix the request.";
    INVALID_URL = 400, "invalid_url",
        "The decoded request URL is not an origin-form path and query.",
        "Fix the request.";
    INVALID_LENGTH = 400, "invalid_length",
        "The body's encoded length or framing does not match its flags.",
        "Fix the request.";
    INVALID_PAIRING = 400, "invalid_pairing",
        "The pairing request is invalid (the message names the problem).",
        "Fix the pairing request.";
    INVALID_METHOD = 400, "invalid_method",
        "The request method cannot be bound into the exchange.",
        "Use a standard method.";
    CORS_FORBIDDEN = 403, "cors_forbidden",
        "The origin or method is not allowed by CORS_ORIGINS / CORS_METHODS.",
        "Use an allowed origin and method, or change the relay's configuration.";
    OUTBOUND_UNAUTHORIZED = 401, "outbound_unauthorized",
        "An outbound request (x-mte-upstream) without the right x-mte-outbound-token.",
        "Send the relay's OUTBOUND_TOKEN.";
    OUTBOUND_UPSTREAM_MISSING = 400, "outbound_upstream_missing",
        "An outbound request names no remote relay (x-mte-upstream), or names it badly.",
        "Send x-mte-upstream: <origin of the remote relay>.";
    OUTBOUND_UPSTREAM_FORBIDDEN = 403, "outbound_upstream_forbidden",
        "The remote relay named by x-mte-upstream is not in OUTBOUND_UPSTREAMS.",
        "Use a listed relay, or change the relay's configuration.";
    MISDIRECTED_REQUEST = 421, "misdirected_request",
        "DOMAIN_MAP is set and the request's Host is not one of its sites.",
        "Send the request to the right host.";
    NOT_FOUND = 404, "not_found",
        "No such route (with MTE_ROUTES set, only listed routes exist).",
        "Fix the URL.";
    METHOD_NOT_ALLOWED = 405, "method_not_allowed",
        "The route exists but not for this method.",
        "Use an allowed method.";
    TOO_LARGE = 413, "too_large",
        "The request body is over the relay's limit.",
        "Send a smaller body.";
    URI_TOO_LONG = 414, "uri_too_long",
        "The request-target is over MAX_URL_BYTES, or the decoded URL is over 8 KiB.",
        "Use a shorter URL.";
    HEADERS_TOO_LARGE = 431, "headers_too_large",
        "The request headers are over MAX_HEADER_BYTES, or the sealed header block over 16 KiB.",
        "Send fewer or smaller headers.";
    RATE_LIMITED = 429, "rate_limited",
        "Too many pairing requests from this IP address or for this client id.",
        "Wait Retry-After seconds, then retry.";
    NOT_IMPLEMENTED = 501, "not_implemented",
        "This relay does not implement the route yet.",
        "Upgrade the relay.";
    UPSTREAM_UNAVAILABLE = 502, "upstream_unavailable",
        "The upstream could not be reached or failed mid-response.",
        "Retry later.";
    STATE_STORE_UNAVAILABLE = 503, "state_store_unavailable",
        "The state store (Redis) is unavailable.",
        "Retry later.";
    SHUTTING_DOWN = 503, "shutting_down",
        "This relay process is shutting down or handing over to a new one (readiness only).",
        "Send new work to another relay; requests in flight still finish.";
    PAIRING_BUSY = 503, "pairing_busy",
        "Every pairing slot is taken (PAIRING_CONCURRENCY key exchanges are running); the request was not queued.",
        "Wait Retry-After seconds, then pair again.";
    UPSTREAM_TIMEOUT = 504, "upstream_timeout",
        "The upstream did not answer in time.",
        "Retry later.";
    INTERNAL = 500, "internal_error",
        "The relay failed unexpectedly.",
        "Retry later.";
    OUTBOUND_FAILED = 502, "outbound_failed",
        "The remote relay of an outbound request failed or could not be reached.",
        "Retry (pairs were renewed if the remote relay lost them).";
    OUTCOME_UNKNOWN = 502, "outcome_unknown",
        "The remote upstream may or may not have run the outbound request (it is not idempotent and the remote relay could not prove it never ran).",
        "Check with the upstream before sending it again, or send it with an idempotency-key.";
}

impl ErrorKind {
    /// The table row for a status, used when only a status is known (e.g. a Pingora error).
    /// Falls back to `internal_error` with the given status kept.
    pub fn for_status(status: u16) -> ErrorKind {
        ERROR_TABLE
            .iter()
            .find(|k| k.status == status)
            .copied()
            .unwrap_or(ErrorKind {
                status,
                ..ErrorKind::INTERNAL
            })
    }

    /// The table row with this code, if any.
    pub fn for_code(code: &str) -> Option<ErrorKind> {
        ERROR_TABLE.iter().find(|k| k.code == code).copied()
    }

    /// The table row for a protocol failure (its §11 status and code).
    pub fn for_protocol(e: &pqrelay_protocol::Error) -> ErrorKind {
        ErrorKind::for_code(e.code()).unwrap_or_else(|| ErrorKind::for_status(e.status()))
    }

    /// The JSON body of an error reply: `{"status":N,"error":"<code>","message":"<reason>"}`,
    /// and `"verdict"` when the reply is authenticated.
    pub fn body(&self, message: &str, verdict: Option<Verdict>) -> Vec<u8> {
        let mut body = serde_json::json!({
            "status": self.status,
            "error": self.code,
            "message": message,
        });
        if let Some(v) = verdict {
            body["verdict"] = v.as_str().into();
        }
        body.to_string().into_bytes()
    }
}

/// What authenticates an exchange's error reply (PROTOCOL.md §11.2): the exchange it answers,
/// its error tag key `ke_m`, and what became of the request.
#[derive(Debug, Clone)]
pub struct ErrorAuth {
    /// The client id, pair id and counter of the request.
    pub exchange: ExchangeId,
    /// `ke_m`.
    pub key: ErrorTagKey,
    /// What became of the request.
    pub verdict: Verdict,
}

/// Why the relay refuses a request: the error row, what to tell the client, and the reply
/// headers that go with it. Built where the refusal is decided; written by the HTTP layer.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The error row (status and code).
    pub kind: ErrorKind,
    /// What went wrong, in words safe to send in the clear (never sealed content or secrets).
    pub message: Cow<'static, str>,
    /// `Retry-After` seconds (429 and busy 503s).
    pub retry_after: Option<u32>,
    /// `Allow` (405): the methods the route answers.
    pub allow: Option<&'static str>,
    /// After the relay identified the pair: the error's authentication.
    pub auth: Option<Box<ErrorAuth>>,
}

impl Refusal {
    /// A refusal with this row and message.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Refusal {
        Refusal {
            kind,
            message: message.into(),
            retry_after: None,
            allow: None,
            auth: None,
        }
    }

    /// The refusal of a protocol failure: its §11 row, and its description as the message
    /// (the protocol crate's messages never hold key material or sealed content).
    pub fn protocol(e: &pqrelay_protocol::Error) -> Refusal {
        Refusal::new(ErrorKind::for_protocol(e), e.to_string())
    }

    /// With `Retry-After: seconds`.
    pub fn retry_after(mut self, seconds: u32) -> Refusal {
        self.retry_after = Some(seconds);
        self
    }

    /// Authenticated for the exchange `auth` names (PROTOCOL.md §11.2).
    pub fn authenticated(mut self, auth: ErrorAuth) -> Refusal {
        self.auth = Some(Box::new(auth));
        self
    }

    /// With `Allow: methods`.
    pub fn allow(mut self, methods: &'static str) -> Refusal {
        self.allow = Some(methods);
        self
    }
}

/// The JSON served by `GET /api/mte-errors`.
pub fn error_table_json() -> Vec<u8> {
    serde_json::to_vec(ERROR_TABLE).unwrap_or_else(|_| b"[]".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mte_statuses_are_559_to_569_in_order() {
        let mte: Vec<u16> = ERROR_TABLE.iter().map(|k| k.status).take(11).collect();
        assert_eq!(mte, (559..=569).collect::<Vec<_>>());
    }

    #[test]
    fn codes_are_unique() {
        let mut codes: Vec<_> = ERROR_TABLE.iter().map(|k| k.code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ERROR_TABLE.len());
    }

    #[test]
    fn every_protocol_code_is_in_the_table() {
        use pqrelay_protocol::{Error, HeaderError, PairingError, UrlError};
        let all = [
            Error::DecodeFailed,
            Error::InvalidLength,
            Error::InvalidMethod,
            Error::Url(UrlError::TooLong),
            Error::Url(UrlError::NotOriginForm),
            Error::Header(HeaderError::TooLarge),
            Error::Header(HeaderError::Forbidden),
            Error::Pairing(PairingError::TooLarge),
            Error::Pairing(PairingError::BadPairId),
            Error::Pairing(PairingError::UnknownRelayKey(pqrelay_protocol::KeyId(
                [0; 32],
            ))),
            Error::Counter(pqrelay_protocol::CounterError::RetryRefused),
        ];
        for e in all {
            let k = ErrorKind::for_protocol(&e);
            assert_eq!((k.status, k.code), (e.status(), e.code()), "{e}");
        }
    }

    #[test]
    fn body_has_the_documented_shape() {
        let v: serde_json::Value =
            serde_json::from_slice(&ErrorKind::INVALID_CLIENT_ID.body("bad", None)).unwrap();
        assert_eq!(v["status"], 566);
        assert_eq!(v["error"], "invalid_client_id");
        assert_eq!(v["message"], "bad");
    }
}
