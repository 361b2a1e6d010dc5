#![allow(missing_docs)] // criterion_group! generates an undocumented fn

//! Criterion benches: pairing (relay side with 1, 5 and 25 pairs, client side), one exchange's
//! key derivation, error tags, sealed headers, STREAM seal/open.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pqrelay_protocol::*;

const ID: ClientId = ClientId([1; 16]);
const PID: PairId = PairId([2; 16]);

fn relay() -> RelayKeySet {
    RelayKeySet::new(vec![
        RelayKey::from_seed(&DecapsulationSeed::from_bytes([3; 32])),
        RelayKey::from_seed(&DecapsulationSeed::from_bytes([4; 32])),
    ])
    .unwrap()
}

fn pending(keys: &RelayKeySet, n: u8) -> ClientPairing {
    let pids = (0..n).map(|i| PairId([i; 16])).collect();
    let key = keys.current().unwrap().config();
    ClientPairing::new(
        ID,
        key,
        &[5; 64],
        &DecapsulationSeed::from_bytes([6; 32]),
        pids,
    )
    .unwrap()
}

fn pairing(c: &mut Criterion) {
    let keys = relay();
    let mut g = c.benchmark_group("pairing/relay: parse + decaps + encaps + derive");
    for n in [1u8, 5, 25] {
        let body = pending(&keys, n).request_body().to_vec();
        g.throughput(Throughput::Elements(u64::from(n)));
        g.bench_with_input(BenchmarkId::from_parameter(n), &body, |b, body| {
            b.iter(|| {
                let request = PairingRequest::parse(black_box(body), 25).unwrap();
                answer_pairing(&ID, &keys, &request, &[7; 64]).unwrap()
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("pairing/client: encaps + keygen + decaps + confirm");
    for n in [1u8, 5] {
        let request = PairingRequest::parse(pending(&keys, n).request_body(), 25).unwrap();
        let answer = answer_pairing(&ID, &keys, &request, &[7; 64]).unwrap().body;
        g.bench_with_input(BenchmarkId::from_parameter(n), &answer, |b, answer| {
            b.iter(|| pending(&keys, n).complete(black_box(answer)).unwrap())
        });
    }
    g.finish();
}

fn kem(c: &mut Criterion) {
    let keys = relay();
    let key = keys.current().unwrap();
    let request = PairingRequest::parse(pending(&keys, 1).request_body(), 25).unwrap();
    let ek = request.ek.as_bytes().to_vec();
    c.bench_function("kem/parse + validate ek", |b| {
        b.iter(|| EncapsulationKey::from_bytes(black_box(&ek)).unwrap())
    });
    c.bench_function("kem/encapsulate", |b| {
        b.iter(|| request.ek.encapsulate(black_box(&[7; 64])))
    });
    c.bench_function("kem/decapsulate (relay key)", |b| {
        b.iter(|| key.decapsulate(black_box(&request.ct)).unwrap())
    });
}

fn exchange(c: &mut Criterion) {
    let state = ServerPair::from_parts(0, ChainKey::from_bytes([5; 32]), Kid([6; 8]));
    c.bench_function("exchange/relay accept: kq, ks, ke, ck_next", |b| {
        b.iter(|| state.clone().accept(black_box(0), MAX_SKIP).unwrap())
    });
    let keys = state.accept(0, MAX_SKIP).unwrap().keys;
    let ctx = MessageContext::request(ID, PID, 0, Flags::HEADERS, "GET", "/api/x?y=1").unwrap();
    let headers = [
        ("accept", "application/json"),
        ("authorization", "Bearer abcdef"),
    ];
    c.bench_function("exchange/seal headers (2 headers)", |b| {
        b.iter(|| seal_headers(&keys.request, &ctx, black_box(headers)))
    });
    let eh = seal_headers(&keys.request, &ctx, headers);
    c.bench_function("exchange/open headers (2 headers)", |b| {
        b.iter(|| open_headers(&keys.request, &ctx, black_box(&eh)).unwrap())
    });
    let exchange = ExchangeId {
        client_id: ID,
        pair_id: PID,
        counter: 0,
    };
    let report = ErrorReport {
        exchange,
        status: 502,
        code: "bad_gateway",
        verdict: Verdict::Dead,
    };
    c.bench_function("error/tag headers (relay)", |b| {
        b.iter(|| black_box(report).headers(&keys.error).unwrap())
    });
    let [(_, verdict), (_, tag)] = report.headers(&keys.error).unwrap();
    c.bench_function("error/verify reply (client)", |b| {
        b.iter(|| {
            verify_error_reply(
                &keys.error,
                exchange,
                502,
                Some("bad_gateway"),
                Some(&verdict),
                Some(black_box(&tag)),
            )
            .unwrap()
        })
    });
}

fn stream(c: &mut Criterion) {
    let key = AeadKey::from_bytes([6; 32]);
    let ctx =
        MessageContext::request(ID, PID, 0, Flags::HEADERS | Flags::BODY, "POST", "/").unwrap();
    let mut g = c.benchmark_group("stream");
    for size in [1024usize, 65536] {
        let plain = vec![0x42u8; size];
        let mut wire = Vec::new();
        let mut enc = StreamEncoder::new(&key, &ctx, Some(size as u64));
        enc.push(&plain, &mut wire).unwrap();
        enc.finish(&mut wire).unwrap();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(format!("seal {} KiB", size / 1024), |b| {
            let mut out = Vec::with_capacity(size + 64);
            b.iter(|| {
                out.clear();
                let mut enc = StreamEncoder::new(&key, &ctx, Some(size as u64));
                enc.push(black_box(&plain), &mut out).unwrap();
                enc.finish(&mut out).unwrap();
            })
        });
        g.bench_function(format!("open {} KiB", size / 1024), |b| {
            let mut out = Vec::with_capacity(size);
            b.iter(|| {
                out.clear();
                let mut dec = StreamDecoder::new(&key, &ctx, Some(size as u64));
                dec.push(black_box(&wire), &mut out).unwrap();
                dec.finish().unwrap();
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = kem, pairing, exchange, stream
}
criterion_main!(benches);
