//! Entry points for the `cargo fuzz` targets in `protocol/fuzz/` (feature `fuzzing`). Each takes
//! arbitrary bytes, feeds them to one parser of peer input and must never panic.

use std::sync::OnceLock;

use crate::error_tag::{verify_error_reply, ExchangeId};
use crate::ids::{ClientId, PairId};
use crate::kem::DecapsulationSeed;
use crate::msgs::headers::decode_headers;
use crate::msgs::pairing::{PairingRequest, PairingResponse};
use crate::msgs::relay_header::{Flags, RelayHeader, RelayInfo};
use crate::msgs::relay_keys::RelayKeys;
use crate::msgs::target::validate_origin_form;
use crate::msgs::verdict::Verdict;
use crate::pairing::{answer, ClientPairing};
use crate::ratchet::{AeadKey, ErrorTagKey, ServerPair};
use crate::relay_key::{KeyId, RelayKey, RelayKeySet};
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

fn text(data: &[u8]) -> Option<&str> {
    core::str::from_utf8(data).ok()
}

/// A fixed relay key set (built once).
fn relay_keys() -> &'static RelayKeySet {
    static KEYS: OnceLock<RelayKeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        RelayKeySet::new(vec![RelayKey::from_seed(&DecapsulationSeed::from_bytes(
            [4; 32],
        ))])
        .expect("one key is a valid set")
    })
}

/// `x-mte-relay` values (request and response forms); valid ones must round-trip.
pub fn relay_header(data: &[u8]) {
    let Some(text) = text(data) else {
        return;
    };
    if let Ok(h) = RelayHeader::parse(text) {
        assert_eq!(h.encode(), text, "relay header round trip");
    }
    if let Ok(h) = RelayHeader::parse_response(text) {
        assert_eq!(h.encode(), text, "relay header round trip");
    }
    let _ = RelayHeader::from_fields(data.split(|&b| b == b'\n'), true);
}

/// `x-mte-relay-info` values; valid ones must re-encode to a value that parses equal.
pub fn relay_info(data: &[u8]) {
    if let Some(Ok(info)) = text(data).map(RelayInfo::parse) {
        assert_eq!(RelayInfo::parse(&info.encode()), Ok(info));
    }
}

/// `x-mte-relay-keys` values and fingerprints; valid lists must round-trip through `encode`.
pub fn relay_keys_header(data: &[u8]) {
    let Some(text) = text(data) else {
        return;
    };
    if let Ok(keys) = RelayKeys::parse(text) {
        assert_eq!(RelayKeys::parse(&keys.encode()), Ok(keys.clone()));
        let _ = keys.choose(&[KeyId([0; 32])]);
    }
    if let Ok(fp) = KeyId::parse_fingerprint(text) {
        assert_eq!(fp.fingerprint(), text);
    }
}

/// Verdict and tag headers of an error reply (split at the first `\n`), under a fixed key.
pub fn error_reply(data: &[u8]) {
    let Some(text) = text(data) else {
        return;
    };
    let (verdict, tag) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok(v) = Verdict::parse(verdict) {
        assert_eq!(v.as_str(), verdict);
    }
    let exchange = ExchangeId {
        client_id: ClientId([1; 16]),
        pair_id: PairId([2; 16]),
        counter: 3,
    };
    let key = ErrorTagKey::from_bytes([7; 32]);
    let r = verify_error_reply(&key, exchange, 502, Some(tag), Some(verdict), Some(tag));
    assert!(r.is_err(), "random input never verifies");
}

/// Decoded header-list JSON (both directions), and sealed header/URL values under a fixed key;
/// the URL check on the text.
pub fn headers_json(data: &[u8]) {
    let _ = decode_headers(data, true);
    let _ = decode_headers(data, false);
    if let Some(text) = text(data) {
        let key = AeadKey::from_bytes([7; 32]);
        let _ = open_headers(&key, &ctx(), text);
        let _ = open_url(&key, &ctx(), text);
        let _ = validate_origin_form(text);
    }
}

/// Pairing request bodies (relay side); valid ones must re-encode to the same request, and
/// answering them with the fixed key set must not panic.
pub fn pairing_request(data: &[u8]) {
    if let Ok(req) = PairingRequest::parse(data, 25) {
        assert_eq!(PairingRequest::parse(&req.encode(), 25), Ok(req.clone()));
        let _ = answer(&ClientId([1; 16]), relay_keys(), &req, &[5; 64]);
    }
}

/// Pairing response bodies (client side): parsed alone, and completing a fixed pairing.
pub fn pairing_response(data: &[u8]) {
    if let Ok(resp) = PairingResponse::parse(data) {
        assert_eq!(PairingResponse::parse(&resp.encode()), Ok(resp));
    }
    let Some(key) = relay_keys().current() else {
        return;
    };
    let pending = ClientPairing::new(
        ClientId([1; 16]),
        key.config(),
        &[6; 64],
        &DecapsulationSeed::from_bytes([7; 32]),
        vec![PairId([2; 16]), PairId([3; 16])],
    );
    if let Ok(pending) = pending {
        assert!(
            pending.complete(data).is_err(),
            "random input never confirms"
        );
    }
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

/// Stored state: the 49-byte plain form and the 81-byte sealed blob.
pub fn state_blob(data: &[u8]) {
    if let Ok(st) = ServerPair::from_bytes(data) {
        assert_eq!(&st.to_bytes()[..], data);
    }
    let sealer = StateSealer::new(b"fuzz");
    let _ = sealer.open(&ClientId([1; 16]), &PairId([2; 16]), data);
}
