//! Decoded responses: [`RelayResponse`] (status, decoded headers) and [`ResponseBody`], a
//! stream of plain bytes opened record by record as the sealed body arrives.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use futures_util::StreamExt as _;
use http::{HeaderMap, StatusCode};
use http_body::{Body as _, Frame};
use pqrelay_protocol::{ExchangeKeys, Flags, StreamDecoder};

use crate::error::Error;
use crate::exchange::OpenedHead;
use crate::observer::{WireEvent, WireObserver};
use crate::pool::PairLease;
use crate::transport::RequestBody;

/// A decoded response of the relay: the upstream's status and headers, and its body.
#[derive(Debug)]
pub struct RelayResponse {
    status: StatusCode,
    headers: HeaderMap,
    wire_headers: HeaderMap,
    content_length: Option<u64>,
    body: ResponseBody,
}

impl RelayResponse {
    pub(crate) fn new(
        status: StatusCode,
        opened: OpenedHead,
        wire_headers: HeaderMap,
        body: ResponseBody,
    ) -> Self {
        Self {
            status,
            headers: opened.headers,
            wire_headers,
            content_length: opened.plain_len,
            body,
        }
    }

    /// This response's body holds the pair of its exchange ([`ResponseBody::with_lease`]).
    pub(crate) fn with_lease(mut self, lease: PairLease) -> Self {
        self.body = self.body.with_lease(lease);
        self
    }

    /// The status code (plain on the wire, authenticated through the sealed headers).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The decoded (sealed) headers, plus the plain `set-cookie` headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The headers as received on the wire (`x-mte-relay`, `x-mte-relay-eh`, framing, CORS...).
    pub fn wire_headers(&self) -> &HeaderMap {
        &self.wire_headers
    }

    /// The plain body length when the relay sent a sized body; `None` when streamed or absent.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// The next piece of the plain body, as soon as a record opened; `None` at the end (after
    /// the final record was checked).
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        self.body.next().await.transpose()
    }

    /// The whole plain body.
    pub async fn bytes(self) -> Result<Bytes, Error> {
        self.body.collect().await
    }

    /// The whole plain body as UTF-8 text (invalid sequences replaced).
    pub async fn text(self) -> Result<String, Error> {
        let bytes = self.bytes().await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The whole plain body parsed as JSON.
    pub async fn json<T: serde::de::DeserializeOwned>(self) -> Result<T, Error> {
        let bytes = self.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Body(Box::new(e)))
    }

    /// The body, as a [`Stream`] of plain chunks and an [`http_body::Body`].
    pub fn into_body(self) -> ResponseBody {
        self.body
    }
}

/// A response body being opened. Each item is the plaintext of the records completed by one
/// piece of the wire body, yielded at once (so Server-Sent Events arrive event by event). The
/// stream ends only after the final record opened; truncation or tampering is an error. The
/// pair used by the exchange goes back to the pool when the body ends, fails or is dropped.
pub struct ResponseBody {
    source: Option<RequestBody>,
    decoder: Option<StreamDecoder>,
    lease: Option<PairLease>,
    observer: Option<WireObserver>,
    wire_len: u64,
    plain_len: u64,
    size_hint: Option<u64>,
}

impl core::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("wire_len", &self.wire_len)
            .field("plain_len", &self.plain_len)
            .field("done", &self.source.is_none())
            .finish_non_exhaustive()
    }
}

impl ResponseBody {
    /// A body that opens `source` (the wire body of a response whose head is `opened`) with the
    /// exchange's response key. Without flag `body` the wire body must be empty.
    pub fn sealed(source: RequestBody, keys: &ExchangeKeys, opened: &OpenedHead) -> Self {
        let decoder = opened
            .flags
            .contains(Flags::BODY)
            .then(|| StreamDecoder::new(&keys.response, &opened.context, opened.plain_len));
        Self {
            source: Some(source),
            decoder,
            lease: None,
            observer: None,
            wire_len: 0,
            plain_len: 0,
            size_hint: opened.plain_len,
        }
    }

    /// This body reports its end to `observer` ([`WireEvent::ResponseBody`]).
    pub(crate) fn observed(mut self, observer: Option<WireObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// This body holds the pair of its exchange until it ends, fails or is dropped.
    pub(crate) fn with_lease(mut self, lease: PairLease) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Plain bytes produced so far.
    pub fn plain_len(&self) -> u64 {
        self.plain_len
    }

    /// Wire bytes received so far.
    pub fn wire_len(&self) -> u64 {
        self.wire_len
    }

    /// Reads the whole plain body.
    pub async fn collect(mut self) -> Result<Bytes, Error> {
        let cap = self.size_hint.unwrap_or(0).min(64 << 20) as usize;
        let mut single: Option<Bytes> = None;
        let mut buf: Vec<u8> = Vec::new();
        while let Some(piece) = self.next().await {
            let piece = piece?;
            if single.is_none() && buf.is_empty() {
                single = Some(piece);
                continue;
            }
            if let Some(s) = single.take() {
                buf.reserve(cap.max(s.len() + piece.len()));
                buf.extend_from_slice(&s);
            }
            buf.extend_from_slice(&piece);
        }
        Ok(single.unwrap_or_else(|| Bytes::from(buf)))
    }

    /// Ends the body: returns the pair, reports to the observer.
    fn end(&mut self) {
        self.source = None;
        self.lease = None;
        if let Some(obs) = self.observer.take() {
            obs(&WireEvent::ResponseBody {
                wire_len: self.wire_len,
                plain_len: self.plain_len,
            });
        }
    }

    fn fail(&mut self, e: Error) -> Poll<Option<Result<Bytes, Error>>> {
        self.decoder = None;
        self.observer = None;
        self.end();
        Poll::Ready(Some(Err(e)))
    }
}

impl Stream for ResponseBody {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let Some(source) = self.source.as_mut() else {
                return Poll::Ready(None);
            };
            match Pin::new(source).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    return self.fail(Error::Http {
                        context: "reading the response body",
                        source: e,
                    })
                }
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    }; // trailers: ignored
                    self.wire_len += data.len() as u64;
                    let mut out = Vec::new();
                    let res = match self.decoder.as_mut() {
                        Some(dec) => dec.push(&data, &mut out).map_err(Error::from),
                        None if data.is_empty() => Ok(()),
                        None => Err(Error::BadResponse("a body without flag body")),
                    };
                    if let Err(e) = res {
                        return self.fail(e);
                    }
                    if !out.is_empty() {
                        self.plain_len += out.len() as u64;
                        return Poll::Ready(Some(Ok(Bytes::from(out))));
                    }
                }
                Poll::Ready(None) => {
                    if let Some(dec) = self.decoder.take() {
                        if let Err(e) = dec.finish() {
                            return self.fail(e.into());
                        }
                    }
                    self.end();
                    return Poll::Ready(None);
                }
            }
        }
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.poll_next(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.source.is_none()
    }
}
