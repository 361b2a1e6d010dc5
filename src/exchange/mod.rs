//! One exchange on an MTE route (PROTOCOL.md §9): open the sealed request, proxy it plain, seal
//! the response.
//!
//! - [`request::begin`] (from `request_filter`): in the order of §9.4 — the header (parsed and
//!   verified by routing), the pair's state (563, 569) and counter (564), then the commit of
//!   the pair's next state *before* anything is opened, then the sealed URL and header block,
//!   the `retry` rule, `MTE_ROUTES` and the body framing. From the commit on, every refusal is
//!   authenticated with `ke_m` (§11.2) and says what became of the request ([`Exchange::auth`]).
//! - [`request::rewrite_upstream_request`] (from `upstream_request_filter`): the decoded target
//!   and sealed headers replace the wire ones; of the plain headers only `PLAIN_HEADERS` stay.
//!   The session's own request header is left as it came off the wire, so access logs never
//!   show a decoded path.
//! - [`request::decode_body`] (from `request_body_filter`): STREAM records opened as bytes
//!   arrive, whatever the TCP split; memory stays at one record.
//! - [`response::seal_head`] / [`response::seal_body`] (from `response_filter` /
//!   `response_body_filter`): the upstream's headers sealed, the body sealed in sized mode
//!   (upstream `content-length`) or streaming mode (chunked, one record per upstream piece so
//!   Server-Sent Events arrive one by one).

pub(crate) mod request;
pub(crate) mod response;

use http::Uri;
use pqrelay_protocol::{
    AeadKey, ClientIdToken, ErrorTagKey, ExchangeId, Flags, MessageContext, StreamDecoder,
    StreamEncoder, Verdict,
};

use crate::error::ErrorAuth;

/// The state of one exchange, kept in the request context from `request_filter` to `logging`.
///
/// Holds the response and error keys, so its `Debug` shows only non-secret fields.
pub(crate) struct Exchange {
    /// The client id token to echo (re-signed under the current secret).
    pub token: ClientIdToken,
    /// The client, pair and counter of this exchange.
    pub id: ExchangeId,
    /// The request's flags.
    pub request_flags: Flags,
    /// The request's message context (the response's is derived from it).
    pub context: MessageContext,
    /// `ks_n`, sealing the response.
    pub response_key: AeadKey,
    /// `ke_n`, tagging the relay's errors for this exchange.
    pub error_key: ErrorTagKey,
    /// The decoded request-target.
    pub target: Uri,
    /// The decoded request headers, in order.
    pub headers: Vec<(String, String)>,
    /// How the body goes upstream.
    pub framing: Framing,
    /// Opens the request body; `None` without a body or once finished.
    pub decoder: Option<StreamDecoder>,
    /// True once a body byte reached the decoder (no retry may replay the body after that).
    pub body_started: bool,
    /// True once the request head went to the upstream.
    pub head_sent: bool,
    /// True once the whole request body was opened (or there was none).
    pub body_done: bool,
    /// Seals the response body; set by [`response::seal_head`].
    pub encoder: Option<StreamEncoder>,
    /// True when the response streams (flush a record per upstream piece).
    pub streaming_response: bool,
}

/// How an exchange's body is framed upstream (PROTOCOL.md §9.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body and no framing header (the wire request had neither).
    None,
    /// No body, `content-length: 0` (the wire request said so: an empty POST).
    Empty,
    /// `content-length: L` (a sized body without flag `streaming`, `L > 0`).
    Sized(u64),
    /// Chunked (every other body).
    Chunked,
}

impl Exchange {
    /// What became of the request so far, for an error now (PROTOCOL.md §11.2): nothing went
    /// upstream (`dead`: its counter is spent), part of it did, or all of it did.
    pub(crate) fn verdict(&self) -> Verdict {
        match (self.head_sent, self.body_done) {
            (false, _) => Verdict::Dead,
            (true, false) => Verdict::Partial,
            (true, true) => Verdict::Complete,
        }
    }

    /// The authentication of an error answering this exchange, with `verdict`.
    pub(crate) fn auth(&self, verdict: Verdict) -> ErrorAuth {
        ErrorAuth {
            exchange: self.id,
            key: self.error_key.clone(),
            verdict,
        }
    }
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("pair_id", &self.id.pair_id.to_b64())
            .field("counter", &self.id.counter)
            .field("request_flags", &self.request_flags.bits())
            .field("framing", &self.framing)
            .field("body_started", &self.body_started)
            .field("streaming_response", &self.streaming_response)
            .finish_non_exhaustive()
    }
}
