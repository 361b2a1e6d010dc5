#![allow(missing_docs)] // criterion_group! generates an undocumented fn

//! Criterion benches: pairing (relay side), one exchange's key derivation, STREAM seal/open.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pqrelay_protocol::*;

const ID: ClientId = ClientId([1; 16]);
const PID: PairId = PairId([2; 16]);

fn pairing(c: &mut Criterion) {
    let seed = DecapsulationSeed::from_bytes([3; 32]);
    let ek_bytes = seed.encapsulation_key().as_bytes().to_vec();
    c.bench_function("pairing/relay: validate ek + encaps + ck0", |b| {
        b.iter(|| {
            let ek = EncapsulationKey::from_bytes(black_box(&ek_bytes)).unwrap();
            ServerPair::pair(&ID, &PID, &ek, &[4; 64])
        })
    });
    let (ct, _) = ServerPair::pair(&ID, &PID, &seed.encapsulation_key(), &[4; 64]);
    c.bench_function("pairing/client: keygen + decaps + ck0", |b| {
        b.iter(|| {
            let p = PendingPair::new(PID, seed.clone());
            let _ek = p.encapsulation_key();
            p.complete(&ID, black_box(&ct)).unwrap()
        })
    });
}

fn exchange(c: &mut Criterion) {
    let state = ServerPair::from_parts(0, ChainKey::from_bytes([5; 32]));
    c.bench_function("exchange/relay accept: kq, ks, ck_next", |b| {
        b.iter(|| state.clone().accept(black_box(0), MAX_SKIP).unwrap())
    });
    let (keys, _) = state.accept(0, MAX_SKIP).unwrap();
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
    targets = pairing, exchange, stream
}
criterion_main!(benches);
