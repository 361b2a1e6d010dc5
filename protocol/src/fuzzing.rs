//! Entry points for the `cargo fuzz` targets in `protocol/fuzz/` (feature `fuzzing`). Each takes
//! arbitrary bytes, feeds them to one parser of peer input and must never panic.

use crate::ids::{ClientId, PairId};
use crate::msgs::headers::decode_headers;
use crate::msgs::pairing::{PairingRequest, PairingResponse};
use crate::msgs::relay_header::{Flags, RelayHeader, RelayInfo};
use crate::ratchet::{AeadKey, ServerPair};
use crate::seal::{open_headers, open_url, MessageContext};
use crate::state::StateSealer;
use crate::stream::StreamDecoder;

fn ctx() -> MessageContext {
    MessageContext::request(
        ClientId([1; 16]),
        PairId([2; 16]),
        3,
        Flags::ALL,
        "POST",
        "/",
    )
    .expect("a valid fixed context")
}

/// `x-mte-relay` and `x-mte-relay-info` values; valid headers must round-trip.
pub fn relay_header(data: &[u8]) {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    if let Ok(h) = RelayHeader::parse(text) {
        assert_eq!(h.encode(), text, "relay header round trip");
    }
    if let Some(info) = RelayInfo::parse(text) {
        assert!(RelayInfo::parse(&info.encode()).is_some());
    }
}

/// Decoded header-list JSON (both directions), and sealed header/URL values under a fixed key.
pub fn headers_json(data: &[u8]) {
    let _ = decode_headers(data, true);
    let _ = decode_headers(data, false);
    if let Ok(text) = core::str::from_utf8(data) {
        let key = AeadKey::from_bytes([7; 32]);
        let _ = open_headers(&key, &ctx(), text);
        let _ = open_url(&key, &ctx(), text);
    }
}

/// Pairing request bodies (relay side); valid ones must re-encode to a parseable body.
pub fn pairing_request(data: &[u8]) {
    if let Ok(req) = PairingRequest::parse(data, 25) {
        assert!(PairingRequest::parse(&req.encode(), 25).is_ok());
    }
}

/// Pairing response bodies (client side), answering two fixed pair ids.
pub fn pairing_response(data: &[u8]) {
    let _ = PairingResponse::parse(data, &[PairId([2; 16]), PairId([3; 16])]);
}

/// The STREAM decoder: the first byte picks the expected plain length mode and a split size;
/// the rest is fed in pieces of that size.
pub fn stream_decoder(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let expected = (mode & 1 == 1).then_some(u64::from(mode >> 1) * 3);
    let split = usize::from(mode % 17) + 1;
    let key = AeadKey::from_bytes([7; 32]);
    let mut dec = StreamDecoder::new(&key, &ctx(), expected);
    let mut out = Vec::new();
    for piece in body.chunks(split) {
        if dec.push(piece, &mut out).is_err() {
            break;
        }
    }
    let _ = dec.finish();
}

/// Stored state: the 41-byte plain form and the 73-byte sealed blob.
pub fn state_blob(data: &[u8]) {
    if let Ok(st) = ServerPair::from_bytes(data) {
        assert_eq!(&st.to_bytes()[..], data);
    }
    let sealer = StateSealer::new(b"fuzz");
    let _ = sealer.open(&ClientId([1; 16]), &PairId([2; 16]), data);
}
