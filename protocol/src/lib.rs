//! # pqrelay-protocol
//!
//! The pqrelay protocol version 2 (`docs/PROTOCOL.md`) as pure functions and small state types:
//! no I/O, no async, no randomness (callers pass random bytes in), nothing that panics on peer
//! input. Used by the relay and by the Rust client; the test vectors in `tests/vectors/` pin
//! every byte for the JS and Python clients too.
//!
//! ## Brief overview
//!
//! - Wire names (§5, §9, §11): [`names`] (headers, routes, [`names::VERSION`]).
//! - Client ids (§3): [`ClientId`], [`PairId`], signed [`ClientIdToken`]s ([`ClientIdSigner`],
//!   [`client_id::issue`], [`client_id::verify`]).
//! - Relay keys (§4, §5, §13): [`RelayKey`] / [`RelayKeySet`] (relay), [`RelayKeyConfig`] (the
//!   1218-byte entry), [`KeyId`] (fingerprints), [`Kid`], the `x-mte-relay-keys` list
//!   [`RelayKeys`] and the choice of a trusted key ([`RelayKeys::choose`]).
//! - Pairing (§6), as typed states: client [`ClientPairing`] → [`ConfirmedPairing`] (or a hard
//!   [`NotConfirmed`]); relay [`PairingRequest::parse`] → [`answer_pairing`] →
//!   [`RelayPairing`]. X-Wing newtypes in [`kem`].
//! - Ratchet (§7): client [`ClientPair::next_exchange`]; relay [`ServerPair::accept`] →
//!   [`Accepted`] (keys, state to commit, `e`; [`Accepted::check_retry`]). Each exchange gets
//!   [`ExchangeKeys`]: single-use [`AeadKey`]s and the [`ErrorTagKey`].
//! - Sealing (§8, §9): a [`MessageContext`] fixes the AAD; [`seal_url`] / [`open_url`],
//!   [`seal_headers`] / [`open_headers`]; URL rules in [`validate_origin_form`].
//! - Bodies (§10): [`StreamEncoder`] / [`StreamDecoder`], [`encoded_len`], [`plain_len`].
//! - Wire headers (§5, §9.1): [`RelayHeader`], [`Flags`], [`RelayInfo`].
//! - Authenticated errors (§11.2): [`Verdict`], [`ErrorReport`], [`verify_error_reply`].
//! - Relay state (§14): [`ServerPair::to_bytes`], [`StateSealer`].
//! - Errors (§11): [`Error`] with [`Error::status`], [`Error::code`] and [`Error::kind`].
//!
//! ## Example
//!
//! A client pairs with a relay in-process, runs one exchange with a sealed URL, headers and
//! body in both directions, and verifies an authenticated error. (Fixed bytes stand in for
//! randomness; use a CSPRNG.)
//!
//! ```
//! use pqrelay_protocol::*;
//!
//! # fn main() -> Result<(), Error> {
//! // Relay configuration: client-id secret and one relay key.
//! let signer = ClientIdSigner::new(b"relay client-id secret", [b"old secret"]);
//! let relay_keys = RelayKeySet::from_values(["k7Bq2mXo5RrT0aWfY1sPzLh8vC3nGdE9uJ6iKy4tQwA"])?;
//!
//! // Discovery: a signed client id, the relay's parameters and keys.
//! let token = signer.issue(ClientId([7; 16]));
//! let info = RelayInfo::parse(&RelayInfo::new(25).encode())?;
//! let offered = RelayKeys::parse(&relay_keys.header_value())?;
//! let pinned = [relay_keys.ids()[0]]; // or empty: trust on first use
//! let key = offered.choose(&pinned)?;
//!
//! // Pairing: the client encapsulates to the relay key and sends its ephemeral ek.
//! let id = token.id();
//! let pids: Vec<PairId> = (1..=3).map(|i| PairId([i; 16])).collect();
//! assert!(pids.len() <= info.pairs_per_request());
//! let seed_e = DecapsulationSeed::from_bytes([1; 32]);
//! let pending = ClientPairing::new(id, key, &[2; 64], &seed_e, pids)?;
//! // Relay: verify the token, parse the body, answer.
//! let verified = signer.verify_text(&token.encode())?;
//! let request = PairingRequest::parse(pending.request_body(), 25)?;
//! let answered = answer_pairing(&verified.id, &relay_keys, &request, &[3; 64])?;
//! // Client: only the holder of the relay key can produce `confirm`.
//! let confirmed = pending.complete(&answered.body)?;
//! assert_eq!(confirmed.keys, relay_keys.ids());
//! let (pid, client) = confirmed.pairs[0].clone();
//! let (_, server) = answered.pairs[0].clone();
//!
//! // Client: one exchange with counter 0.
//! let (keys, _client) = client.next_exchange()?;
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
//! // Relay: parse the header, check the key of the pair, ratchet, commit, open everything.
//! let h = RelayHeader::parse(&header)?.into_exchange()?;
//! relay_keys.check_kid(&server.kid())?;
//! let accepted = server.accept(h.counter, MAX_SKIP)?;
//! // ... commit `accepted.next` (compare-and-set) before anything else, then:
//! let rkeys = &accepted.keys;
//! let rctx = MessageContext::request(id, h.pair_id, h.counter, h.flags, "POST", &target)?;
//! assert_eq!(open_url(&rkeys.request, &rctx, &target)?, "/api/items?x=1");
//! assert_eq!(open_headers(&rkeys.request, &rctx, &eh)?[0].1, "text/plain");
//! accepted.check_retry(h.flags)?;
//! let expected = check_encoded_len(body.len() as u64)?;
//! let mut dec = StreamDecoder::new(&rkeys.request, &rctx, Some(expected));
//! let mut plain = Vec::new();
//! dec.push(&body, &mut plain)?;
//! dec.finish()?;
//! assert_eq!(plain, b"hello");
//!
//! // The upstream could not be reached: an authenticated error, verdict `dead`.
//! let exchange = ExchangeId { client_id: id, pair_id: pid, counter: h.counter };
//! let report = ErrorReport { exchange, status: 502, code: "bad_gateway", verdict: Verdict::Dead };
//! let [(_, verdict), (_, tag)] = report.headers(&rkeys.error)?;
//!
//! // Client: the verdict is authentic, so the request never ran and may be sent again.
//! let v = verify_error_reply(&keys.error, exchange, 502, Some("bad_gateway"), Some(&verdict), Some(&tag))?;
//! assert_eq!(v, Verdict::Dead);
//! // A forged reply (here: another status) is unauthenticated.
//! assert!(verify_error_reply(&keys.error, exchange, 504, Some("bad_gateway"), Some(&verdict), Some(&tag)).is_err());
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod codec;
pub mod error;
pub mod error_tag;
pub mod flags;
pub mod ids;
pub mod kdf;
pub mod kem;
pub mod key_id;
mod labels;
pub mod msgs;
pub mod names;
pub mod pairing;
pub mod ratchet;
pub mod relay_key;
pub mod seal;
pub mod state;
pub mod stream;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;

