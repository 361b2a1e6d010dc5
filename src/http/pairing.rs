//! `POST /api/mte-pair` (PROTOCOL.md §6): the relay side of pairing.
//!
//! Counts the request against the pairing rates (429 with `Retry-After: 1` beyond
//! `PAIR_RATE_PER_IP` / `PAIR_RATE_PER_CLIENT`, [`super::guard::check_pairing_rate`]), checks
//! the client id (560 absent, 566 invalid) and reads the JSON body up to [`MAX_PAIRING_BODY`]
//! (413 beyond; `Expect: 100-continue` is answered first). Then, in the relay's
//! [`PairingPool`](crate::pairing_pool::PairingPool), off the proxy thread, it parses the body
//! (400 `invalid_pairing` naming the problem; checking the client's `ek` costs an X25519
//! multiplication) and answers with the protocol crate (400 `unknown_relay_key` listing the
//! relay's fingerprints when the client chose another key): one decapsulation with the chosen
//! relay key, one encapsulation to the client's ephemeral key, the chain keys of every pair,
//! and `confirm`, ~0.3 ms of CPU in all. When all `PAIRING_CONCURRENCY` permits are taken the
//! answer is 503 `pairing_busy` with `Retry-After: 1` at once. The checks run cheapest first:
//! IP rate, client id, client rate, body, then the pool. The pairs are stored with one
//! all-or-nothing [`PairStore::insert`](crate::store::PairStore::insert) that refuses a pair id
//! in use.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header;
use pingora_error::Result;
use pingora_proxy::Session;
use pqrelay_protocol::kem::ESEED_SIZE;
use pqrelay_protocol::msgs::pairing::MAX_PAIRING_BODY;
use pqrelay_protocol::names::RELAY_HEADER;
use pqrelay_protocol::{answer_pairing, Error, PairingError, PairingRequest, RelayHeader};
use zeroize::Zeroizing;

use super::ctx::RequestCtx;
use super::guard::check_pairing_rate;
use super::relay_header::{relay_header, verify};
use super::reply::{refuse, send};
use crate::error::{ErrorKind, Refusal};
use crate::pairing_pool::PoolError;
use crate::state::RelayState;
use crate::store::StoreError;

/// `Retry-After` of a 503 `pairing_busy`, in seconds.
const BUSY_RETRY_AFTER: u32 = 1;

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
    check_pairing_rate(limits, ctx.client.as_ref().map(|c| c.ip), None)?;
    let why = "pairing needs x-mte-relay: 2.<client id>";
    let token = relay_header(session.req_header())
        .unwrap_or_else(|| Err(Refusal::new(ErrorKind::CLIENT_ID_MISSING, why)))?
        .into_discovery()
        .map_err(|e| Refusal::protocol(&e.into()))?;
    let site = &ctx.site;
    let relay = verify(site, RelayHeader::Discovery { token })?;
    let client = relay.client.id;
    check_pairing_rate(limits, None, Some(client.as_bytes()))?;
    let body = read_body(session, MAX_PAIRING_BODY).await?;
    // Parsing (its check of `ek` is an X25519 multiplication and an ML-KEM key decoding) and
    // the key exchange run in the bounded pool, after the rates and the body: a slow client
    // never holds a permit while it sends, and no pairing costs a proxy thread its crypto.
    let keys = Arc::clone(site);
    let max_pairs = state.config.max_pool_size;
    let answer = state
        .pairing_pool
        .run(move || -> Result<_, Refusal> {
            let request =
                PairingRequest::parse(&body, max_pairs).map_err(|e| pairing_refusal(e, &keys))?;
            let mut eseed = Zeroizing::new([0u8; ESEED_SIZE]);
            getrandom::getrandom(eseed.as_mut())
                .map_err(|_| Refusal::new(ErrorKind::INTERNAL, "random generator failed"))?;
            answer_pairing(&client, &keys.relay_keys, &request, &eseed)
                .map_err(|e| pairing_refusal(e, &keys))
        })
        .await
        .map_err(|e| match e {
            PoolError::Busy(_) => busy(state.pairing_pool.size()),
            PoolError::Failed(_) => Refusal::new(ErrorKind::INTERNAL, "pairing failed"),
        })??;
    site.store
        .insert(&client, &answer.pairs)
        .await
        .map_err(|e| match e {
            StoreError::PairIdInUse => {
                let why = "a pair id is in use: pair with fresh random pair ids";
                Refusal::new(ErrorKind::INVALID_PAIRING, why)
            }
            e => {
                log::warn!("pairing: state store failed: {e}");
                Refusal::new(e.kind(), "the pair state could not be stored")
            }
        })?;
    log::debug!("paired {} pair(s) for client {client}", answer.pairs.len());
    let token = relay.client.token;
    Ok((
        RelayHeader::Discovery { token }.encode(),
        Bytes::from(answer.body),
    ))
}

/// The 503 of a pairing that found every [`PairingPool`](crate::pairing_pool::PairingPool)
/// permit taken.
fn busy(size: usize) -> Refusal {
    let why = format!(
        "{size} pairings are running (PAIRING_CONCURRENCY); pair again after Retry-After seconds"
    );
    Refusal::new(ErrorKind::PAIRING_BUSY, why).retry_after(BUSY_RETRY_AFTER)
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

/// A 400 (or 413) naming what is wrong with a pairing request; an unknown relay key lists the
/// fingerprints this site has.
fn pairing_refusal(e: PairingError, site: &crate::site::Site) -> Refusal {
    let refusal = Refusal::protocol(&Error::from(e.clone()));
    match e {
        PairingError::UnknownRelayKey(fp) => {
            let offered = site.relay_keys.fingerprints().join(", ");
            let message = format!(
                "this relay holds no key {}; it has {offered}: discover again",
                fp.fingerprint()
            );
            Refusal::new(refusal.kind, message)
        }
        _ => refusal,
    }
}
