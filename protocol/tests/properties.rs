//! Property tests: tampering of any kind is rejected, round trips hold for any size and any
//! transport split, pairing confirms only with the relay key, errors verify only for their own
//! exchange.

use std::sync::OnceLock;

use pqrelay_protocol::*;
use proptest::prelude::*;

const ID: ClientId = ClientId([0x11; 16]);
const PID: PairId = PairId([0x22; 16]);
const KID: Kid = Kid([0x44; 8]);

fn keys(n: u64) -> ExchangeKeys {
    let ck = ChainKey::from_bytes([0x33; 32]);
    ServerPair::from_parts(0, ck, KID)
        .accept(n, u64::MAX)
        .unwrap()
        .keys
}

/// A relay with two keys (current, previous), built once.
fn relay() -> &'static RelayKeySet {
    static RELAY: OnceLock<RelayKeySet> = OnceLock::new();
    RELAY.get_or_init(|| {
        RelayKeySet::new(vec![
            RelayKey::from_seed(&DecapsulationSeed::from_bytes([0x51; 32])),
            RelayKey::from_seed(&DecapsulationSeed::from_bytes([0x52; 32])),
        ])
        .unwrap()
    })
}

/// A client pairing with `key` of the relay for `id`.
fn client_pairing(
    id: ClientId,
    key: &RelayKeyConfig,
    seed: u8,
    pids: Vec<PairId>,
) -> ClientPairing {
    ClientPairing::new(
        id,
        key,
        &[seed; 64],
        &DecapsulationSeed::from_bytes([seed ^ 0xff; 32]),
        pids,
    )
    .unwrap()
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
        let state = ServerPair::from_parts(0, ChainKey::from_bytes([0x33; 32]), KID);
        let after = state.accept(n + back, MAX_SKIP.max(n + back)).unwrap().next;
        prop_assert_eq!(after.clone().accept(n, MAX_SKIP).unwrap_err(), CounterError::Replayed);
        let old = keys(n);
        let c_old = ctx(n, Flags::HEADERS);
        let eh = seal_headers(&old.request, &c_old, [("a", "b")]);
        let new = keys(n + back);
        prop_assert!(open_headers(&new.request, &ctx(n + back, Flags::HEADERS), &eh).is_err());
        prop_assert!(open_headers(&new.request, &c_old, &eh).is_err());
    }

    #[test]
    fn other_pair_or_client_key_is_rejected(seed in any::<u8>(), which in 0u8..3) {
        // The same request pairs for two clients, two pair ids, or with other randomness:
        // every pair's keys are its own.
        let key = relay().current().unwrap().config();
        let pids = vec![PID, PairId([0x98; 16])];
        let pending = client_pairing(ID, key, seed, pids.clone());
        let request = PairingRequest::parse(pending.request_body(), 25).unwrap();
        let answered = answer_pairing(&ID, relay(), &request, &[7; 64]).unwrap();
        let client = pending.complete(&answered.body).unwrap();
        let (ck, _) = client.pairs[0].1.clone().next_exchange().unwrap();
        let sk = answered.pairs[0].1.clone().accept(0, MAX_SKIP).unwrap().keys;
        prop_assert_eq!(&ck, &sk);
        let other = match which {
            0 => answer_pairing(&ClientId([0x99; 16]), relay(), &request, &[7; 64]).unwrap().pairs[0].1.clone(),
            1 => answered.pairs[1].1.clone(),
            _ => answer_pairing(&ID, relay(), &request, &[8; 64]).unwrap().pairs[0].1.clone(),
        };
        let ok = other.accept(0, MAX_SKIP).unwrap().keys;
        let c = MessageContext::request(ID, PID, 0, Flags::HEADERS, "GET", "/").unwrap();
        let eh = seal_headers(&ck.request, &c, [("a", "b")]);
        prop_assert!(open_headers(&sk.request, &c, &eh).is_ok());
        prop_assert!(open_headers(&ok.request, &c, &eh).is_err());
        let c_other = MessageContext::request(ClientId([0x99; 16]), pids[1], 0, Flags::HEADERS, "GET", "/").unwrap();
        prop_assert!(open_headers(&sk.request, &c_other, &eh).is_err());
    }

    #[test]
    fn pairing_answered_without_the_relay_key_never_confirms(
        seed in any::<u8>(), guess in any::<[u8; 32]>(), eseed in any::<[u8; 64]>(), which in 0u8..3,
    ) {
        // An attacker sees the request and can answer anything: its own relay key, a relay
        // holding another key, or a made-up body with a guessed confirm.
        let key = relay().current().unwrap().config();
        let pending = client_pairing(ID, key, seed, vec![PID]);
        let request = PairingRequest::parse(pending.request_body(), 25).unwrap();
        let body = match which {
            0 => {
                // A relay whose keys are other keys but which lists the client's key id.
                let fake = RelayKeySet::new(vec![RelayKey::from_seed(&DecapsulationSeed::from_bytes(guess))]).unwrap();
                let mut req = request.clone();
                req.key = fake.ids()[0];
                let answer = answer_pairing(&ID, &fake, &req, &eseed).unwrap();
                let mut resp = PairingResponse::parse(&answer.body).unwrap();
                resp.keys = relay().ids();
                resp.encode()
            }
            1 => {
                let (ct, _) = request.ek.encapsulate(&eseed);
                PairingResponse { ct, keys: relay().ids(), confirm: guess }.encode()
            }
            _ => {
                // The real relay's answer, with its ct_E replaced by the attacker's.
                let answer = answer_pairing(&ID, relay(), &request, &[7; 64]).unwrap();
                let mut resp = PairingResponse::parse(&answer.body).unwrap();
                resp.ct = request.ek.encapsulate(&eseed).0;
                resp.encode()
            }
        };
        let e = pending.complete(&body).unwrap_err();
        prop_assert_eq!(e.key, key.id());
        prop_assert_eq!(Error::from(e).kind(), "pairing_not_confirmed");
    }

    #[test]
    fn relay_without_the_key_refuses(seed in any::<u8>(), other in any::<[u8; 32]>()) {
        // A relay whose key set lacks fp answers unknown_relay_key, whatever else it holds.
        prop_assume!(other != [0x51; 32] && other != [0x52; 32]);
        let key = relay().current().unwrap().config();
        let pending = client_pairing(ID, key, seed, vec![PID]);
        let request = PairingRequest::parse(pending.request_body(), 25).unwrap();
        let lacking = RelayKeySet::new(vec![
            RelayKey::from_seed(&DecapsulationSeed::from_bytes(other)),
            relay().keys()[1].clone(),
        ]).unwrap();
        let e = answer_pairing(&ID, &lacking, &request, &[7; 64]).unwrap_err();
        prop_assert_eq!(&e, &PairingError::UnknownRelayKey(key.id()));
        prop_assert_eq!(Error::from(e).code(), "unknown_relay_key");
    }

    #[test]
    fn error_tag_verifies_only_for_its_exchange(
        counter in 0u64..1000, status in 400u16..600, verdict in 0u8..4, what in 0u8..7,
    ) {
        let k = keys(counter);
        let verdict = Verdict::from_byte(verdict).unwrap();
        let exchange = ExchangeId { client_id: ID, pair_id: PID, counter };
        let report = ErrorReport { exchange, status, code: "bad_gateway", verdict };
        let [(_, v), (_, tag)] = report.headers(&k.error).unwrap();
        prop_assert_eq!(
            verify_error_reply(&k.error, exchange, status, Some("bad_gateway"), Some(&v), Some(&tag)),
            Ok(verdict)
        );
        let other_verdict = Verdict::from_byte((verdict.to_byte() + 1) % 4).unwrap();
        let mut x = exchange;
        let (mut st, mut code, mut vd, mut key) = (status, "bad_gateway", verdict, k.error.clone());
        match what {
            0 => x.counter += 1,
            1 => st ^= 1,
            2 => code = "gateway_timeout",
            3 => vd = other_verdict,
            4 => x.pair_id = PairId([0x23; 16]),
            5 => x.client_id = ClientId([0x12; 16]),
            _ => key = keys(counter + 1).error,
        }
        prop_assert!(verify_error_reply(&key, x, st, Some(code), Some(vd.as_str()), Some(&tag)).is_err());
    }

    #[test]
    fn retry_rule_spends_the_previous_counter_once(e in 0u64..100, m in 0u64..140) {
        // A retry with counter m runs only if m - 1 was never passed; after it runs, the same
        // retry (or any retry of a counter <= m) is refused.
        let state = ServerPair::from_parts(e, ChainKey::from_bytes([0x33; 32]), KID);
        let retry = Flags::HEADERS | Flags::RETRY;
        match state.accept(m, MAX_SKIP) {
            Err(err) => prop_assert!(m < e || m - e > MAX_SKIP, "{err:?}"),
            Ok(accepted) => {
                prop_assert_eq!(accepted.e, e);
                let ran = accepted.check_retry(retry).is_ok();
                prop_assert_eq!(ran, m > e);
                prop_assert_eq!(ran, retry_allowed(m, e));
                prop_assert!(accepted.check_retry(Flags::HEADERS).is_ok());
                // The commit moved e to m + 1: neither attempt can run again.
                let next = accepted.next;
                prop_assert_eq!(next.next_counter(), m + 1);
                prop_assert!(next.clone().accept(m, MAX_SKIP).is_err());
                prop_assert!(next.accept(m.saturating_sub(1), MAX_SKIP).is_err());
            }
        }
    }

    #[test]
    fn relay_header_parse_never_panics_and_round_trips(s in "[0-9A-Za-z_.\\-=+/ ]{0,140}") {
        if let Ok(h) = RelayHeader::parse(&s) {
            prop_assert_eq!(h.encode(), s);
        }
    }

    /// §8's AAD, field by field, for any method and any target (long ones bind the heap).
    #[test]
    fn aad_is_the_section_8_layout(method in "[A-Z!#$%&'*+.^_`|~-]{1,255}",
                                   target_len in 0usize..1200, part in 1u8..=3,
                                   index in any::<u64>(), fin in any::<bool>(),
                                   status in prop::option::of(100u16..600)) {
        let target = format!("/{}", "t".repeat(target_len));
        let flags = Flags::HEADERS | Flags::BODY;
        let request = MessageContext::request(ID, PID, 7, flags, &method, &target).unwrap();
        let (ctx, dir, status) = match status {
            None => (request, 1u8, 0u16),
            Some(s) => (request.response(s, Flags::HEADERS), 2, s),
        };
        let part = [Part::Url, Part::Headers, Part::Body][usize::from(part - 1)];
        let bound: &[u8] = if dir == 1 && part == Part::Headers { target.as_bytes() } else { b"" };
        let mut want = b"pqrelay/2".to_vec();
        want.extend_from_slice(&[dir, part as u8, ctx.flags().bits()]);
        want.extend_from_slice(&ID.0);
        want.extend_from_slice(&PID.0);
        want.extend_from_slice(&7u64.to_be_bytes());
        want.extend_from_slice(&index.to_be_bytes());
        want.push(u8::from(fin));
        want.extend_from_slice(&status.to_be_bytes());
        want.push(method.len() as u8);
        want.extend_from_slice(method.as_bytes());
        want.extend_from_slice(&(bound.len() as u16).to_be_bytes());
        want.extend_from_slice(bound);
        prop_assert_eq!(&*ctx.aad(part, index, fin), &want[..]);
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
fn url_rules_hold_for_every_spelling_of_a_dot_segment() {
    for dots in [
        "..",
        ".",
        "%2e%2e",
        "%2E.",
        ".%2e",
        "%2e",
        "..;x",
        "%2e%2E;a=b",
        "..%3b",
        "%2e%3Bx",
    ] {
        for url in [
            format!("/{dots}/a"),
            format!("/a/{dots}"),
            format!("/a/{dots}?q=1"),
        ] {
            assert_eq!(
                validate_origin_form(&url),
                Err(UrlError::DotSegment),
                "{url}"
            );
        }
    }
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
    let cases: [(Error, u16, &str); 14] = [
        (Error::DecodeFailed, 562, "decode_failed"),
        (CounterError::RetryRefused.into(), 564, "retry_refused"),
        (CounterError::ConcurrentUse.into(), 564, "counter_rejected"),
        (
            PairingError::UnknownRelayKey(KeyId([0; 32])).into(),
            400,
            "unknown_relay_key",
        ),
        (PairingError::NonContributory.into(), 400, "invalid_pairing"),
        (PairingError::TooLarge.into(), 413, "too_large"),
        (
            RelayHeaderError::ClientIdMissing.into(),
            560,
            "client_id_missing",
        ),
        (
            RelayHeaderError::Token(ClientIdError::Malformed).into(),
            566,
            "invalid_client_id",
        ),
        (StateError::UnknownRelayKey.into(), 569, "repair_required"),
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
    assert!(dbg.contains("ErrorTagKey(..)"));
    assert_eq!(
        format!("{:?}", DecapsulationSeed::from_bytes([5; 32])),
        "DecapsulationSeed(..)"
    );
    // A relay key shows its fingerprint only; its seed appears nowhere.
    let seed = [0x5e; 32];
    let key = RelayKey::from_seed(&DecapsulationSeed::from_bytes(seed));
    let set = RelayKeySet::new(vec![key.clone()]).unwrap();
    let pending = ClientPairing::new(
        ID,
        key.config(),
        &[1; 64],
        &DecapsulationSeed::from_bytes(seed),
        vec![PID],
    )
    .unwrap();
    for text in [
        format!("{key:?}"),
        format!("{set:?}"),
        format!("{pending:?}"),
    ] {
        assert!(
            text.contains(&key.id().fingerprint()) || text.contains("ClientPairing"),
            "{text}"
        );
        assert!(
            !text.contains(&hex::encode(seed)) && !text.contains("94, 94, 94"),
            "{text}"
        );
    }
    let signer = ClientIdSigner::new(b"very secret", [b"old secret"]);
    let text = format!("{signer:?}");
    assert!(
        !text.contains("very") && !text.contains("118, 101"),
        "{text}"
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
            fuzzing::relay_info(&data);
            fuzzing::relay_keys_header(&data);
            fuzzing::error_reply(&data);
            fuzzing::headers_json(&data);
            fuzzing::pairing_request(&data);
            fuzzing::pairing_response(&data);
            fuzzing::stream_decoder(&data);
            fuzzing::state_blob(&data);
        }
    }
}

/// `ClientPairing` and `answer_pairing` (what the clients and the relay use): every pair of a
/// request gets the same keys on both sides, in request order, with the kid of the key used.
#[test]
fn pairing_gives_both_sides_the_same_pairs() {
    for key in relay().keys() {
        let pids: Vec<PairId> = (1..=25).map(|i| PairId([i; 16])).collect();
        let pending = client_pairing(ID, key.config(), 3, pids.clone());
        let request = PairingRequest::parse(pending.request_body(), 25).unwrap();
        assert_eq!(request.pairs, pids);
        let answered = answer_pairing(&ID, relay(), &request, &[9; 64]).unwrap();
        let confirmed = pending.complete(&answered.body).unwrap();
        assert_eq!(confirmed.keys, relay().ids());
        assert_eq!(confirmed.key, key.id());
        assert_eq!(confirmed.transcript_hash, answered.transcript_hash);
        for ((cpid, client), (spid, server)) in confirmed.pairs.into_iter().zip(answered.pairs) {
            assert_eq!(cpid, spid);
            assert_eq!(server.kid(), key.id().kid());
            relay().check_kid(&server.kid()).unwrap();
            let (ck, _) = client.next_exchange().unwrap();
            assert_eq!(ck, server.accept(0, MAX_SKIP).unwrap().keys);
        }
    }
}

#[test]
fn pairing_request_refuses_bad_pair_lists() {
    let key = relay().current().unwrap().config();
    let seed = DecapsulationSeed::from_bytes([1; 32]);
    let new = |pids: Vec<PairId>| ClientPairing::new(ID, key, &[2; 64], &seed, pids).map(|_| ());
    assert_eq!(new(vec![]), Err(PairingError::PairCount));
    assert_eq!(new(vec![PID, PID]), Err(PairingError::DuplicatePairId));
    assert_eq!(
        new((0..=255).map(|i| PairId([i; 16])).collect()),
        Err(PairingError::PairCount)
    );
    assert!(new((0..255).map(|i| PairId([i; 16])).collect()).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// `kem` composes X-Wing from its parts (and keeps the expanded key); the `x-wing` crate is
    /// the reference: the same `ek` for a seed, the same `ct` and `ss` for an `eseed`, the same
    /// `ss` for any 1120 bytes decapsulated (ML-KEM's implicit rejection included), and the
    /// same refusal of an all-zero X25519 share.
    #[test]
    fn x_wing_matches_the_reference_crate(seed in any::<[u8; 32]>(),
                                          eseed in prop::collection::vec(any::<u8>(), 64),
                                          noise in prop::collection::vec(any::<u8>(), 1120),
                                          low_order in any::<bool>()) {
        use x_wing::{Decapsulator as _, KeyExport as _, TryDecapsulate as _};
        let ours = DecapsulationSeed::from_bytes(seed).expand();
        let reference = x_wing::DecapsulationKeyRejectNonContrib::from(seed);
        let ek = reference.encapsulation_key();
        prop_assert_eq!(&ours.encapsulation_key().as_bytes()[..], &ek.to_bytes()[..]);

        let eseed: [u8; 64] = eseed.try_into().unwrap();
        let our_ek = ours.encapsulation_key();
        let (ct, ss) = our_ek.encapsulate(&eseed);
        let (ref_ct, ref_ss) = ek.encapsulate_deterministic(&eseed.into());
        prop_assert_eq!(&ct.as_bytes()[..], &ref_ct[..]);
        prop_assert_eq!(&ss.as_bytes()[..], &ref_ss[..]);
        prop_assert_eq!(*ours.decapsulate(&ct).unwrap().as_bytes(), *ss.as_bytes());

        let mut noise: [u8; 1120] = noise.try_into().unwrap();
        if low_order {
            noise[1088..].fill(0); // ct_X = 0, a low-order point: the X25519 share is zero
        }
        let ref_ss = reference.try_decapsulate(&noise.into()).ok();
        let ss = ours.decapsulate(&KemCiphertext::from_bytes(&noise).unwrap());
        prop_assert_eq!(ss.is_err(), low_order);
        prop_assert_eq!(ss.ok().map(|s| *s.as_bytes()), ref_ss.map(<[u8; 32]>::from));
    }
}
