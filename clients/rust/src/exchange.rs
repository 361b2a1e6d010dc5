//! One exchange without I/O: sealing a request head ([`seal_head`]), its body
//! ([`seal_body`], [`SealingBody`]), opening a response head ([`open_response_head`]) and
//! reading a relay error reply, its tag verified with the exchange's `ke_n`
//! ([`read_relay_error`], §11.2). [`RelayClient`](crate::RelayClient) is built from these; they
//! are public so that tests can run an exchange in-process against the protocol crate's relay
//! side.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, SET_COOKIE};
use http::Method;
use http_body::{Frame, SizeHint};
use pqrelay_protocol::msgs::headers::is_forbidden_request_header;
use pqrelay_protocol::names::{
    EH_HEADER, ERROR_HEADER, RELAY_HEADER, SEALED_BODY_CONTENT_TYPE, TAG_HEADER, VERDICT_HEADER,
};
use pqrelay_protocol::{
    encoded_len, open_headers, plain_len, seal_headers, seal_url, validate_header,
    validate_origin_form, verify_error_reply, ClientIdToken, ExchangeHeader, ExchangeId,
    ExchangeKeys, Flags, MessageContext, PairId, RelayHeader, StreamEncoder, Verdict,
};

use crate::error::{BoxError, Error};

/// Which caller headers are sealed (the rest travel in the clear).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderSelection {
    /// Every caller header (the default).
    #[default]
    All,
    /// Only these (lowercase names); `content-type` is sealed whatever the list says.
    Only(Vec<HeaderName>),
}

impl HeaderSelection {
    fn seals(&self, name: &HeaderName) -> bool {
        match self {
            Self::All => true,
            Self::Only(list) => name == CONTENT_TYPE || list.contains(name),
        }
    }
}

/// How a request is sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SealOptions {
    /// Seal the path and query (flag `url`); default true.
    pub encode_url: bool,
    /// Which caller headers are sealed; default all.
    pub headers: HeaderSelection,
}

impl SealOptions {
    /// These options with URL sealing on or off.
    pub fn with_encode_url(mut self, on: bool) -> Self {
        self.encode_url = on;
        self
    }

    /// These options with another header selection.
    pub fn with_headers(mut self, headers: HeaderSelection) -> Self {
        self.headers = headers;
        self
    }
}

impl Default for SealOptions {
    fn default() -> Self {
        Self {
            encode_url: true,
            headers: HeaderSelection::All,
        }
    }
}

/// The body a request will carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// No body: no flag `body`, no `content-length`.
    None,
    /// An empty body (e.g. a `POST` with `content-length: 0`): no flag `body`, and
    /// `content-length: 0` on the wire (§9.2), which the relay passes on to the upstream.
    Empty,
    /// A body of exactly this many plain bytes (sized mode, `content-length`).
    Sized(u64),
    /// A body of unknown length (streaming mode, chunked).
    Streaming,
}

/// A sealed request head, ready to send.
#[derive(Clone, Debug)]
pub struct SealedHead {
    /// The method (plain on the wire).
    pub method: Method,
    /// The wire request-target: `/<sealed>` or the plain path.
    pub target: String,
    /// Every header to send: `x-mte-relay`, `x-mte-relay-eh`, framing, and the caller's
    /// unsealed headers (a version-2 relay drops those, cookies excepted, §9.2).
    pub headers: HeaderMap,
    /// Names of caller headers left in the clear.
    pub plain_headers: Vec<HeaderName>,
    /// The message flags.
    pub flags: Flags,
    /// The request's context (AAD), needed to seal its body and to open the response.
    pub context: MessageContext,
    /// The pair id.
    pub pair_id: PairId,
    /// The encoded body length in sized mode.
    pub encoded_len: Option<u64>,
}

/// A header value of `s`, without copying it when its capacity is its length.
fn header_value(s: String) -> Result<HeaderValue, Error> {
    HeaderValue::from_maybe_shared(Bytes::from(s))
        .map_err(|_| Error::BadResponse("unencodable header value"))
}

/// True for caller headers that are never sent (the client sets framing and `host` itself).
fn is_dropped(name: &HeaderName) -> bool {
    name.as_str().starts_with("x-mte-") || is_forbidden_request_header(name.as_str())
}

