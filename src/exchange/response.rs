//! The response half of an exchange (PROTOCOL.md §8.3): seal the upstream's headers and body.

use std::borrow::Cow;

use bytes::Bytes;
use http::header;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;
use pqrelay_protocol::msgs::headers::is_unsealed_response_header;
use pqrelay_protocol::{
    encoded_len, seal_headers, ExchangeHeader, Flags, StreamEncoder, CHUNK_SIZE,
};

use super::Exchange;
use pqrelay_protocol::names::{EH_HEADER, RELAY_HEADER};

/// Room in a sealed response head: `x-mte-relay`, `x-mte-relay-eh`, framing, CORS, cookies.
const KEPT_HEADERS_HINT: usize = 8;

/// Seals a response head in place: the upstream headers (everything but `set-cookie`,
/// hop-by-hop/framing and `access-control-*`) move into `x-mte-relay-eh`, `x-mte-relay`
/// echoes the pair and counter, and the body mode is chosen: none for `HEAD`, 1xx, 204 and
/// 304, and none (`content-length: 0`, no flag `body`) for an empty upstream body; sized (`content-length: encoded_len(L)`) when the upstream sent `content-length: L`;
/// streaming (flag `streaming`, `transfer-encoding: chunked`) otherwise.
pub(crate) fn seal_head(x: &mut Exchange, is_head: bool, resp: &mut ResponseHeader) -> Result<()> {
    let status = resp.status.as_u16();
    let bodiless = is_head || resp.status.is_informational() || matches!(status, 204 | 304);
    let upstream_len = resp
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    // An empty upstream body (`content-length: 0`) is sent as no body: Pingora hands such a
    // response over as a head that ends the response, with no body callback in which the
    // final record could be written. The flags (authenticated) say there is no body.
    let empty = !bodiless && upstream_len == Some(0);
    let has_body = !bodiless && !empty;
    let sized = upstream_len.filter(|_| has_body);

    let mut flags = Flags::HEADERS;
    if x.request_flags.contains(Flags::URL) {
        flags = flags.union(Flags::URL);
    }
    if has_body {
        flags = flags.union(Flags::BODY);
        if sized.is_none() {
            flags = flags.union(Flags::STREAMING);
        }
    }

    // Everything but `set-cookie` and `access-control-*` leaves the clear head; the rest of the
    // unsealed names (framing, hop-by-hop) is not sealed either. Values are sealed as text,
    // borrowed unless they need replacement characters.
    let stays = |n: &str| n == "set-cookie" || n.starts_with("access-control-");
    let context = x.context.response(status, flags);
    let sealed: Vec<(&str, Cow<'_, str>)> = resp
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v))
        .filter(|(n, _)| !stays(n) && !is_unsealed_response_header(n))
        .map(|(n, v)| (n, String::from_utf8_lossy(v.as_bytes())))
        .collect();
    let eh = seal_headers(
        &x.response_key,
        &context,
        sealed.iter().map(|(n, v)| (*n, v.as_ref())),
    );
    drop(sealed);
    // A new head with only what stays in the clear: cheaper than removing the rest name by
    // name from Pingora's two maps. Names are written in lower case (no case map).
    let mut clear = ResponseHeader::build_no_case(resp.status, Some(KEPT_HEADERS_HINT))?;
    clear.set_version(resp.version);
    clear.set_reason_phrase(resp.get_reason_phrase())?;
    *clear.extensions_mut() = std::mem::take(resp.extensions_mut());
    for (name, value) in resp.headers.iter().filter(|(n, _)| stays(n.as_str())) {
        clear.append_header(name.clone(), value.clone())?;
    }
    *resp = clear;

    let relay = ExchangeHeader {
        token: x.token.clone(),
        pair_id: x.id.pair_id,
        counter: x.id.counter,
        flags,
    }
    .encode();
    resp.insert_header(RELAY_HEADER, relay)?;
    resp.insert_header(EH_HEADER, eh)?;
    if has_body {
        resp.insert_header(header::CONTENT_TYPE, "application/octet-stream")?;
        match sized {
            Some(len) => {
                let wire = encoded_len(len).ok_or_else(|| encode_error("body too large"))?;
                resp.insert_header(header::CONTENT_LENGTH, wire.to_string())?;
            }
            None => resp.insert_header(header::TRANSFER_ENCODING, "chunked")?,
        }
        x.encoder = Some(StreamEncoder::new(&x.response_key, &context, sized));
        x.streaming_response = sized.is_none();
    } else if empty {
        resp.insert_header(header::CONTENT_LENGTH, "0")?;
    }
    Ok(())
}

/// Seals the response body as it arrives. Streaming mode seals each upstream piece as one
/// record at once (Server-Sent Events arrive one by one); sized mode emits full records.
/// The final record is written at the end of the stream.
pub(crate) fn seal_body(
    x: &mut Exchange,
    body: &mut Option<Bytes>,
    end_of_stream: bool,
) -> Result<()> {
    let data = body.take().unwrap_or_default();
    let Some(encoder) = x.encoder.as_mut() else {
        // A bodiless response (HEAD, 204, 304): nothing may follow the head.
        return Ok(());
    };
    let records = data.len().div_ceil(CHUNK_SIZE) + 1;
    let mut out = Vec::with_capacity(data.len() + records * 20);
    encoder
        .push(&data, &mut out)
        .map_err(|_| encode_error("the upstream body does not match its length"))?;
    if x.streaming_response {
        encoder
            .flush(&mut out)
            .map_err(|_| encode_error("the response body could not be sealed"))?;
    }
    if end_of_stream {
        if let Some(encoder) = x.encoder.take() {
            encoder
                .finish(&mut out)
                .map_err(|_| encode_error("the upstream body ended early"))?;
        }
    }
    if !out.is_empty() {
        *body = Some(Bytes::from(out));
    }
    Ok(())
}

fn encode_error(why: &'static str) -> Box<Error> {
    Error::explain(
        ErrorType::HTTPStatus(crate::error::ErrorKind::ENCODE_FAILED.status),
        why,
    )
}
