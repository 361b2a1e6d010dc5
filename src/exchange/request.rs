//! The request half of an exchange (PROTOCOL.md §9.2, §9.4): commit, open, validate, rewrite,
//! decode.

use bytes::Bytes;
use http::{header, HeaderName, Uri};
use pingora_error::{Error, ErrorType, Result};
use pingora_http::RequestHeader;
use pqrelay_protocol::msgs::relay_header::sealed_headers_field;
use pqrelay_protocol::names::EH_HEADER;
use pqrelay_protocol::{
    open_headers, open_url, plain_len, validate_origin_form, Accepted, ClientId, ExchangeHeader,
    ExchangeId, Flags, MessageContext, StreamDecoder, Verdict, MAX_SKIP,
};

use super::{Exchange, Framing};
use crate::config::values::matches_any;
use crate::error::{ErrorKind, Refusal};
use crate::http::ctx::RelayRequest;
use crate::site::Site;
use crate::store::Stored;

/// Begins an exchange in the order of PROTOCOL.md §9.4: the pair's state and counter, the
/// commit of the next state, then the sealed items and the checks that need them. Refusals
/// before the commit are plain; from the commit on they are authenticated, verdict `dead`
/// (the counter is spent and nothing went upstream) or `unknown` (the commit failed).
pub(crate) async fn begin(
    site: &Site,
    req: &RequestHeader,
    relay: &RelayRequest,
) -> Result<Box<Exchange>, Refusal> {
    let protocol = |e: pqrelay_protocol::Error| Refusal::protocol(&e);
    let h = relay
        .header
        .clone()
        .into_exchange()
        .map_err(|e| protocol(e.into()))?;
    let client = relay.client.id;
    let wire_target = std::str::from_utf8(req.raw_path())
        .map_err(|_| Refusal::new(ErrorKind::INVALID_URL, "the request-target is not ASCII"))?;
    let method = req.method.as_str();
    let context =
        MessageContext::request(client, h.pair_id, h.counter, h.flags, method, wire_target)
            .map_err(protocol)?;
    let eh_fields = req.headers.get_all(EH_HEADER);
    let eh = sealed_headers_field(eh_fields.iter().map(|v| v.as_bytes()))
        .map_err(|e| protocol(e.into()))?;

    let accepted = commit(site, &client, &h).await?;
    let id = ExchangeId {
        client_id: client,
        pair_id: h.pair_id,
        counter: h.counter,
    };
    let refused = |refusal: Refusal, verdict| {
        let auth = crate::error::ErrorAuth {
            exchange: id,
            key: accepted.keys.error.clone(),
            verdict,
        };
        refusal.authenticated(auth)
    };
    let opened = open(site, req, &h, &context, &accepted, wire_target, eh)
        .map_err(|r| refused(r, Verdict::Dead))?;
    let Opened {
        target,
        headers,
        framing,
    } = opened;
    let decoder = h.flags.contains(Flags::BODY).then(|| {
        let expected = match framing {
            Framing::Sized(len) => Some(len),
            _ => None,
        };
        StreamDecoder::new(&accepted.keys.request, &context, expected)
    });
    let Accepted { keys, .. } = accepted;
    Ok(Box::new(Exchange {
        token: relay.client.token.clone(),
        id,
        request_flags: h.flags,
        context,
        response_key: keys.response,
        error_key: keys.error,
        target,
        headers,
        framing,
        body_done: decoder.is_none(),
        decoder,
        body_started: false,
        head_sent: false,
        encoder: None,
        streaming_response: false,
    }))
}

