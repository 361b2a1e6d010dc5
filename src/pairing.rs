//! `POST /api/mte-pair` (PROTOCOL.md §5): the relay side of pairing.
//!
//! Counts the request against the pairing rates (429 with `Retry-After: 1` beyond
//! `PAIR_RATE_PER_IP` / `PAIR_RATE_PER_CLIENT`, [`crate::limits::check_pairing_rate`]), checks
//! the client id (560 absent, 566 invalid), reads the JSON body up to
//! [`MAX_PAIRING_BODY`] (413 beyond; `Expect: 100-continue` is answered first), parses it with
//! [`PairingRequest::parse`] (400 `invalid_pairing` naming the problem), encapsulates to every
//! pair's `ek` with fresh randomness, stores every state with one all-or-nothing
//! [`PairStore::insert`](crate::store::PairStore::insert) and answers the ciphertexts in order.
//!
//! X-Wing encapsulation costs about 150 µs per pair (protocol benches); a pairing request of 25
//! pairs took 5 ms in the relay (access log, debug build). It runs inline on the worker thread;
//! a `spawn_blocking` hop has not been measured against it.

use bytes::{Bytes, BytesMut};
use http::header;
use pingora_error::Result;
use pingora_proxy::Session;
use pqrelay_protocol::kem::ESEED_SIZE;
use pqrelay_protocol::msgs::pairing::MAX_PAIRING_BODY;
use pqrelay_protocol::{
    ClientId, KemCiphertext, PairId, PairingError, PairingRequest, PairingResponse, ServerPair,
};

use crate::ctx::RequestCtx;
use crate::error::ErrorKind;
use crate::routes::{
    send, send_error, send_error_with, verify_relay_header, PROTOCOL_VERSION, RELAY_HEADER,
};
use crate::state::RelayState;

/// A refused pairing: the error row and a message for the client.
type Refusal = (ErrorKind, String);

/// The ciphertexts to answer and the states to store, in request order.
type Paired = (Vec<(PairId, KemCiphertext)>, Vec<(PairId, ServerPair)>);

