//! One exchange on an MTE route (PROTOCOL.md §8): open the sealed request, proxy it plain, seal
//! the response.
//!
//! - [`request::begin`] (from `request_filter`): parses `x-mte-relay`, loads the pair, ratchets,
//!   opens the URL and header block, validates them, checks `MTE_ROUTES` on the decoded path,
//!   works out the body framing and only then commits the pair's next state.
//! - [`request::rewrite_upstream_request`] (from `upstream_request_filter`): the decoded target
//!   and headers replace the wire ones. The session's own request header is left as it came
//!   off the wire, so access logs never show a decoded path.
//! - [`request::decode_body`] (from `request_body_filter`): STREAM records opened as bytes
//!   arrive, whatever the TCP split; memory stays at one record.
//! - [`response::seal_head`] / [`response::seal_body`] (from `response_filter` /
//!   `response_body_filter`): the upstream's headers sealed, the body sealed in sized mode
//!   (upstream `content-length`) or streaming mode (chunked, one record per upstream piece so
//!   Server-Sent Events arrive one by one).
//!
//! `accept-encoding` is dropped from upstream requests so that the upstream answers identity:
//! a sealed body does not compress, and the client sees the upstream's representation as is.

pub(crate) mod request;
pub(crate) mod response;

use http::Uri;
use pqrelay_protocol::{AeadKey, Flags, MessageContext, PairId, StreamDecoder, StreamEncoder};

/// The state of one exchange, kept in the request context from `request_filter` to `logging`.
///
/// Holds the response key, so its `Debug` shows only non-secret fields.
pub(crate) struct Exchange {
    /// The client id token to echo (re-signed under the current secret).
    pub token: pqrelay_protocol::ClientIdToken,
    /// The pair.
    pub pair_id: PairId,
    /// The exchange counter.
    pub counter: u64,
    /// The request's flags.
    pub request_flags: Flags,
    /// The request's message context (the response's is derived from it).
    pub context: MessageContext,
    /// `ks_n`, sealing the response.
    pub response_key: AeadKey,
    /// The decoded request-target.
    pub target: Uri,
    /// The decoded request headers, in order.
    pub headers: Vec<(String, String)>,
    /// The plain body length when the wire request was sized (`content-length`).
    pub plain_len: Option<u64>,
    /// Opens the request body; `None` without a body or once finished.
    pub decoder: Option<StreamDecoder>,
    /// True once a body byte reached the decoder (no retry may replay the body after that).
    pub body_started: bool,
    /// Seals the response body; set by [`response::seal_head`].
    pub encoder: Option<StreamEncoder>,
    /// True when the response streams (flush a record per upstream piece).
    pub streaming_response: bool,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("pair_id", &self.pair_id.to_b64())
            .field("counter", &self.counter)
            .field("request_flags", &self.request_flags.bits())
            .field("plain_len", &self.plain_len)
            .field("body_started", &self.body_started)
            .field("streaming_response", &self.streaming_response)
            .finish_non_exhaustive()
    }
}
