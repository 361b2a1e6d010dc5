//! Property tests: tampering of any kind is rejected, round trips hold for any size and any
//! transport split.

use pqrelay_protocol::*;
use proptest::prelude::*;

const ID: ClientId = ClientId([0x11; 16]);
const PID: PairId = PairId([0x22; 16]);

fn keys(n: u64) -> ExchangeKeys {
    let ck = ChainKey::from_bytes([0x33; 32]);
    ServerPair::from_parts(0, ck).accept(n, u64::MAX).unwrap().0
}

fn ctx(counter: u64, flags: Flags) -> MessageContext {
    MessageContext::request(ID, PID, counter, flags, "POST", "/x").unwrap()
}

fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Encodes `plain` in sized mode (pushed in `pieces`) or streaming mode (one record per piece).
fn encode(
    key: &AeadKey,
    c: &MessageContext,
    plain: &[u8],
    sized: bool,
    pieces: &[usize],
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = StreamEncoder::new(key, c, sized.then_some(plain.len() as u64));
    let mut rest = plain;
    for &p in pieces {
        let (a, b) = rest.split_at(p.min(rest.len()));
        enc.push(a, &mut out).unwrap();
        if !sized {
            enc.flush(&mut out).unwrap();
        }
        rest = b;
    }
    enc.push(rest, &mut out).unwrap();
    enc.finish(&mut out).unwrap();
    out
}

/// Decodes `wire` fed in pieces of the given sizes (cycled).
fn decode(
    key: &AeadKey,
    c: &MessageContext,
    expected: Option<u64>,
    wire: &[u8],
    splits: &[usize],
) -> Result<Vec<u8>, StreamError> {
    let mut dec = StreamDecoder::new(key, c, expected);
    let mut out = Vec::new();
    let mut rest = wire;
    let mut i = 0;
    while !rest.is_empty() {
        let n = splits
            .get(i % splits.len().max(1))
            .copied()
            .unwrap_or(rest.len())
            .clamp(1, rest.len());
        let (a, b) = rest.split_at(n);
        dec.push(a, &mut out)?;
        rest = b;
        i += 1;
    }
    dec.finish()?;
    Ok(out)
}

fn records(wire: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = wire;
    while rest.len() >= 4 {
        let len = (u32::from_be_bytes(rest[..4].try_into().unwrap()) & 0x7fff_ffff) as usize;
        let (r, b) = rest.split_at(4 + len + 16);
        out.push(r);
        rest = b;
    }
    out
}

