//! The request half of an exchange (PROTOCOL.md §8.2): open, validate, commit, rewrite, decode.

use bytes::Bytes;
use http::{header, HeaderName, Uri};
use pingora_error::{Error, ErrorType, Result};
use pingora_http::RequestHeader;
use pqrelay_protocol::msgs::headers::is_forbidden_request_header;
use pqrelay_protocol::names::SEALED_HEADERS;
use pqrelay_protocol::{
    open_headers, open_url, plain_len, validate_origin_form, ClientId, ExchangeHeader,
    ExchangeKeys, Flags, MessageContext, RelayHeader, StreamDecoder, MAX_SKIP,
};

use super::Exchange;
use crate::config::values::matches_any;
use crate::error::{ErrorKind, Refusal};
use crate::http::ctx::RelayRequest;
use crate::http::guard::path_problem;
use crate::site::Site;
use crate::store::Stored;

/// Whether a plain wire header stays behind: `x-mte-*`, framing and hop-by-hop headers (the
/// names a client may not seal, except `host`, which the upstream step rewrites), the wire
/// `content-type` (the plain one is sealed) and `accept-encoding` (the upstream answers
/// identity).
fn is_dropped_request_header(name: &str) -> bool {
    (name != "host" && is_forbidden_request_header(name))
        || name == "content-type"
        || name == "accept-encoding"
}

/// Opens and checks an exchange request, then commits the pair's next state.
///
/// Order (§6, §8.2): parse `x-mte-relay` → load the pair → ratchet to the counter → open the
/// URL (flag `url`) and `x-mte-relay-eh` → validate the decoded URL (origin-form, and
/// [`path_problem`]) and headers → `MTE_ROUTES`
/// on the decoded path → body framing → compare-and-set. Nothing is committed before the
/// sealed items opened and the request is known to be forwardable.
pub(crate) async fn begin(
    site: &Site,
    req: &RequestHeader,
    relay: &RelayRequest,
) -> Result<Exchange, Refusal> {
    let RelayHeader::Exchange(h) = &relay.header else {
        let why = "an MTE route needs x-mte-relay: 1.<client id>.<pair id>.<counter>.<flags>";
        return Err(Refusal::new(ErrorKind::RELAY_HEADER_INVALID, why));
    };
    let client = relay.client.id;
    let method = req.method.as_str();
    let wire_target = std::str::from_utf8(req.raw_path())
        .map_err(|_| Refusal::new(ErrorKind::INVALID_URL, "the request-target is not ASCII"))?;
    let context =
        MessageContext::request(client, h.pair_id, h.counter, h.flags, method, wire_target)
            .map_err(|e| Refusal::protocol(&e))?;

    let mut stored = load(site, &client, h, true).await?;
    if stored.remembered {
        // This relay's memory of its own last write: if another relay advanced the pair since,
        // the exchange fails on it, and is tried once more on a fresh read.
        match commit(site, req, relay, h, &context, wire_target, stored).await {
            Ok(x) => return Ok(x),
            Err(_) => stored = load(site, &client, h, false).await?,
        }
    }
    commit(site, req, relay, h, &context, wire_target, stored).await
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
        Ok(None) => Err(Refusal::new(
            ErrorKind::STATE_NOT_FOUND,
            "no state for this pair: pair again",
        )),
        Err(e) => {
            log::warn!("exchange: state store: {e}");
            Err(Refusal::new(e.kind(), "the pair state could not be read"))
        }
    }
}