/// Reads the pair, checks its relay key and the counter (plain refusals: 563, 569, 564), and
/// commits `(m+1, ck_{m+1})`. A read answered from this relay's memory of its own last write
/// that loses the compare-and-set (another relay advanced the pair) is done once more on a
/// fresh read; otherwise a lost compare-and-set is 564 and a store failure 503, both
/// authenticated with verdict `unknown` (the counter may still be usable).
async fn commit(site: &Site, client: &ClientId, h: &ExchangeHeader) -> Result<Accepted, Refusal> {
    let mut recent = true;
    loop {
        let stored = load(site, client, h, recent).await?;
        let remembered = stored.remembered;
        site.relay_keys
            .check_kid(&stored.pair.kid())
            .map_err(|e| Refusal::protocol(&e.into()))?;
        let accepted = stored
            .pair
            .accept(h.counter, MAX_SKIP)
            .map_err(|e| Refusal::protocol(&e.into()))?;
        let unknown = |refusal: Refusal| {
            let auth = crate::error::ErrorAuth {
                exchange: ExchangeId {
                    client_id: *client,
                    pair_id: h.pair_id,
                    counter: h.counter,
                },
                key: accepted.keys.error.clone(),
                verdict: Verdict::Unknown,
            };
            refusal.authenticated(auth)
        };
        let cas = site
            .store
            .compare_and_set(client, &h.pair_id, &stored.version, &accepted.next);
        match cas.await {
            Ok(true) => return Ok(accepted),
            Ok(false) if remembered => recent = false,
            Ok(false) => {
                let why = "the pair was used concurrently";
                return Err(unknown(Refusal::new(ErrorKind::COUNTER_REJECTED, why)));
            }
            Err(e) => {
                log::warn!("exchange: state store: {e}");
                let why = "the pair state could not be saved";
                return Err(unknown(Refusal::new(e.kind(), why)));
            }
        }
    }
}

/// Reads the pair's state (`recent`: [`crate::store::PairStore::load_recent`]): 563 when there
/// is none.
async fn load(
    site: &Site,
    client: &ClientId,
    h: &ExchangeHeader,
    recent: bool,
) -> Result<Stored, Refusal> {
    let read = if recent {
        site.store.load_recent(client, &h.pair_id).await
    } else {
        site.store.load(client, &h.pair_id).await
    };
    match read {
        Ok(Some(stored)) => Ok(stored),
        Ok(None) => {
            let why = "no state for this pair: pair again";
            Err(Refusal::new(ErrorKind::STATE_NOT_FOUND, why))
        }
        Err(e) => {
            log::warn!("exchange: state store: {e}");
            Err(Refusal::new(e.kind(), "the pair state could not be read"))
        }
    }
}

/// What an exchange's request opened to.
struct Opened {
    target: Uri,
    headers: Vec<(String, String)>,
    framing: Framing,
}

/// Opens the URL (flag `url`) and the header block, applies the `retry` rule, `MTE_ROUTES` on
/// the decoded path, and works out the body framing.
fn open(
    site: &Site,
    req: &RequestHeader,
    h: &ExchangeHeader,
    context: &MessageContext,
    accepted: &Accepted,
    wire_target: &str,
    eh: &str,
) -> Result<Opened, Refusal> {
    let protocol = |e: pqrelay_protocol::Error| Refusal::protocol(&e);
    let key = &accepted.keys.request;
    let target = if h.flags.contains(Flags::URL) {
        open_url(key, context, wire_target).map_err(protocol)?
    } else {
        validate_origin_form(wire_target).map_err(|e| protocol(e.into()))?;
        wire_target.to_owned()
    };
    let headers = open_headers(key, context, eh).map_err(protocol)?;
    accepted
        .check_retry(h.flags)
        .map_err(|e| protocol(e.into()))?;
    let target: Uri = target.parse().map_err(|_| {
        Refusal::new(
            ErrorKind::INVALID_URL,
            "the decoded URL is not a valid path",
        )
    })?;
    if let Some(routes) = &site.config.mte_routes {
        if !matches_any(routes, target.path()) {
            return Err(Refusal::new(ErrorKind::NOT_FOUND, "no such route"));
        }
    }
    let framing = body_framing(req, h.flags)?;
    Ok(Opened {
        target,
        headers,
        framing,
    })
}