/// Answers `POST /api/mte-pair`. Always `Ok(true)` unless writing the answer fails.
pub async fn handle(
    state: &RelayState,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Result<bool> {
    match pair(state, session).await {
        Ok((token, body)) => {
            let relay = format!("{PROTOCOL_VERSION}.{token}");
            let headers = [
                (RELAY_HEADER, relay.as_str()),
                (header::CACHE_CONTROL.as_str(), "no-store"),
            ];
            send(state, session, ctx, 200, "application/json", &headers, body).await
        }
        Err((kind, message)) if kind == ErrorKind::RATE_LIMITED => {
            let retry = [(header::RETRY_AFTER.as_str(), "1")];
            send_error_with(state, session, ctx, kind, &message, &retry).await
        }
        Err((kind, message)) => send_error(state, session, ctx, kind, &message).await,
    }
}

/// Runs a pairing request; returns the current client-id token and the response body.
async fn pair(state: &RelayState, session: &mut Session) -> Result<(String, Bytes), Refusal> {
    let limits = &state.config.limits;
    let ip = crate::limits::client_ip(session);
    crate::limits::check_pairing_rate(limits, ip, None)
        .map_err(|m| (ErrorKind::RATE_LIMITED, m))?;
    let value = session
        .req_header()
        .headers
        .get(RELAY_HEADER)
        .ok_or_else(|| {
            refusal(
                ErrorKind::CLIENT_ID_MISSING,
                "pairing needs x-mte-relay: 1.<client id>",
            )
        })?
        .to_str()
        .map_err(|_| refusal(ErrorKind::RELAY_HEADER_INVALID, "x-mte-relay is not ASCII"))?;
    let mte = verify_relay_header(&state.signer, value).map_err(|(k, m)| refusal(k, m))?;
    if !mte.fields.is_empty() {
        return Err(refusal(
            ErrorKind::RELAY_HEADER_INVALID,
            "pairing takes x-mte-relay: 1.<client id> without exchange fields",
        ));
    }
    crate::limits::check_pairing_rate(limits, None, Some(&mte.client_id))
        .map_err(|m| (ErrorKind::RATE_LIMITED, m))?;
    let body = read_body(session, MAX_PAIRING_BODY).await?;
    let request = PairingRequest::parse(&body, state.config.max_pool_size)
        .map_err(|e| pairing_refusal(&e, state.config.max_pool_size))?;
    let client = ClientId(mte.client_id);
    let (cts, states) = encapsulate_all(&client, &request)?;
    state.store.insert(&client, &states).await.map_err(|e| {
        log::warn!("pairing: state store failed: {e}");
        refusal(
            ErrorKind::for_store(&e),
            "the pair state could not be stored",
        )
    })?;
    log::debug!(
        "paired {} pair(s) for client {}",
        states.len(),
        crate::client_id::ClientId(mte.client_id).to_hex()
    );
    let body = PairingResponse { pairs: cts }.encode();
    Ok((mte.current_token, Bytes::from(body)))
}

/// Encapsulates to every pair's key with fresh randomness from the operating system.
fn encapsulate_all(client: &ClientId, request: &PairingRequest) -> Result<Paired, Refusal> {
    let mut cts = Vec::with_capacity(request.pairs.len());
    let mut states = Vec::with_capacity(request.pairs.len());
    let mut eseed = zeroize_on_drop([0u8; ESEED_SIZE]);
    for (pid, ek) in &request.pairs {
        getrandom::getrandom(&mut eseed.0)
            .map_err(|_| refusal(ErrorKind::INTERNAL, "random generator failed"))?;
        let (ct, server) = ServerPair::pair(client, pid, ek, &eseed.0);
        cts.push((*pid, ct));
        states.push((*pid, server));
    }
    Ok((cts, states))
}

/// Reads the request body up to `limit` bytes (413 beyond), answering `Expect: 100-continue`.
async fn read_body(session: &mut Session, limit: usize) -> Result<Bytes, Refusal> {
    let too_large = || {
        refusal(
            ErrorKind::TOO_LARGE,
            &format!("a pairing request body is at most {limit} bytes"),
        )
    };
    let announced = session
        .req_header()
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let expects_continue = session
        .req_header()
        .headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        session
            .write_continue_response()
            .await
            .map_err(|_| refusal(ErrorKind::BAD_REQUEST, "could not answer 100-continue"))?;
    }
    let mut body = BytesMut::with_capacity(announced.unwrap_or(4096).min(limit as u64) as usize);
    while let Some(chunk) = session
        .read_request_body()
        .await
        .map_err(|_| refusal(ErrorKind::BAD_REQUEST, "could not read the request body"))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// A 400 (or 413) naming what is wrong with a pairing body.
fn pairing_refusal(e: &PairingError, max_pairs: usize) -> Refusal {
    let kind = ErrorKind::for_protocol(&e.clone().into());
    let message = match e {
        PairingError::TooLarge => format!("a pairing request body is at most {MAX_PAIRING_BODY} bytes"),
        PairingError::Json(why) => format!(
            "the body must be {{\"pairs\":[{{\"id\":..,\"ek\":..}}, ...]}} with no other keys: {why}"
        ),
        PairingError::PairCount => format!("`pairs` must hold 1 to {max_pairs} entries"),
        PairingError::DuplicateId => "two pairs share one id".into(),
        PairingError::BadId => "a pair `id` is not 22 characters of base64url (16 bytes)".into(),
        PairingError::BadEncapsulationKey => {
            "an `ek` is not a valid X-Wing encapsulation key (1216 bytes of base64url)".into()
        }
        other => format!("invalid pairing request: {other}"),
    };
    (kind, message)
}

fn refusal(kind: ErrorKind, message: &str) -> Refusal {
    (kind, message.to_owned())
}

/// A byte array wiped when dropped (the encapsulation randomness).
struct Wiped<const N: usize>([u8; N]);

impl<const N: usize> Drop for Wiped<N> {
    fn drop(&mut self) {
        // Volatile-free best effort: the array is overwritten before its memory is released.
        self.0.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&self.0);
    }
}

fn zeroize_on_drop<const N: usize>(bytes: [u8; N]) -> Wiped<N> {
    Wiped(bytes)
}
