//! Sending one outbound request through the remote relay and writing its answer: the body
//! plan (replayable bytes, a bounded stream, or no body), the engine's [`Remote::send`] (which
//! applies the delivery rules of §12), the opened answer streamed back, and the caller's error
//! for each failure.

use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use http::{header, Method};
use pingora_error::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;
use pingora_proxy::Session;
use pqrelay_client::engine::Outgoing;
use pqrelay_client::exchange::SealOptions;
use pqrelay_client::{Body, HeaderSelection};

use super::client::{Answer, OutboundError, Remote};
use super::options::{forwarded_headers, Options, HOP_BY_HOP};
use super::{answer_error, CHANNEL_DEPTH, REPLAY_BUFFER};
use crate::error::ErrorKind;
use crate::http::ctx::RequestCtx;
use crate::http::reply::finish_response;

/// What the caller's request body looks like.
struct BodyPlan {
    /// The request has a body (`content-length`, possibly 0, or chunked).
    present: bool,
    /// Its declared length.
    len: Option<u64>,
}

fn body_plan(session: &Session) -> BodyPlan {
    let h = &session.req_header().headers;
    let len = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let chunked = h.get_all(header::TRANSFER_ENCODING).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.to_ascii_lowercase().contains("chunked"))
    });
    BodyPlan {
        present: len.is_some() || chunked,
        len,
    }
}

/// Seals and sends the request, then writes the opened answer.
pub(super) async fn forward(
    session: &mut Session,
    ctx: &mut RequestCtx,
    client: &Remote,
    options: &Options,
) -> Result<bool> {
    let req = session.req_header();
    let method = req.method.clone();
    let target = req
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let headers = forwarded_headers(&req.headers);
    let plan = body_plan(session);
    let expects_continue = req
        .headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if plan.present && expects_continue {
        session.write_continue_response().await?;
    }

    // The first REPLAY_BUFFER bytes: a body that ends within them is sent replayable.
    let mut first = BytesMut::new();
    let mut ended = !plan.present;
    while !ended && first.len() < REPLAY_BUFFER {
        match session.read_request_body().await? {
            Some(piece) => first.extend_from_slice(&piece),
            None => ended = true,
        }
    }

    // Every forwarded header is sealed, whatever x-mte-encode-headers says: a version-2 relay
    // forwards only sealed request headers (cookies excepted).
    let mut seal = SealOptions::default().with_headers(HeaderSelection::All);
    if let Some(on) = options.encode_url {
        seal = seal.with_encode_url(on);
    }
    let request = Outgoing {
        method: method.clone(),
        path_and_query: target,
        headers,
        seal,
    };

    let sent = if ended {
        // No body: none on the wire either; an empty one (`content-length: 0`) stays empty.
        let body = match plan.present {
            true => Body::Bytes(first.freeze()),
            false => Body::Empty,
        };
        client.send(&request, body).await
    } else {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(CHANNEL_DEPTH);
        let head = futures::stream::once(futures::future::ready(Ok(first.freeze())));
        let rest = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let stream = head.chain(rest);
        let body = match plan.len {
            Some(len) => Body::sized_stream(stream, len),
            None => Body::stream(stream),
        };
        let downstream = &mut *session;
        let pump = async move {
            loop {
                match downstream.read_request_body().await {
                    Ok(Some(piece)) => {
                        if tx.send(Ok(piece)).await.is_err() {
                            return Ok(()); // the sender gave up; its error says why
                        }
                    }
                    Ok(None) => return Ok(()),
                    Err(e) => {
                        let io = std::io::Error::other("the caller's request body failed");
                        let _ = tx.send(Err(io)).await;
                        return Err(e);
                    }
                }
            }
        };
        let (sent, pumped) = tokio::join!(client.send(&request, body), pump);
        pumped?;
        sent
    };

    let resp = match sent {
        Ok(resp) => resp,
        Err(e) => return refuse(session, ctx, &e).await,
    };
    write_answer(session, ctx, &method, client, resp).await
}

