//! [`Body`]: what a request carries — nothing, bytes (sized, replayable) or a stream (sized or
//! chunked, sealed as it is read, never replayed as such). An empty body (no bytes, or a sized
//! stream of length 0) is sent as `content-length: 0` without flag `body` (§9.2).

use bytes::Bytes;
use futures_core::Stream;
use futures_util::TryStreamExt as _;

use crate::error::BoxError;
use crate::exchange::{BodyKind, ByteStream};

/// A request body.
pub enum Body {
    /// No body: sent without `content-length` (a [`RequestBuilder`](crate::RequestBuilder)
    /// sends a `POST`, `PUT` or `PATCH` without a body as an empty body, `content-length: 0`).
    Empty,
    /// A body in memory: sent in sized mode (or, when empty, as `content-length: 0`), and
    /// replayable (§12 decides whether a request is sent again).
    Bytes(Bytes),
    /// A stream of chunks, sealed as it is read (constant memory), never sent again (unless the
    /// engine keeps it, [`crate::engine::EngineSettings::stream_replay`]). With `len` it is sent
    /// in sized mode and must yield exactly `len` bytes; without, in streaming mode (chunked).
    Stream {
        /// The chunks.
        stream: ByteStream,
        /// The exact plain length, when known.
        len: Option<u64>,
    },
}

impl core::fmt::Debug for Body {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Empty => f.write_str("Body::Empty"),
            Self::Bytes(b) => write!(f, "Body::Bytes({} bytes)", b.len()),
            Self::Stream { len, .. } => write!(f, "Body::Stream(len: {len:?})"),
        }
    }
}

impl Body {
    /// A stream of known plain length `len` (sized mode).
    pub fn sized_stream<S, E>(stream: S, len: u64) -> Self
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        Self::Stream {
            stream: Box::pin(stream.map_err(Into::into)),
            len: Some(len),
        }
    }

    /// A stream of unknown length (streaming mode, chunked; each chunk becomes a record sent
    /// at once).
    pub fn stream<S, E>(stream: S) -> Self
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        Self::Stream {
            stream: Box::pin(stream.map_err(Into::into)),
            len: None,
        }
    }

    /// Whether the request can be sent again (§12 decides whether it is).
    pub fn is_replayable(&self) -> bool {
        !matches!(self, Self::Stream { .. })
    }

    pub(crate) fn kind(&self) -> BodyKind {
        match self {
            Self::Empty => BodyKind::None,
            Self::Bytes(b) if b.is_empty() => BodyKind::Empty,
            Self::Stream { len: Some(0), .. } => BodyKind::Empty,
            Self::Bytes(b) => BodyKind::Sized(b.len() as u64),
            Self::Stream { len: Some(l), .. } => BodyKind::Sized(*l),
            Self::Stream { len: None, .. } => BodyKind::Streaming,
        }
    }

    /// A copy for another attempt (streams cannot be copied: `None`).
    pub(crate) fn try_clone(&self) -> Option<Self> {
        match self {
            Self::Empty => Some(Self::Empty),
            Self::Bytes(b) => Some(Self::Bytes(b.clone())),
            Self::Stream { .. } => None,
        }
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Self::Bytes(b)
    }
}

impl From<Vec<u8>> for Body {
    fn from(b: Vec<u8>) -> Self {
        Self::Bytes(b.into())
    }
}

impl From<String> for Body {
    fn from(s: String) -> Self {
        Self::Bytes(s.into())
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Self::Bytes(Bytes::from_static(s.as_bytes()))
    }
}

impl From<&'static [u8]> for Body {
    fn from(s: &'static [u8]) -> Self {
        Self::Bytes(Bytes::from_static(s))
    }
}
