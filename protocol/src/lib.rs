//! # pqrelay-protocol
//!
//! The pqrelay protocol v1 (`docs/PROTOCOL.md`) as pure functions and small state types: no
//! I/O, no async, no randomness (callers pass random bytes in), nothing that panics on peer
//! input. Used by the relay and by the Rust client; the test vectors in `tests/vectors/` pin
//! every byte for the JS and Python clients too.
//!
//! ## Brief overview
//!
//! - Ids (§3): [`ClientId`], [`PairId`], signed [`ClientIdToken`]s ([`client_id::issue`],
//!   [`client_id::verify`]).
//! - Pairing (§5): [`kem`] newtypes over X-Wing ([`DecapsulationSeed`], [`EncapsulationKey`],
//!   [`KemCiphertext`]), JSON bodies [`PairingRequest`] / [`PairingResponse`].
//! - Ratchet (§6), as typed states that consume themselves: client [`PendingPair`] →
//!   [`ClientPair`] → [`ClientPair::next_exchange`]; relay [`ServerPair::pair`] →
//!   [`ServerPair::accept`]. Each exchange gets [`ExchangeKeys`] (single-use [`AeadKey`]s).
//! - Sealing (§7, §8): a [`MessageContext`] (direction, flags, ids, counter, method, target)
//!   fixes the AAD; [`seal_url`] / [`open_url`], [`seal_headers`] / [`open_headers`].
//! - Bodies (§9): [`StreamEncoder`] / [`StreamDecoder`], [`encoded_len`], [`plain_len`].
//! - Wire headers (§4, §8.1): [`RelayHeader`], [`Flags`], [`RelayInfo`].
//! - Relay state (§10): [`ServerPair::to_bytes`], [`StateSealer`].
//! - Errors (§11): [`Error`] with [`Error::status`], [`Error::code`] and [`Error::kind`].
//!
//! ## Example
//!
//! A client pairs with a relay in-process and runs one exchange with a sealed URL, headers and
//! body in both directions. (Fixed bytes stand in for randomness; use a CSPRNG.)
//!
//! ```
//! use pqrelay_protocol::*;
//!
//! # fn main() -> Result<(), Error> {
//! // Discovery: the relay issues a signed client id.
//! let secret = b"relay client-id secret";
//! let token = client_id::issue(secret, ClientId([7; 16]));
//! let id = client_id::verify(&[secret], &token)?.id;
//!
//! // Pairing: the client sends ek, the relay encapsulates and answers ct.
//! let pid = PairId([9; 16]);
//! let pending = PendingPair::new(pid, DecapsulationSeed::from_bytes([1; 32]));
//! let request = PairingRequest { pairs: vec![(pid, pending.encapsulation_key())] }.encode();
//! let request = PairingRequest::parse(&request, 25)?;
//! let (ct, server) = ServerPair::pair(&id, &pid, &request.pairs[0].1, &[2; 64]);
//! let response = PairingResponse { pairs: vec![(pid, ct)] }.encode();
//! let response = PairingResponse::parse(&response, &[pid])?;
//! let client = pending.complete(&id, &response.pairs[0].1)?;
//!
//! // Client: one exchange with counter 0.
//! let (keys, client) = client.next_exchange()?;
//! let flags = Flags::URL | Flags::HEADERS | Flags::BODY;
//! let ctx = MessageContext::request(id, pid, keys.counter, flags, "POST", "")?;
//! let target = seal_url(&keys.request, &ctx, "/api/items?x=1")?;
//! let eh = seal_headers(&keys.request, &ctx, [("content-type", "text/plain")]);
//! let mut body = Vec::new();
//! let mut enc = StreamEncoder::new(&keys.request, &ctx, Some(5));
//! enc.push(b"hello", &mut body)?;
//! enc.finish(&mut body)?; // always finish
//! let header = ExchangeHeader { token: token.clone(), pair_id: pid, counter: keys.counter, flags };
//! let header = header.encode();
//!
//! // Relay: parse the header, ratchet, open everything.
//! let RelayHeader::Exchange(h) = RelayHeader::parse(&header)? else { unreachable!() };
//! let (rkeys, server) = server.accept(h.counter, MAX_SKIP)?;
//! let rctx = MessageContext::request(id, h.pair_id, h.counter, h.flags, "POST", &target)?;
//! assert_eq!(open_url(&rkeys.request, &rctx, &target)?, "/api/items?x=1");
//! assert_eq!(open_headers(&rkeys.request, &rctx, &eh)?[0].1, "text/plain");
//! let expected = check_encoded_len(body.len() as u64)?;
//! let mut dec = StreamDecoder::new(&rkeys.request, &rctx, Some(expected));
//! let mut plain = Vec::new();
//! dec.push(&body, &mut plain)?;
//! dec.finish()?;
//! assert_eq!(plain, b"hello");
//! // ... store `server` (the next state) only now, then answer, streaming (chunked):
//! let resp_flags = Flags::URL | Flags::HEADERS | Flags::BODY | Flags::STREAMING;
//! let sctx = rctx.response(200, resp_flags);
//! let reh = seal_headers(&rkeys.response, &sctx, [("content-type", "text/event-stream")]);
//! let mut wire = Vec::new();
//! let mut enc = StreamEncoder::new(&rkeys.response, &sctx, None);
//! enc.push(b"data: 1\n\n", &mut wire)?;
//! enc.flush(&mut wire)?;
//! enc.finish(&mut wire)?;
//!
//! // Client: open the response.
//! let cctx = ctx.response(200, resp_flags);
//! assert_eq!(open_headers(&keys.response, &cctx, &reh)?[0].0, "content-type");
//! let mut dec = StreamDecoder::new(&keys.response, &cctx, None);
//! let mut plain = Vec::new();
//! for piece in wire.chunks(7) {
//!     dec.push(piece, &mut plain)?;
//! }
//! dec.finish()?;
//! assert_eq!(plain, b"data: 1\n\n");
//! # let _ = (client, server);
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod codec;
pub mod error;
pub mod ids;
pub mod kem;
pub mod msgs;
pub mod names;
pub mod ratchet;
pub mod seal;
pub mod state;
pub mod stream;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;

/// Client id tokens (§3): [`issue`](client_id::issue) and [`verify`](client_id::verify).
pub mod client_id {
    pub use crate::ids::{issue, verify, ClientIdToken, VerifiedClientId};
}

pub use error::{
    ClientIdError, CounterError, Error, HeaderError, PairingError, RelayHeaderError, StateError,
    StreamError, UrlError,
};
pub use ids::{ClientId, ClientIdToken, PairId};
pub use kem::{DecapsulationSeed, EncapsulationKey, KemCiphertext, SharedSecret};
pub use msgs::headers::{decode_headers, encode_headers, validate_header};
pub use msgs::pairing::{PairingRequest, PairingResponse};
pub use msgs::relay_header::{ExchangeHeader, Flags, RelayHeader, RelayInfo};
pub use msgs::target::validate_origin_form;
pub use ratchet::{
    AeadKey, ChainKey, ClientPair, ClientPairing, ExchangeKeys, PendingPair, ServerPair,
    MAX_COUNTER, MAX_SKIP,
};
pub use seal::{
    open_headers, open_url, seal_headers, seal_headers_json, seal_url, Direction, MessageContext,
    Part,
};
pub use state::StateSealer;
pub use stream::{
    check_encoded_len, encoded_len, plain_len, StreamDecoder, StreamEncoder, CHUNK_SIZE,
};
