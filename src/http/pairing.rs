//! `POST /api/mte-pair` (PROTOCOL.md §6): the relay side of pairing.
//!
//! Counts the request against the pairing rates (429 with `Retry-After: 1` beyond
//! `PAIR_RATE_PER_IP` / `PAIR_RATE_PER_CLIENT`, [`super::guard::check_pairing_rate`]), checks
//! the client id (560 absent, 566 invalid), reads the JSON body up to [`MAX_PAIRING_BODY`] (413
//! beyond; `Expect: 100-continue` is answered first), parses it with the protocol crate (400
//! `invalid_pairing` naming the problem), encapsulates with fresh randomness, stores every
//! state with one all-or-nothing [`PairStore::insert`](crate::store::PairStore::insert) and
//! answers in order.

use bytes::{Bytes, BytesMut};
use http::header;
use pingora_error::Result;
use pingora_proxy::Session;
use pqrelay_protocol::kem::ESEED_SIZE;
use pqrelay_protocol::msgs::pairing::MAX_PAIRING_BODY;
use pqrelay_protocol::names::RELAY_HEADER;
use pqrelay_protocol::{
    ClientId, KemCiphertext, PairId, PairingError, PairingRequest, PairingResponse, RelayHeader,
    ServerPair,
};
use zeroize::Zeroizing;

use super::ctx::RequestCtx;
use super::guard::{check_pairing_rate, client_ip};
use super::relay_header::{relay_header, verify};
use super::reply::{refuse, send};
use crate::error::{ErrorKind, Refusal};
use crate::state::RelayState;

/// The ciphertexts to answer and the states to store, in request order.
type Paired = (Vec<(PairId, KemCiphertext)>, Vec<(PairId, ServerPair)>);

/// Answers `POST /api/mte-pair`. Always `Ok(true)` unless writing the answer fails.
pub(crate) async fn serve(
    state: &RelayState,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Result<bool> {
    match pair(state, session, ctx).await {
        Ok((relay, body)) => {
            let headers = [
                (RELAY_HEADER, relay.as_str()),
                (header::CACHE_CONTROL.as_str(), "no-store"),
            ];
            send(session, ctx, 200, "application/json", &headers, body).await
        }
        Err(refusal) => refuse(session, ctx, &refusal).await,
    }
}

/// Runs a pairing request; returns the `x-mte-relay` answer and the response body.
async fn pair(
    state: &RelayState,
    session: &mut Session,
    ctx: &RequestCtx,
) -> Result<(String, Bytes), Refusal> {
    let limits = &state.config.limits;
    check_pairing_rate(limits, client_ip(session), None)?;
    let why = "pairing needs x-mte-relay: 1.<client id>";
    let header = relay_header(session.req_header())
        .unwrap_or_else(|| Err(Refusal::new(ErrorKind::CLIENT_ID_MISSING, why)))?;
    if !matches!(header, RelayHeader::Discovery { .. }) {
        let why = "pairing takes x-mte-relay: 1.<client id> without exchange fields";
        return Err(Refusal::new(ErrorKind::RELAY_HEADER_INVALID, why));
    }
    let site = &ctx.site;
    let relay = verify(site, header)?;
    let client = relay.client.id;
    check_pairing_rate(limits, None, Some(client.as_bytes()))?;
    let body = read_body(session, MAX_PAIRING_BODY).await?;
    let max_pairs = state.config.max_pool_size;
    let request =
        PairingRequest::parse(&body, max_pairs).map_err(|e| pairing_refusal(&e, max_pairs))?;
    let (cts, states) = encapsulate_all(&client, &request)?;
    site.store.insert(&client, &states).await.map_err(|e| {
        log::warn!("pairing: state store failed: {e}");
        Refusal::new(e.kind(), "the pair state could not be stored")
    })?;
    log::debug!("paired {} pair(s) for client {client}", states.len());
    let body = PairingResponse { pairs: cts }.encode();
    let answer = RelayHeader::Discovery {
        token: relay.client.token,
    };
    Ok((answer.encode(), Bytes::from(body)))
}

/// Encapsulates to every pair's key with fresh randomness from the operating system.
fn encapsulate_all(client: &ClientId, request: &PairingRequest) -> Result<Paired, Refusal> {
    let mut cts = Vec::with_capacity(request.pairs.len());
    let mut states = Vec::with_capacity(request.pairs.len());
    let mut eseed = Zeroizing::new([0u8; ESEED_SIZE]);
    for (pid, ek) in &request.pairs {
        getrandom::getrandom(eseed.as_mut())
            .map_err(|_| Refusal::new(ErrorKind::INTERNAL, "random generator failed"))?;
        let (ct, server) = ServerPair::pair(client, pid, ek, &eseed);
        cts.push((*pid, ct));
        states.push((*pid, server));
    }
    Ok((cts, states))
}

/// Reads the request body up to `limit` bytes (413 beyond), answering `Expect: 100-continue`.
async fn read_body(session: &mut Session, limit: usize) -> Result<Bytes, Refusal> {
    let too_large = || {
        let why = format!("a pairing request body is at most {limit} bytes");
        Refusal::new(ErrorKind::TOO_LARGE, why)
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
    let unreadable = |_| Refusal::new(ErrorKind::BAD_REQUEST, "could not read the request body");
    let expects_continue = session
        .req_header()
        .headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        session
            .write_continue_response()
            .await
            .map_err(unreadable)?;
    }
    let mut body = BytesMut::with_capacity(announced.unwrap_or(4096).min(limit as u64) as usize);
    while let Some(chunk) = session.read_request_body().await.map_err(unreadable)? {
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
    Refusal::new(kind, message)
}