/// Client id tokens (§3): [`issue`](client_id::issue), [`verify`](client_id::verify) and the
/// relay's [`ClientIdSigner`].
pub mod client_id {
    pub use crate::ids::{issue, verify, ClientIdSigner, ClientIdToken, VerifiedClientId};
}

pub use error::{
    ClientIdError, ConfirmError, CounterError, Error, ErrorTagError, HeaderError, NotConfirmed,
    PairingError, RelayHeaderError, RelayInfoError, RelayKeyError, StateError, StreamError,
    UrlError,
};
pub use error_tag::{verify_error_reply, ErrorReport, ExchangeId};
pub use ids::{ClientId, ClientIdSigner, ClientIdToken, PairId};
pub use kem::{DecapsulationKey, DecapsulationSeed, EncapsulationKey, KemCiphertext, SharedSecret};
pub use msgs::headers::{decode_headers, encode_headers, validate_header};
pub use msgs::pairing::{PairingRequest, PairingResponse};
pub use msgs::relay_header::{ExchangeHeader, Flags, RelayHeader, RelayInfo};
pub use msgs::relay_keys::RelayKeys;
pub use msgs::target::{validate_origin_form, validate_origin_form_within};
pub use msgs::verdict::Verdict;
pub use pairing::{answer as answer_pairing, ClientPairing, ConfirmedPairing, RelayPairing};
pub use ratchet::{
    retry_allowed, Accepted, AeadKey, ChainKey, ClientPair, ErrorTagKey, ExchangeKeys, ServerPair,
    MAX_COUNTER, MAX_SKIP,
};
pub use relay_key::{KeyId, Kid, RelayKey, RelayKeyConfig, RelayKeySet};
pub use seal::{
    open_headers, open_url, seal_headers, seal_headers_json, seal_url, Direction, MessageContext,
    Part,
};
pub use state::StateSealer;
pub use stream::{
    check_encoded_len, encoded_len, plain_len, StreamDecoder, StreamEncoder, CHUNK_SIZE,
};