/// How the body goes upstream, checking that the body flag and the wire framing agree
/// (PROTOCOL.md §9.2).
fn body_framing(req: &RequestHeader, flags: Flags) -> Result<Framing, Refusal> {
    let invalid = |why: &'static str| Refusal::new(ErrorKind::INVALID_LENGTH, why);
    let content_length = match req.headers.get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or(invalid("content-length is not a number"))?,
        ),
    };
    let chunked = req.headers.contains_key(header::TRANSFER_ENCODING);
    if !flags.contains(Flags::BODY) {
        return match (content_length, chunked) {
            (None, false) => Ok(Framing::None),
            (Some(0), false) => Ok(Framing::Empty),
            _ => Err(invalid("the request has a body but not the body flag")),
        };
    }
    match (content_length, chunked) {
        // Streaming records may be short: the plain length cannot be derived from the wire
        // length, so the upstream gets a chunked body.
        (Some(_), false) if flags.contains(Flags::STREAMING) => Ok(Framing::Chunked),
        (Some(e), false) => match plain_len(e) {
            // An empty sealed body still has a record to open: with `content-length: 0` the
            // upstream would hold a complete request before the relay opened it.
            Some(0) => Ok(Framing::Chunked),
            Some(len) => Ok(Framing::Sized(len)),
            None => Err(invalid(
                "content-length is not the encoded length of any body",
            )),
        },
        (None, true) => Ok(Framing::Chunked),
        _ => Err(invalid(
            "the body flag needs a content-length or a chunked body",
        )),
    }
}

/// Rewrites the upstream request (PROTOCOL.md §9.2): the decoded target; of the plain headers
/// only `host` (rewritten by the upstream step) and those of `plain_headers`; the sealed
/// headers, replacing plain ones of the same name (a sealed `accept-encoding` is not
/// forwarded); `accept-encoding: identity`; and the body's framing.
pub(crate) fn rewrite_upstream_request(
    x: &mut Exchange,
    req: &mut RequestHeader,
    plain_headers: &[HeaderName],
) -> Result<()> {
    req.set_uri(x.target.clone());
    let sealed = |n: &HeaderName| x.headers.iter().any(|(s, _)| s == n.as_str());
    let dropped: Vec<HeaderName> = req
        .headers
        .keys()
        .filter(|n| *n != header::HOST && (!plain_headers.contains(n) || sealed(n)))
        .cloned()
        .collect();
    for name in dropped {
        req.remove_header(&name);
    }
    for (name, value) in &x.headers {
        if name != header::ACCEPT_ENCODING.as_str() {
            req.append_header(name.clone(), value.as_str())?;
        }
    }
    req.insert_header(header::ACCEPT_ENCODING, "identity")?;
    match x.framing {
        Framing::Sized(len) => req.insert_header(header::CONTENT_LENGTH, len.to_string())?,
        Framing::Empty => req.insert_header(header::CONTENT_LENGTH, "0")?,
        Framing::None | Framing::Chunked => {}
    }
    x.head_sent = true;
    Ok(())
}

/// Opens the request body as it arrives: `body` is replaced by the plaintext of every record
/// completed so far (records are independent of how TCP split the bytes). At the end of the
/// stream the decoder must have seen its final record. Any failure is a 562.
///
/// `body` stays `Some` (possibly empty) whenever it came in `Some` before the end: Pingora
/// takes a `None` body as the end of the request body.
pub(crate) fn decode_body(
    x: &mut Exchange,
    body: &mut Option<Bytes>,
    end_of_stream: bool,
) -> Result<()> {
    if let Some(data) = body.as_mut().filter(|d| !d.is_empty()) {
        let Some(decoder) = x.decoder.as_mut() else {
            return Err(body_error("a body arrived without the body flag"));
        };
        x.body_started = true;
        let mut plain = Vec::with_capacity(data.len());
        decoder
            .push(data, &mut plain)
            .map_err(|_| body_error("the request body did not open"))?;
        *data = Bytes::from(plain);
    }
    // Pingora writes a last `Some` piece even when empty: in a chunked upstream body that is a
    // chunk of size 0, a terminating chunk before its own (a stray `0\r\n\r\n` upstream).
    if end_of_stream && body.as_ref().is_some_and(Bytes::is_empty) {
        *body = None;
    }
    if end_of_stream {
        if let Some(decoder) = x.decoder.take() {
            decoder
                .finish()
                .map_err(|_| body_error("the request body is truncated or did not open"))?;
        }
        x.body_done = true;
    }
    Ok(())
}

fn body_error(why: &'static str) -> Box<Error> {
    Error::explain(ErrorType::HTTPStatus(ErrorKind::DECODE_FAILED.status), why)
}