/// The plain request head to seal.
#[derive(Clone, Copy, Debug)]
pub struct PlainHead<'a> {
    /// The method.
    pub method: &'a Method,
    /// The origin-form target, e.g. `/api/x?y=1`.
    pub path_and_query: &'a str,
    /// The caller's headers.
    pub headers: &'a HeaderMap,
    /// The body the request will carry.
    pub body: BodyKind,
    /// This attempt repeats the one sent with the previous counter of this pair (flag `retry`,
    /// §12).
    pub retry: bool,
}

/// Seals a request head for exchange `keys.counter` of pair `pair_id` under `token`.
///
/// Caller headers named `host`, framing or hop-by-hop names (`content-length`,
/// `transfer-encoding`, `connection`, ...) are dropped; `x-mte-*` names are an error. A
/// caller's `content-type` is sealed; none is invented (a body without one reaches the
/// upstream without one).
pub fn seal_head(
    token: &ClientIdToken,
    pair_id: PairId,
    keys: &ExchangeKeys,
    request: &PlainHead<'_>,
    options: &SealOptions,
) -> Result<SealedHead, Error> {
    let PlainHead {
        method,
        path_and_query,
        headers,
        body,
        retry,
    } = *request;
    validate_origin_form(path_and_query)?;
    let mut flags = Flags::HEADERS;
    if options.encode_url {
        flags = flags | Flags::URL;
    }
    if retry {
        flags = flags | Flags::RETRY;
    }
    match body {
        BodyKind::None | BodyKind::Empty => {}
        BodyKind::Sized(_) => flags = flags | Flags::BODY,
        BodyKind::Streaming => flags = flags | Flags::BODY | Flags::STREAMING,
    }
    let ctx = MessageContext::request(
        token.id(),
        pair_id,
        keys.counter,
        flags,
        method.as_str(),
        path_and_query,
    )?;

    let mut sealed: Vec<(&str, &str)> = Vec::with_capacity(headers.len() + 1);
    let mut wire = HeaderMap::with_capacity(headers.len() + 4);
    let mut plain_headers = Vec::new();
    for (name, value) in headers {
        if name.as_str().starts_with("x-mte-") {
            return Err(Error::InvalidRequest(format!("header {name} is reserved")));
        }
        if is_dropped(name) {
            continue;
        }
        if options.headers.seals(name) {
            let value = std::str::from_utf8(value.as_bytes())
                .map_err(|_| Error::InvalidRequest(format!("header {name}: value is not UTF-8")))?;
            validate_header(name.as_str(), value)?;
            sealed.push((name.as_str(), value));
        } else {
            wire.append(name.clone(), value.clone());
            if !plain_headers.contains(name) {
                plain_headers.push(name.clone());
            }
        }
    }
    let target = if options.encode_url {
        seal_url(&keys.request, &ctx, path_and_query)?
    } else {
        path_and_query.to_owned()
    };
    let eh = seal_headers(&keys.request, &ctx, sealed);
    let relay = ExchangeHeader {
        token: token.clone(),
        pair_id,
        counter: keys.counter,
        flags,
    };
    // Static names: a custom name given as `&str` would be parsed and copied.
    wire.insert(
        HeaderName::from_static(RELAY_HEADER),
        header_value(relay.encode())?,
    );
    wire.insert(HeaderName::from_static(EH_HEADER), header_value(eh)?);
    let mut encoded = None;
    match body {
        BodyKind::None => {}
        BodyKind::Empty => {
            wire.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
        BodyKind::Sized(len) => {
            wire.insert(
                CONTENT_TYPE,
                HeaderValue::from_static(SEALED_BODY_CONTENT_TYPE),
            );
            let e =
                encoded_len(len).ok_or_else(|| Error::InvalidRequest("body too large".into()))?;
            wire.insert(CONTENT_LENGTH, HeaderValue::from(e));
            encoded = Some(e);
        }
        BodyKind::Streaming => {
            wire.insert(
                CONTENT_TYPE,
                HeaderValue::from_static(SEALED_BODY_CONTENT_TYPE),
            );
        }
    }
    Ok(SealedHead {
        method: method.clone(),
        target,
        headers: wire,
        plain_headers,
        flags,
        context: ctx,
        pair_id,
        encoded_len: encoded,
    })
}

/// Seals a whole body in sized mode (`head` must have been sealed with
/// [`BodyKind::Sized`] of `plain.len()`).
pub fn seal_body(keys: &ExchangeKeys, head: &SealedHead, plain: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(head.encoded_len.unwrap_or(0) as usize);
    let mut enc = StreamEncoder::new(&keys.request, &head.context, Some(plain.len() as u64));
    enc.push(plain, &mut out)?;
    enc.finish(&mut out)?;
    Ok(out)
}

/// A boxed stream of plain body chunks.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, BoxError>> + Send + 'static>>;

/// An [`http_body::Body`] sealing a stream of plain chunks as it is polled: sized mode (full
/// records, the exact encoded length) when the plain length is known, streaming mode (one
/// record per chunk, flushed at once) otherwise. Memory stays constant: at most one chunk of
/// plaintext is buffered.
pub struct SealingBody {
    stream: ByteStream,
    encoder: Option<StreamEncoder>,
    sized: bool,
    remaining_wire: Option<u64>,
}

impl core::fmt::Debug for SealingBody {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SealingBody")
            .field("sized", &self.sized)
            .finish_non_exhaustive()
    }
}

