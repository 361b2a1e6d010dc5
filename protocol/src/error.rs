//! Errors. One top [`Error`] wraps narrower enums; each maps to a status and code of §11
//! ([`Error::status`], [`Error::code`]) and to the `expect` kind used by the test vectors
//! ([`Error::kind`]). No Display output ever contains key material or sealed content.

use core::fmt;

/// Any failure of this crate.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A sealed URL, header block or state item did not open, or its plaintext did not decode.
    /// Deliberately opaque.
    DecodeFailed,
    /// A STREAM body did not open or was badly framed.
    Stream(StreamError),
    /// The `x-mte-relay` header is malformed or of an unsupported version.
    RelayHeader(RelayHeaderError),
    /// A client id token is malformed or its signature does not verify.
    ClientId(ClientIdError),
    /// The exchange counter is replayed, too far ahead, or exhausted.
    Counter(CounterError),
    /// A pairing request or response is invalid.
    Pairing(PairingError),
    /// A sealed header list holds a name or value that is not allowed.
    Header(HeaderError),
    /// A (decoded) request target is not an acceptable origin-form URL.
    Url(UrlError),
    /// A sized body's encoded length is not `encoded_len(L)` for any `L` (§9).
    InvalidLength,
    /// The request method cannot be bound into the AAD (empty, not a token, over 255 bytes).
    InvalidMethod,
    /// Stored relay-side state is unreadable or malformed.
    State(StateError),
}

impl Error {
    /// The HTTP status the relay answers with (§11).
    pub fn status(&self) -> u16 {
        match self {
            Self::DecodeFailed | Self::Stream(_) => 562,
            Self::RelayHeader(RelayHeaderError::VersionUnsupported) => 568,
            Self::RelayHeader(_) => 561,
            Self::ClientId(_) => 566,
            Self::Counter(_) => 564,
            Self::Pairing(PairingError::TooLarge) => 413,
            Self::Pairing(_) => 400,
            Self::Header(HeaderError::TooLarge) => 431,
            Self::Header(_) => 400,
            Self::Url(UrlError::TooLong) => 414,
            Self::Url(_) | Self::InvalidLength | Self::InvalidMethod => 400,
            Self::State(StateError::Unreadable) => 569,
            Self::State(_) => 559,
        }
    }

    /// The error code of §11 (`x-mte-relay-error` and the `error` field of the JSON body).
    pub fn code(&self) -> &'static str {
        match self {
            Self::DecodeFailed | Self::Stream(_) => "decode_failed",
            Self::RelayHeader(RelayHeaderError::VersionUnsupported) => "version_unsupported",
            Self::RelayHeader(_) => "relay_header_invalid",
            Self::ClientId(_) => "invalid_client_id",
            Self::Counter(_) => "counter_rejected",
            Self::Pairing(PairingError::TooLarge) => "too_large",
            Self::Pairing(_) => "invalid_pairing",
            Self::Header(HeaderError::TooLarge) => "headers_too_large",
            Self::Header(_) => "forbidden_header",
            Self::Url(UrlError::TooLong) => "uri_too_long",
            Self::Url(_) => "invalid_url",
            Self::InvalidLength => "invalid_length",
            Self::InvalidMethod => "invalid_method",
            Self::State(StateError::Unreadable) => "repair_required",
            Self::State(_) => "mte_error",
        }
    }

    /// The failure kind named by the `expect` field of the test vectors
    /// (`protocol/tests/vectors/README.md`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::DecodeFailed | Self::Stream(StreamError::Decrypt) => "decode_failure",
            Self::Stream(_) => "framing_failure",
            Self::RelayHeader(RelayHeaderError::VersionUnsupported) => "unsupported_version",
            Self::RelayHeader(_) => "invalid_header",
            Self::ClientId(_) => "invalid_client_id",
            Self::Counter(_) => "counter_rejected",
            Self::Pairing(_) => "invalid_pairing",
            Self::Header(HeaderError::TooLarge) => "headers_too_large",
            Self::Header(_) => "forbidden_header",
            Self::Url(_) => "invalid_url",
            Self::InvalidLength => "invalid_length",
            Self::InvalidMethod => "invalid_method",
            Self::State(StateError::Unreadable) => "state_failure",
            Self::State(_) => "invalid_state",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DecodeFailed => f.write_str("a sealed item did not open"),
            Self::Stream(e) => write!(f, "sealed body: {e}"),
            Self::RelayHeader(e) => write!(f, "x-mte-relay header: {e}"),
            Self::ClientId(e) => write!(f, "client id: {e}"),
            Self::Counter(e) => write!(f, "counter: {e}"),
            Self::Pairing(e) => write!(f, "pairing: {e}"),
            Self::Header(e) => write!(f, "sealed headers: {e}"),
            Self::Url(e) => write!(f, "url: {e}"),
            Self::InvalidLength => f.write_str("content-length is not a valid encoded length"),
            Self::InvalidMethod => f.write_str("request method is not a token of 1..=255 bytes"),
            Self::State(e) => write!(f, "pair state: {e}"),
        }
    }
}

impl std::error::Error for Error {}

macro_rules! from_narrow {
    ($($ty:ident => $variant:ident),* $(,)?) => {$(
        impl From<$ty> for Error {
            fn from(e: $ty) -> Self {
                Self::$variant(e)
            }
        }
    )*};
}

