//! The cryptography of one sealed 1 KiB exchange on each side, timed in the run.
//!
//! The client's: the calls the Rust client makes for `POST /json/1024` with a 1 KiB JSON body
//! and its 1 KiB answer: one exchange's key derivation, sealing the request's URL (the
//! client's default, `ENCODE_URL`), headers and body, opening the response's headers and body.
//! The load generator's extra CPU per sealed request (MTE route minus pass-through) is compared
//! with this (`report`'s goals). The relay's: the mirror of those calls (verifying the client
//! id token, accepting the exchange's counter, opening the URL, headers and body, sealing the
//! response's headers and body): a floor under what the MTE route adds to pass-through.

use std::hint::black_box;
use std::time::{Duration, Instant};

use pqrelay_protocol::client_id::ClientIdSigner;
use pqrelay_protocol::{
    open_headers, open_url, seal_headers, seal_url, AeadKey, ChainKey, ClientId, ClientPair, Flags,
    Kid, MessageContext, PairId, ServerPair, StreamDecoder, StreamEncoder, MAX_SKIP,
};

/// Body size of the timed exchange (the goals' point).
const BODY_SIZE: usize = 1024;
/// The request's URL (sealed).
const TARGET: &str = "/json/1024";
/// How long the timing loop runs at least.
const TIMED: Duration = Duration::from_millis(500);
/// The request's sealed headers.
const REQUEST_HEADERS: [(&str, &str); 1] = [("content-type", "application/json")];
/// The response's sealed headers.
const RESPONSE_HEADERS: [(&str, &str); 2] = [
    ("content-type", "application/json"),
    ("date", "Fri, 04 Dec 2026 10:00:00 GMT"),
];

/// Mean CPU-bound µs of the client's cryptography for one sealed 1 KiB exchange, on this
/// thread (wall time of a tight loop on an otherwise idle runner), or why it failed.
pub(crate) fn client_exchange_us() -> Result<f64, String> {
    let pair = ClientPair::from_parts(PairId([2; 16]), 0, ChainKey::from_bytes([5; 32]));
    let plain = vec![b'x'; BODY_SIZE];
    // The response as the relay would send it, sealed once with the keys of counter 0.
    let (keys, _) = pair.clone().next_exchange().map_err(|e| e.to_string())?;
    let ctx = request_context()?;
    let rctx = ctx.response(200, Flags::HEADERS | Flags::BODY);
    let response_eh = seal_headers(&keys.response, &rctx, RESPONSE_HEADERS);
    let response_body = seal_body(&keys.response, &rctx, &plain)?;

    let one = || -> Result<(), String> {
        let (keys, _) = black_box(pair.clone())
            .next_exchange()
            .map_err(|e| e.to_string())?;
        let ctx = request_context()?;
        black_box(seal_url(&keys.request, &ctx, black_box(TARGET)).map_err(|e| e.to_string())?);
        black_box(seal_headers(&keys.request, &ctx, REQUEST_HEADERS));
        black_box(seal_body(&keys.request, &ctx, black_box(&plain))?);
        // The pair is at counter 0 on every round: these are the keys the response was
        // sealed with.
        let rctx = ctx.response(200, Flags::HEADERS | Flags::BODY);
        black_box(
            open_headers(&keys.response, &rctx, black_box(&response_eh))
                .map_err(|e| e.to_string())?,
        );
        black_box(open_body(&keys.response, &rctx, black_box(&response_body))?);
        Ok(())
    };
    mean_us(one)
}

/// Mean CPU-bound µs of the relay's cryptography for the same exchange (its mirror), or why
/// it failed.
pub(crate) fn relay_exchange_us() -> Result<f64, String> {
    let chain = ChainKey::from_bytes([5; 32]);
    let pair = ClientPair::from_parts(PairId([2; 16]), 0, chain.clone());
    let server = ServerPair::from_parts(0, chain, Kid([4; 8]));
    let signer = ClientIdSigner::new(b"pqrelay-bench-client-id-secret", Vec::<&[u8]>::new());
    let token = signer.issue(ClientId([1; 16]));
    let plain = vec![b'x'; BODY_SIZE];
    // The request as the client sends it, sealed once with the keys of counter 0.
    let (keys, _) = pair.next_exchange().map_err(|e| e.to_string())?;
    let ctx = request_context()?;
    let url = seal_url(&keys.request, &ctx, TARGET).map_err(|e| e.to_string())?;
    let eh = seal_headers(&keys.request, &ctx, REQUEST_HEADERS);
    let body = seal_body(&keys.request, &ctx, &plain)?;

    let one = || -> Result<(), String> {
        black_box(
            signer
                .verify(black_box(&token))
                .map_err(|e| e.to_string())?,
        );
        let keys = black_box(server.clone())
            .accept(0, MAX_SKIP)
            .map_err(|e| e.to_string())?
            .keys;
        let ctx = request_context()?;
        black_box(open_url(&keys.request, &ctx, black_box(&url)).map_err(|e| e.to_string())?);
        black_box(open_headers(&keys.request, &ctx, black_box(&eh)).map_err(|e| e.to_string())?);
        black_box(open_body(&keys.request, &ctx, black_box(&body))?);
        let rctx = ctx.response(200, Flags::HEADERS | Flags::BODY);
        black_box(seal_headers(&keys.response, &rctx, RESPONSE_HEADERS));
        black_box(seal_body(&keys.response, &rctx, black_box(&plain))?);
        Ok(())
    };
    mean_us(one)
}

/// `plain` sealed as a sized body of [`BODY_SIZE`] bytes.
fn seal_body(key: &AeadKey, ctx: &MessageContext, plain: &[u8]) -> Result<Vec<u8>, String> {
    let mut wire = Vec::with_capacity(BODY_SIZE + 64);
    let mut enc = StreamEncoder::new(key, ctx, Some(BODY_SIZE as u64));
    enc.push(plain, &mut wire).map_err(|e| e.to_string())?;
    enc.finish(&mut wire).map_err(|e| e.to_string())?;
    Ok(wire)
}

/// A sized body of [`BODY_SIZE`] bytes opened.
fn open_body(key: &AeadKey, ctx: &MessageContext, wire: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(BODY_SIZE);
    let mut dec = StreamDecoder::new(key, ctx, Some(BODY_SIZE as u64));
    dec.push(wire, &mut out).map_err(|e| e.to_string())?;
    dec.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

/// Mean µs of `one` in a tight loop of at least [`TIMED`] on this thread, after a warm-up.
fn mean_us(mut one: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    for _ in 0..200 {
        one()?;
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < TIMED {
        for _ in 0..100 {
            one()?;
        }
        n += 100;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / n as f64)
}

fn request_context() -> Result<MessageContext, String> {
    MessageContext::request(
        ClientId([1; 16]),
        PairId([2; 16]),
        0,
        Flags::URL | Flags::HEADERS | Flags::BODY,
        "POST",
        TARGET,
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn client_exchange_us_measures_a_round_trip() {
        let us = super::client_exchange_us().unwrap();
        assert!(us > 0.0 && us < 10_000.0, "{us} µs");
    }

    #[test]
    fn relay_exchange_us_opens_what_the_client_sealed() {
        let us = super::relay_exchange_us().unwrap();
        assert!(us > 0.0 && us < 10_000.0, "{us} µs");
    }
}