impl SealingBody {
    /// A body for `head` (sealed with [`BodyKind::Sized`] or [`BodyKind::Streaming`]).
    pub fn new(keys: &ExchangeKeys, head: &SealedHead, stream: ByteStream) -> Self {
        let plain = match head.encoded_len {
            Some(e) => plain_len(e),
            None => None,
        };
        Self {
            stream,
            encoder: Some(StreamEncoder::new(&keys.request, &head.context, plain)),
            sized: plain.is_some(),
            remaining_wire: head.encoded_len,
        }
    }

    fn emit(&mut self, out: Vec<u8>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(r) = self.remaining_wire.as_mut() {
            *r = r.saturating_sub(out.len() as u64);
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
    }
}

impl http_body::Body for SealingBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if self.encoder.is_none() {
                return Poll::Ready(None);
            }
            match self.stream.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    self.encoder = None;
                    return Poll::Ready(Some(Err(Box::new(Error::Body(e)))));
                }
                Poll::Ready(Some(Ok(chunk))) => {
                    let sized = self.sized;
                    let mut out = Vec::new();
                    let res = self.encoder.as_mut().map(|enc| {
                        enc.push(&chunk, &mut out)?;
                        if !sized {
                            enc.flush(&mut out)?;
                        }
                        Ok::<(), pqrelay_protocol::StreamError>(())
                    });
                    if let Some(Err(e)) = res {
                        self.encoder = None;
                        return Poll::Ready(Some(Err(Box::new(Error::Body(Box::new(
                            pqrelay_protocol::Error::from(e),
                        ))))));
                    }
                    if !out.is_empty() {
                        return self.emit(out);
                    }
                }
                Poll::Ready(None) => {
                    let mut out = Vec::new();
                    if let Some(enc) = self.encoder.take() {
                        if let Err(e) = enc.finish(&mut out) {
                            return Poll::Ready(Some(Err(Box::new(Error::Body(Box::new(
                                pqrelay_protocol::Error::from(e),
                            ))))));
                        }
                    }
                    if out.is_empty() {
                        return Poll::Ready(None);
                    }
                    return self.emit(out);
                }
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining_wire {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

/// An opened response head.
#[derive(Clone, Debug)]
pub struct OpenedHead {
    /// The HTTP status.
    pub status: u16,
    /// The decoded headers, plus the plain `set-cookie` headers.
    pub headers: HeaderMap,
    /// The response flags.
    pub flags: Flags,
    /// The response context (AAD) for its body.
    pub context: MessageContext,
    /// With flag `body` in sized mode: the plain body length.
    pub plain_len: Option<u64>,
    /// The token the relay answered with when it differs from ours (re-signed, §3).
    pub new_token: Option<ClientIdToken>,
}

/// Opens a response head: checks that `x-mte-relay` echoes our pair and counter, opens
/// `x-mte-relay-eh` with the status bound, and works out the body framing. Call
/// [`relay_error`] first for answers without `x-mte-relay-eh`.
pub fn open_response_head(
    keys: &ExchangeKeys,
    request: &SealedHead,
    token: &ClientIdToken,
    status: u16,
    headers: &HeaderMap,
) -> Result<OpenedHead, Error> {
    let relay = headers
        .get(RELAY_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or(Error::BadResponse("no x-mte-relay header"))?;
    let RelayHeader::Exchange(h) = RelayHeader::parse(relay)? else {
        return Err(Error::BadResponse("x-mte-relay is not an exchange header"));
    };
    if h.pair_id != request.pair_id || h.counter != keys.counter {
        return Err(Error::BadResponse(
            "x-mte-relay echoes another pair or counter",
        ));
    }
    if h.token.id() != token.id() {
        return Err(Error::BadResponse("x-mte-relay echoes another client id"));
    }
    let new_token = (h.token != *token).then_some(h.token);
    let eh = headers
        .get(EH_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or(Error::BadResponse("no x-mte-relay-eh header"))?;
    let ctx = request.context.response(status, h.flags);
    let list = open_headers(&keys.response, &ctx, eh)?;
    let mut out = HeaderMap::with_capacity(list.len() + 1);
    for (name, value) in list {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::BadResponse("unusable decoded header name"))?;
        out.append(name, header_value(value)?);
    }
    for cookie in headers.get_all(SET_COOKIE) {
        out.append(SET_COOKIE, cookie.clone());
    }
    let plain = if h.flags.contains(Flags::BODY) && !h.flags.contains(Flags::STREAMING) {
        let e = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or(Error::BadResponse("sized body without content-length"))?;
        Some(plain_len(e).ok_or(pqrelay_protocol::Error::InvalidLength)?)
    } else {
        None
    };
    Ok(OpenedHead {
        status,
        headers: out,
        flags: h.flags,
        context: ctx,
        plain_len: plain,
        new_token,
    })
}

/// True when an answer is the relay's own plain error rather than a sealed response: it has
/// no `x-mte-relay-eh` and either an `x-mte-relay-error` header or a status in 559..=569.
pub fn is_relay_error(status: u16, headers: &HeaderMap) -> bool {
    !headers.contains_key(EH_HEADER)
        && (headers.contains_key(ERROR_HEADER) || (559..=569).contains(&status))
}

fn text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Builds [`Error::Relay`] from a relay error answer and its (JSON) body, with `verdict` when
/// its tag verified. Missing fields fall back to the status and the `x-mte-relay-error` header.
pub fn relay_error(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    verdict: Option<Verdict>,
) -> Error {
    #[derive(serde::Deserialize)]
    struct Json {
        error: Option<String>,
        message: Option<String>,
    }
    let json: Option<Json> = serde_json::from_slice(body).ok();
    let header_code = text(headers, ERROR_HEADER).map(str::to_owned);
    let (code, message) = match json {
        Some(j) => (header_code.or(j.error), j.message),
        None => (header_code, None),
    };
    Error::Relay {
        status,
        code: code.unwrap_or_else(|| "unknown".into()),
        message: message.unwrap_or_default(),
        verdict,
    }
}

/// Verifies the tag of an error reply to the exchange `keys.counter` of pair `pair_id` under
/// `token` (§11.2): the authenticated verdict, or `None` when the reply is unauthenticated
/// (no tag, a tag that does not verify) and says nothing about the request's fate.
pub fn verify_relay_error(
    keys: &ExchangeKeys,
    token: &ClientIdToken,
    pair_id: PairId,
    status: u16,
    headers: &HeaderMap,
) -> Option<Verdict> {
    let exchange = ExchangeId {
        client_id: token.id(),
        pair_id,
        counter: keys.counter,
    };
    verify_error_reply(
        &keys.error,
        exchange,
        status,
        text(headers, ERROR_HEADER),
        text(headers, VERDICT_HEADER),
        text(headers, TAG_HEADER),
    )
    .ok()
}

/// Reads a relay error reply to the exchange of `keys` and `pair_id`: [`Error::Relay`] with
/// the verdict when the tag verified ([`verify_relay_error`]).
pub fn read_relay_error(
    keys: &ExchangeKeys,
    token: &ClientIdToken,
    pair_id: PairId,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> Error {
    let verdict = verify_relay_error(keys, token, pair_id, status, headers);
    relay_error(status, headers, body, verdict)
}