from_narrow! {
    StreamError => Stream,
    RelayHeaderError => RelayHeader,
    ClientIdError => ClientId,
    CounterError => Counter,
    PairingError => Pairing,
    HeaderError => Header,
    UrlError => Url,
    StateError => State,
}

/// A STREAM body failure (§9). After any of these a decoder stops for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamError {
    /// A record did not open (wrong key, altered, reordered, duplicated, moved).
    Decrypt,
    /// A record header has reserved bits set, a length over `CHUNK_SIZE`, or a non-final record
    /// is empty.
    BadRecordHeader,
    /// The stream ended before its final record.
    Truncated,
    /// Bytes follow the final record.
    TrailingBytes,
    /// The decoded total differs from the announced plain length (or an encoder was given a
    /// different amount of data than it was sized for).
    LengthMismatch,
    /// `push` or `finish` was called after the stream finished or failed.
    Finished,
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Decrypt => "a record did not open",
            Self::BadRecordHeader => "invalid record header",
            Self::Truncated => "stream ended before its final record",
            Self::TrailingBytes => "bytes after the final record",
            Self::LengthMismatch => "plain length differs from the announced length",
            Self::Finished => "stream already finished or failed",
        })
    }
}

/// A malformed `x-mte-relay` header (§8.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayHeaderError {
    /// The version field is a well-formed number other than `1` (568).
    VersionUnsupported,
    /// Anything else; the string names the offending field.
    Malformed(&'static str),
}

impl fmt::Display for RelayHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::VersionUnsupported => f.write_str("unsupported protocol version"),
            Self::Malformed(what) => write!(f, "malformed {what}"),
        }
    }
}

/// A client id token that cannot be used (§3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientIdError {
    /// Not 64 characters of strict b64.
    Malformed,
    /// The MAC does not verify under any configured secret.
    BadSignature,
}

impl fmt::Display for ClientIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "malformed token",
            Self::BadSignature => "signature does not verify",
        })
    }
}

/// A counter the ratchet refuses (§6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CounterError {
    /// Below the next expected counter: a replay or a stale request.
    Replayed,
    /// More than `max-skip` ahead of the next expected counter.
    TooFarAhead,
    /// The pair has used every counter and must be re-paired.
    Exhausted,
}

impl fmt::Display for CounterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Replayed => "replayed or stale counter",
            Self::TooFarAhead => "counter too far ahead",
            Self::Exhausted => "pair exhausted, re-pair",
        })
    }
}

/// An invalid pairing request or response (§5).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PairingError {
    /// The body is over the size limit (413).
    TooLarge,
    /// Not JSON of the required shape; the string is the parser's description.
    Json(String),
    /// No pairs, or more than `max-pairs`.
    PairCount,
    /// Two pairs share one id.
    DuplicateId,
    /// A pair id is not 22 characters of strict b64.
    BadId,
    /// An `ek` is not 1216 bytes of strict b64, or is not a valid X-Wing key.
    BadEncapsulationKey,
    /// A `ct` is not 1120 bytes of strict b64, or decapsulation rejected it.
    BadCiphertext,
    /// A response does not answer the request's pairs in order.
    ResponseMismatch,
}

impl fmt::Display for PairingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge => f.write_str("body too large"),
            Self::Json(e) => write!(f, "invalid JSON: {e}"),
            Self::PairCount => f.write_str("wrong number of pairs"),
            Self::DuplicateId => f.write_str("duplicate pair id"),
            Self::BadId => f.write_str("invalid pair id"),
            Self::BadEncapsulationKey => f.write_str("invalid ek"),
            Self::BadCiphertext => f.write_str("invalid ct"),
            Self::ResponseMismatch => f.write_str("response does not match the request"),
        }
    }
}

/// A sealed header list entry that is not allowed (§8.2). The offending name is not included:
/// it was sealed, and errors travel in the clear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// A name is not a lowercase token.
    InvalidName,
    /// A name the relay must not take from a client (`host`, framing, hop-by-hop, `x-mte-*`).
    Forbidden,
    /// A value contains a control character (other than tab).
    InvalidValue,
    /// The `x-mte-relay-eh` value is over 16 KiB.
    TooLarge,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidName => "a name is not a lowercase token",
            Self::Forbidden => "a name is forbidden",
            Self::InvalidValue => "a value contains a control character",
            Self::TooLarge => "x-mte-relay-eh too large",
        })
    }
}

/// A request target that is not origin-form (§8.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    /// Over 8 KiB.
    TooLong,
    /// Does not start with a single `/` (scheme, authority, empty, `//`).
    NotOriginForm,
    /// Contains `\`, `#`, a space or a control character.
    ForbiddenCharacter,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooLong => "longer than 8 KiB",
            Self::NotOriginForm => "not origin-form",
            Self::ForbiddenCharacter => "forbidden character",
        })
    }
}

/// Unusable relay-side pair state (§10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateError {
    /// A sealed blob did not open (wrong secret, wrong client or pair, altered): 569.
    Unreadable,
    /// The plain state is not 41 bytes of version 1.
    Malformed,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unreadable => "stored state does not open",
            Self::Malformed => "stored state is malformed",
        })
    }
}