/// Ratchets `stored` to the request's counter, opens and validates the sealed items, and
/// commits the pair's next state (compare-and-set against `stored`).
async fn commit(
    site: &Site,
    req: &RequestHeader,
    relay: &RelayRequest,
    h: &ExchangeHeader,
    context: &MessageContext,
    wire_target: &str,
    stored: Stored,
) -> Result<Exchange, Refusal> {
    let client = relay.client.id;
    let (keys, next) = stored
        .pair
        .accept(h.counter, MAX_SKIP)
        .map_err(|e| Refusal::protocol(&e.into()))?;
    let ExchangeKeys {
        request: request_key,
        response: response_key,
        ..
    } = keys;

    let target = if h.flags.contains(Flags::URL) {
        open_url(&request_key, context, wire_target).map_err(|e| Refusal::protocol(&e))?
    } else {
        validate_origin_form(wire_target).map_err(|e| Refusal::protocol(&e.into()))?;
        wire_target.to_owned()
    };
    let sealed = req
        .headers
        .get(SEALED_HEADERS)
        .and_then(|v| v.to_str().ok())
        .ok_or(Refusal::new(
            ErrorKind::RELAY_HEADER_INVALID,
            "the exchange has no x-mte-relay-eh header",
        ))?;
    let headers = open_headers(&request_key, context, sealed).map_err(|e| Refusal::protocol(&e))?;
    if let Some(why) = path_problem(&target) {
        return Err(Refusal::new(ErrorKind::INVALID_URL, why));
    }
    let target_uri: Uri = target.parse().map_err(|_| {
        Refusal::new(
            ErrorKind::INVALID_URL,
            "the decoded URL is not a valid path",
        )
    })?;
    if let Some(routes) = &site.config.mte_routes {
        if !matches_any(routes, target_uri.path()) {
            return Err(Refusal::new(ErrorKind::NOT_FOUND, "no such route"));
        }
    }
    let plain_len = body_framing(req, h.flags)?;

    match site
        .store
        .compare_and_set(&client, &h.pair_id, &stored.version, &next)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            let why = "the pair was used concurrently";
            return Err(Refusal::new(ErrorKind::COUNTER_REJECTED, why));
        }
        Err(e) => {
            log::warn!("exchange: state store: {e}");
            let kind = match e {
                crate::store::StoreError::Unreadable => ErrorKind::REPAIR_REQUIRED,
                _ => ErrorKind::STATE_STORE_FAILED,
            };
            return Err(Refusal::new(kind, "the pair state could not be saved"));
        }
    }

    let decoder = h
        .flags
        .contains(Flags::BODY)
        .then(|| StreamDecoder::new(&request_key, context, plain_len));
    Ok(Exchange {
        token: relay.client.token.clone(),
        pair_id: h.pair_id,
        counter: h.counter,
        request_flags: h.flags,
        context: context.clone(),
        response_key,
        target: target_uri,
        headers,
        plain_len,
        decoder,
        body_started: false,
        encoder: None,
        streaming_response: false,
    })
}

/// The plain body length to announce upstream (`Some` for a sized wire body without flag
/// `streaming`), checking that the body flag and the wire framing agree.
fn body_framing(req: &RequestHeader, flags: Flags) -> Result<Option<u64>, Refusal> {
    let content_length = match req.headers.get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or(Refusal::new(
                    ErrorKind::INVALID_LENGTH,
                    "content-length is not a number",
                ))?,
        ),
    };
    let chunked = req
        .headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .any(|v| {
            v.to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains("chunked"))
        });
    if !flags.contains(Flags::BODY) {
        if chunked || content_length.is_some_and(|n| n > 0) {
            return Err(Refusal::new(
                ErrorKind::INVALID_LENGTH,
                "the request has a body but not the body flag",
            ));
        }
        return Ok(None);
    }
    match (content_length, chunked) {
        // Streaming records may be short: the plain length cannot be derived from the wire
        // length, so the upstream gets a chunked body.
        (Some(_), false) if flags.contains(Flags::STREAMING) => Ok(None),
        (Some(e), false) => plain_len(e).map(Some).ok_or(Refusal::new(
            ErrorKind::INVALID_LENGTH,
            "content-length is not the encoded length of any body",
        )),
        (None, true) => Ok(None),
        _ => Err(Refusal::new(
            ErrorKind::INVALID_LENGTH,
            "the body flag needs a content-length or a chunked body",
        )),
    }
}

/// Rewrites the upstream request: the decoded target, the plain headers minus `x-mte-*`,
/// framing, hop-by-hop and `accept-encoding`, the decoded headers (replacing plain ones of the
/// same name), and `content-length` = the plain length when the wire request was sized and
/// not empty (otherwise Pingora frames the body chunked). An empty sealed body still has a
/// record to open: with `content-length: 0` the upstream would hold a complete request before
/// the relay opened it, so it gets a chunked body that ends only once the record opened.
pub(crate) fn rewrite_upstream_request(x: &Exchange, req: &mut RequestHeader) -> Result<()> {
    req.set_uri(x.target.clone());
    let nominated: Vec<String> = req
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    let dropped: Vec<HeaderName> = req
        .headers
        .keys()
        .filter(|n| {
            let n = n.as_str();
            is_dropped_request_header(n) || nominated.iter().any(|t| t == n)
        })
        .cloned()
        .collect();
    for name in dropped {
        req.remove_header(&name);
    }
    for (name, _) in &x.headers {
        req.remove_header(name.as_str());
    }
    for (name, value) in &x.headers {
        req.append_header(name.clone(), value.as_str())?;
    }
    if let Some(len) = x.plain_len.filter(|&len| len > 0) {
        req.insert_header(header::CONTENT_LENGTH, len.to_string())?;
    }
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
    finish_body(x, end_of_stream)
}

/// At the end of the stream the decoder must have opened its final record.
fn finish_body(x: &mut Exchange, end_of_stream: bool) -> Result<()> {
    if end_of_stream {
        if let Some(decoder) = x.decoder.take() {
            decoder
                .finish()
                .map_err(|_| body_error("the request body is truncated or did not open"))?;
        }
    }
    Ok(())
}

fn body_error(why: &'static str) -> Box<Error> {
    Error::explain(ErrorType::HTTPStatus(ErrorKind::DECODE_FAILED.status), why)
}