fn flags() -> Flags {
    Flags::HEADERS | Flags::BODY
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn stream_round_trip_small(len in 0usize..300_000, sized in any::<bool>(),
                               pieces in prop::collection::vec(1usize..70_000, 0..6),
                               splits in prop::collection::vec(1usize..100_000, 1..8)) {
        let k = keys(0);
        let c = ctx(0, flags());
        let plain = body(len);
        let wire = encode(&k.request, &c, &plain, sized, &pieces);
        if sized {
            prop_assert_eq!(Some(wire.len() as u64), encoded_len(len as u64));
            prop_assert_eq!(plain_len(wire.len() as u64), Some(len as u64));
        }
        let out = decode(&k.request, &c, sized.then_some(len as u64), &wire, &splits).unwrap();
        prop_assert_eq!(out, plain);
    }

    #[test]
    fn stream_rejects_any_bit_flip(len in 0usize..200_000, pos in any::<prop::sample::Index>(), bit in 0u8..8,
                                   split in 1usize..70_000) {
        let k = keys(1);
        let c = ctx(1, flags());
        let mut wire = encode(&k.request, &c, &body(len), false, &[1000, 5]);
        let i = pos.index(wire.len());
        wire[i] ^= 1 << bit;
        prop_assert!(decode(&k.request, &c, None, &wire, &[split]).is_err());
    }

    #[test]
    fn stream_rejects_truncation(len in 0usize..200_000, cut in any::<prop::sample::Index>(), sized in any::<bool>()) {
        let k = keys(2);
        let c = ctx(2, flags());
        let wire = encode(&k.request, &c, &body(len), sized, &[777]);
        let cut = cut.index(wire.len());
        prop_assert!(decode(&k.request, &c, None, &wire[..cut], &[4096]).is_err());
    }

    #[test]
    fn stream_rejects_reordered_dropped_duplicated(pieces in prop::collection::vec(1usize..2000, 2..8),
                                                    a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>(),
                                                    op in 0u8..3) {
        let k = keys(3);
        let c = ctx(3, flags());
        let total: usize = pieces.iter().sum();
        let wire = encode(&k.request, &c, &body(total), false, &pieces);
        let recs = records(&wire);
        let (i, j) = (a.index(recs.len()), b.index(recs.len()));
        let mut out: Vec<&[u8]> = recs.clone();
        match op {
            0 => { prop_assume!(recs[i] != recs[j]); out.swap(i, j); }
            1 => { out.remove(i); }
            _ => { out.insert(i, recs[j]); }
        }
        let tampered: Vec<u8> = out.concat();
        prop_assert!(decode(&k.request, &c, None, &tampered, &[10_000]).is_err());
    }

    #[test]
    fn stream_rejects_trailing_bytes(len in 0usize..5000, extra in prop::collection::vec(any::<u8>(), 1..40)) {
        let k = keys(4);
        let c = ctx(4, flags());
        let mut wire = encode(&k.request, &c, &body(len), true, &[]);
        wire.extend_from_slice(&extra);
        prop_assert!(decode(&k.request, &c, Some(len as u64), &wire, &[3]).is_err());
    }

    #[test]
    fn items_reject_bit_flips(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let k = keys(5);
        let c = ctx(5, Flags::URL | Flags::HEADERS);
        let eh = seal_headers(&k.request, &c, [("accept", "*/*"), ("x-a", "b")]);
        let mut raw = codec::b64_decode(&eh).unwrap();
        let i = pos.index(raw.len());
        raw[i] ^= 1 << bit;
        prop_assert!(open_headers(&k.request, &c, &codec::b64_encode(&raw)).is_err());
        let url = seal_url(&k.request, &c, "/a/b?c=d").unwrap();
        let mut raw = codec::b64_decode(&url[1..]).unwrap();
        let i = pos.index(raw.len());
        raw[i] ^= 1 << bit;
        let target = format!("/{}", codec::b64_encode(&raw));
        prop_assert!(open_url(&k.request, &c, &target).is_err());
    }

    #[test]
    fn replayed_exchange_is_rejected(n in 0u64..40, back in 1u64..5) {
        // The relay refuses old counters, and an old exchange's items do not open under new keys.
        let state = ServerPair::from_parts(0, ChainKey::from_bytes([0x33; 32]));
        let (_, after) = state.accept(n + back, MAX_SKIP.max(n + back)).unwrap();
        prop_assert_eq!(after.clone().accept(n, MAX_SKIP).unwrap_err(), CounterError::Replayed);
        let old = keys(n);
        let c_old = ctx(n, Flags::HEADERS);
        let eh = seal_headers(&old.request, &c_old, [("a", "b")]);
        let new = keys(n + back);
        prop_assert!(open_headers(&new.request, &ctx(n + back, Flags::HEADERS), &eh).is_err());
        prop_assert!(open_headers(&new.request, &c_old, &eh).is_err());
    }

    #[test]
    fn other_pair_or_client_key_is_rejected(seed in any::<[u8; 32]>(), which in 0u8..3) {
        let seed_bytes = seed;
        // Two pairs derived from (possibly) the same secret but other ids, or another secret.
        let seed = DecapsulationSeed::from_bytes(seed_bytes);
        let ek = seed.encapsulation_key();
        let (ct, server) = ServerPair::pair(&ID, &PID, &ek, &[7; 64]);
        let (other_id, other_pid, other_eseed) = match which {
            0 => (ClientId([0x99; 16]), PID, [7; 64]),
            1 => (ID, PairId([0x98; 16]), [7; 64]),
            _ => (ID, PID, [8; 64]),
        };
        let (_, other) = ServerPair::pair(&other_id, &other_pid, &ek, &other_eseed);
        let client = PendingPair::new(PID, seed).complete(&ID, &ct).unwrap();
        let (ck, _) = client.next_exchange().unwrap();
        let (sk, _) = server.accept(0, MAX_SKIP).unwrap();
        let (ok, _) = other.accept(0, MAX_SKIP).unwrap();
        prop_assert_eq!(&ck, &sk);
        let c = MessageContext::request(ID, PID, 0, Flags::HEADERS, "GET", "/").unwrap();
        let eh = seal_headers(&ck.request, &c, [("a", "b")]);
        prop_assert!(open_headers(&sk.request, &c, &eh).is_ok());
        prop_assert!(open_headers(&ok.request, &c, &eh).is_err());
        let c_other = MessageContext::request(other_id, other_pid, 0, Flags::HEADERS, "GET", "/").unwrap();
        prop_assert!(open_headers(&sk.request, &c_other, &eh).is_err() || which == 2);
    }

    #[test]
    fn relay_header_parse_never_panics_and_round_trips(s in "[0-9A-Za-z_.\\-=+/ ]{0,140}") {
        if let Ok(h) = RelayHeader::parse(&s) {
            prop_assert_eq!(h.encode(), s);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    #[test]
    fn stream_round_trip_large(len in 0usize..(4 << 20), sized in any::<bool>(),
                               split in 1usize..300_000) {
        let k = keys(6);
        let c = ctx(6, flags());
        let plain = body(len);
        let wire = encode(&k.request, &c, &plain, sized, &[split]);
        let out = decode(&k.request, &c, sized.then_some(len as u64), &wire, &[split, 17, 65_556]).unwrap();
        prop_assert!(out == plain);
    }
}

#[test]
fn stream_round_trip_empty_and_chunk_edges() {
    let k = keys(7);
    let c = ctx(7, flags());
    for len in [
        0,
        1,
        CHUNK_SIZE - 1,
        CHUNK_SIZE,
        CHUNK_SIZE + 1,
        2 * CHUNK_SIZE,
    ] {
        for sized in [true, false] {
            let plain = body(len);
            let wire = encode(&k.request, &c, &plain, sized, &[]);
            assert_eq!(
                decode(&k.request, &c, sized.then_some(len as u64), &wire, &[1]).unwrap(),
                plain
            );
        }
    }
}

#[test]
fn stream_fails_to_decrypt_after_error_forever() {
    let k = keys(8);
    let c = ctx(8, flags());
    let mut wire = encode(&k.request, &c, &body(100), false, &[50]);
    wire[10] ^= 1;
    let mut dec = StreamDecoder::new(&k.request, &c, None);
    let mut out = Vec::new();
    assert_eq!(dec.push(&wire, &mut out), Err(StreamError::Decrypt));
    assert!(out.is_empty());
    assert_eq!(dec.push(&[], &mut out), Err(StreamError::Decrypt));
    assert_eq!(dec.finish(), Err(StreamError::Decrypt));
}

#[test]
fn encoder_rejects_wrong_sized_length() {
    let k = keys(9);
    let c = ctx(9, flags());
    let mut out = Vec::new();
    let mut enc = StreamEncoder::new(&k.request, &c, Some(3));
    assert_eq!(
        enc.push(b"abcd", &mut out),
        Err(StreamError::LengthMismatch)
    );
    enc.push(b"ab", &mut out).unwrap();
    assert_eq!(enc.finish(&mut out), Err(StreamError::LengthMismatch));
}

#[test]
fn client_pair_is_exhausted_at_max_counter() {
    let p = ClientPair::from_parts(PID, MAX_COUNTER, ChainKey::from_bytes([1; 32]));
    let (keys, p) = p.next_exchange().unwrap();
    assert_eq!(keys.counter, MAX_COUNTER);
    assert_eq!(p.next_exchange().unwrap_err(), CounterError::Exhausted);
}

#[test]
fn errors_map_to_spec_codes() {
    let cases: [(Error, u16, &str); 6] = [
        (Error::DecodeFailed, 562, "decode_failed"),
        (StreamError::Truncated.into(), 562, "decode_failed"),
        (CounterError::Replayed.into(), 564, "counter_rejected"),
        (
            RelayHeaderError::Malformed("x").into(),
            561,
            "relay_header_invalid",
        ),
        (
            RelayHeaderError::VersionUnsupported.into(),
            568,
            "version_unsupported",
        ),
        (StateError::Unreadable.into(), 569, "repair_required"),
    ];
    for (e, status, code) in cases {
        assert_eq!((e.status(), e.code()), (status, code), "{e}");
    }
}

#[test]
fn secrets_do_not_leak_through_debug() {
    let k = keys(0);
    let dbg = format!("{k:?}");
    assert!(dbg.contains("AeadKey(..)"));
    assert_eq!(
        format!("{:?}", DecapsulationSeed::from_bytes([5; 32])),
        "DecapsulationSeed(..)"
    );
}

#[cfg(feature = "fuzzing")]
mod fuzz_smoke {
    //! Stable-toolchain stand-in for `cargo fuzz`: random bytes through every fuzz entry point.
    use pqrelay_protocol::fuzzing;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
        #[test]
        fn fuzz_entry_points_never_panic(data in prop::collection::vec(any::<u8>(), 0..600)) {
            fuzzing::relay_header(&data);
            fuzzing::headers_json(&data);
            fuzzing::pairing_request(&data);
            fuzzing::pairing_response(&data);
            fuzzing::stream_decoder(&data);
            fuzzing::state_blob(&data);
        }
    }
}

/// `ClientPairing` (what both Rust clients use): the relay's answer to its request body gives
/// the client the relay's keys for every pair; an answer out of order or for other pair ids is
/// refused.
#[test]
fn client_pairing_completes_only_its_own_answer() {
    use pqrelay_protocol::kem::{ESEED_SIZE, SEED_SIZE};
    let pids = [PairId([1; 16]), PairId([2; 16]), PairId([3; 16])];
    let seeded = |i: u8| DecapsulationSeed::from_bytes([i; SEED_SIZE]);
    let pairing =
        || ClientPairing::new(pids.iter().enumerate().map(|(i, p)| (*p, seeded(i as u8))));
    let request = PairingRequest::parse(&pairing().request_body(), 25).unwrap();
    assert_eq!(
        request.pairs.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        pids
    );
    let mut servers = Vec::new();
    let mut answer = Vec::new();
    for (pid, ek) in &request.pairs {
        let (ct, server) = ServerPair::pair(&ID, pid, ek, &[9; ESEED_SIZE]);
        servers.push(server);
        answer.push((*pid, ct));
    }
    let body = PairingResponse {
        pairs: answer.clone(),
    }
    .encode();
    let clients = pairing().complete(&ID, &body).unwrap();
    assert_eq!(clients.len(), 3);
    for (client, server) in clients.into_iter().zip(servers) {
        let (ck, _) = client.next_exchange().unwrap();
        let (sk, _) = server.accept(0, MAX_SKIP).unwrap();
        assert_eq!(ck, sk);
    }
    answer.swap(0, 1);
    let swapped = PairingResponse {
        pairs: answer.clone(),
    }
    .encode();
    assert_eq!(
        pairing().complete(&ID, &swapped).unwrap_err(),
        PairingError::ResponseMismatch
    );
    answer.pop();
    let short = PairingResponse { pairs: answer }.encode();
    assert!(pairing().complete(&ID, &short).is_err());
}