/// The caller's error for a failed outbound request, and its message: the remote relay's own
/// ordinary errors (400, 404, 413, 502, ...) keep their status and code; outcome unknown is 502
/// `outcome_unknown`; the shared store failing is 503 `state_store_unavailable`; anything else
/// (a remote relay that is not trusted, a 559–569 that could not be recovered, a transport
/// failure) is 502 `outbound_failed`.
fn caller_error(e: &OutboundError) -> (ErrorKind, String) {
    let e = match e {
        OutboundError::StreamCut(e) => {
            let message = format!(
                "the connection to the remote relay failed while the streamed request body \
                 (over {} KiB) was being sent ({e}); the remote relay may have refused the \
                 exchange (e.g. it lost this relay's pair state). The body cannot be replayed; \
                 the pairs were renewed: send the request again",
                REPLAY_BUFFER / 1024
            );
            return (ErrorKind::OUTBOUND_FAILED, message);
        }
        OutboundError::Exchange(e) => e,
        OutboundError::Source(e) => {
            let message = format!("outbound client state: {e}");
            return (ErrorKind::STATE_STORE_UNAVAILABLE, message);
        }
    };
    let failed = ErrorKind::OUTBOUND_FAILED;
    match e {
        pqrelay_client::Error::OutcomeUnknown { .. } => (
            ErrorKind::OUTCOME_UNKNOWN,
            format!("the remote relay: {e}; check with the upstream before sending it again"),
        ),
        pqrelay_client::Error::NotRetried { status, code } => (
            failed,
            format!(
                "the remote relay refused the exchange ({status} {code}, authenticated: nothing \
                 reached the remote upstream) and the request body was streamed (over {} KiB) so \
                 it cannot be replayed; the pairs were renewed: send the request again",
                REPLAY_BUFFER / 1024
            ),
        ),
        pqrelay_client::Error::Relay {
            status,
            code,
            message,
            ..
        } => {
            let known = ErrorKind::for_code(code).filter(|k| k.status == *status);
            match known {
                Some(k) if !(559..=569).contains(status) => {
                    (k, format!("the remote relay answered: {message}"))
                }
                _ => (
                    failed,
                    format!(
                        "the remote relay refused the exchange ({status} {code}); its pairs were \
                         renewed, retry"
                    ),
                ),
            }
        }
        other => match other.code() {
            // The client-side codes of §11.1 (relay_key_not_trusted, pairing_not_confirmed, ...).
            Some(code) => (failed, format!("the remote relay: {code}: {other}")),
            None => (failed, format!("the remote relay failed: {other}")),
        },
    }
}

async fn refuse(session: &mut Session, ctx: &mut RequestCtx, e: &OutboundError) -> Result<bool> {
    let (kind, message) = caller_error(e);
    log::warn!("outbound: {message}");
    answer_error(session, ctx, kind, &message).await
}

/// Writes the opened response: status, decoded headers, framing, then the body as it opens;
/// the pair goes back to the shared pool once the body ended.
async fn write_answer(
    session: &mut Session,
    ctx: &mut RequestCtx,
    method: &Method,
    client: &Remote,
    mut resp: Answer,
) -> Result<bool> {
    let status = resp.response.status();
    let mut head = ResponseHeader::build(status, Some(resp.response.headers().len() + 6))?;
    for (name, value) in resp.response.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            head.append_header(name.clone(), value.clone())?;
        }
    }
    let bodiless = *method == Method::HEAD
        || status.is_informational()
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED;
    match resp.response.content_length() {
        Some(len) if !bodiless => head.insert_header(header::CONTENT_LENGTH, len.to_string())?,
        _ if !bodiless => head.insert_header(header::TRANSFER_ENCODING, "chunked")?,
        _ => {}
    }
    finish_response(ctx, &mut head);
    if bodiless {
        session.write_response_header(Box::new(head), true).await?;
        give_back(client, resp).await;
        return Ok(true);
    }
    session.write_response_header(Box::new(head), false).await?;
    while let Some(piece) = resp.response.chunk().await.transpose() {
        match piece {
            Ok(b) if b.is_empty() => {}
            Ok(b) => session.write_response_body(Some(b), false).await?,
            Err(e) => {
                // The head is out: all that is left is to cut the response short.
                log::warn!("outbound: the remote relay's body failed: {e}");
                return Err(Error::explain(
                    ErrorType::ReadError,
                    "outbound: the remote relay's body failed",
                ));
            }
        }
    }
    give_back(client, resp).await;
    session.write_response_body(None, true).await?;
    Ok(true)
}

/// Returns the answer's pair to the shared pool (a store failure loses the pair only).
async fn give_back(client: &Remote, resp: Answer) {
    if let Err(e) = client.finish(resp).await {
        log::warn!("outbound: a pair could not be returned to the store: {e}");
    }
}

#[cfg(test)]
mod tests {
    use pqrelay_client::pqrelay_protocol::{ConfirmError, KeyId, NotConfirmed};

    use super::*;

    #[test]
    fn outcome_unknown_and_trust_failures_reach_the_caller_clearly() {
        let unknown = pqrelay_client::Error::OutcomeUnknown {
            reason: "cut".into(),
        };
        let (kind, message) = caller_error(&OutboundError::Exchange(unknown));
        assert_eq!((kind.status, kind.code), (502, "outcome_unknown"));
        assert!(message.contains("may or may not"), "{message}");

        let key = KeyId([5; 32]);
        let untrusted = pqrelay_client::Error::RelayKeyNotTrusted {
            origin: "https://b.example:443".into(),
            pinned: true,
            trusted: vec![key],
            offered: vec![KeyId([6; 32])],
        };
        let (kind, message) = caller_error(&OutboundError::Exchange(untrusted));
        assert_eq!((kind.status, kind.code), (502, "outbound_failed"));
        assert!(message.contains("relay_key_not_trusted"), "{message}");
        assert!(message.contains(&key.fingerprint()), "{message}");
        assert!(message.contains(&KeyId([6; 32]).fingerprint()), "{message}");

        let unconfirmed = pqrelay_client::Error::PairingNotConfirmed {
            origin: "https://b.example:443".into(),
            reason: NotConfirmed {
                key,
                reason: ConfirmError::Mismatch,
            },
        };
        let (kind, message) = caller_error(&OutboundError::Exchange(unconfirmed));
        assert_eq!(kind.code, "outbound_failed");
        assert!(message.contains("pairing_not_confirmed"), "{message}");
        assert!(message.contains(&key.fingerprint()), "{message}");
    }
}
