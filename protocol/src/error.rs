//! Errors. One top [`Error`] wraps narrower enums; each maps to a status and code of §11
//! ([`Error::status`], [`Error::code`]) and to the `expect` kind used by the test vectors
//! ([`Error::kind`]). No Display output ever contains key material or sealed content.
//!
//! ```text
//! Error
//! ├── DecodeFailed                      562 decode_failed
//! ├── Stream(StreamError)               562 decode_failed
//! ├── RelayHeader(RelayHeaderError)     561 / 560 / 566 / 568
//! ├── ClientId(ClientIdError)           566 invalid_client_id
//! ├── Counter(CounterError)             564 counter_rejected / retry_refused
//! ├── Pairing(PairingError)             400 invalid_pairing / unknown_relay_key, 413 too_large
//! ├── Header(HeaderError)               400 forbidden_header, 431 headers_too_large
//! ├── Url(UrlError)                     400 invalid_url, 414 uri_too_long
//! ├── InvalidLength / InvalidMethod     400
//! ├── State(StateError)                 569 repair_required, 559 mte_error
//! └── client side only (status 502, no relay answers them):
//!     NotConfirmed, RelayInfo(RelayInfoError), RelayKey(RelayKeyError), ErrorTag(ErrorTagError)
//! ```

use core::fmt;

use crate::key_id::KeyId;

/// Any failure of this crate.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A sealed URL, header block or state item did not open, or its plaintext did not decode.
    /// Deliberately opaque.
    DecodeFailed,
    /// A STREAM body did not open or was badly framed.
    Stream(StreamError),
    /// The `x-mte-relay` header (or `x-mte-relay-eh` field) is missing, doubled, malformed or
    /// of an unsupported version.
    RelayHeader(RelayHeaderError),
    /// A client id token is malformed or its signature does not verify.
    ClientId(ClientIdError),
    /// The exchange counter is replayed, too far ahead, exhausted, in concurrent use, or a
    /// `retry` that may not run.
    Counter(CounterError),
    /// A pairing request (or, parsed alone, response) is invalid.
    Pairing(PairingError),
    /// Client side: the relay's pairing answer did not confirm (§6). A hard error.
    NotConfirmed(NotConfirmed),
    /// A sealed header list holds a name or value that is not allowed.
    Header(HeaderError),
    /// A (decoded) request target is not an acceptable origin-form URL.
    Url(UrlError),
    /// A sized body's encoded length is not `encoded_len(L)` for any `L` (§10).
    InvalidLength,
    /// The request method cannot be bound into the AAD (empty, not a token, over 255 bytes).
    InvalidMethod,
    /// Stored relay-side state is unreadable, malformed, or made with a key no longer
    /// configured.
    State(StateError),
    /// Client side: `x-mte-relay-info` is malformed or names an unsupported relay (§5).
    RelayInfo(RelayInfoError),
    /// A relay key value, fingerprint, entry or `x-mte-relay-keys` value is invalid, or no
    /// offered key is trusted (§4, §5, §13).
    RelayKey(RelayKeyError),
    /// Client side: an error reply is not authenticated (§11.2).
    ErrorTag(ErrorTagError),
}

/// Status of the errors only a client detects (no relay answers them): what a relay in
/// outbound mode reports when its remote relay fails so.
const CLIENT_SIDE_STATUS: u16 = 502;

impl Error {
    /// The HTTP status the relay answers with (§11). Errors only a client detects
    /// ([`Error::NotConfirmed`], [`Error::RelayInfo`], [`Error::RelayKey`],
    /// [`Error::ErrorTag`]) give 502.
    pub fn status(&self) -> u16 {
        match self {
            Self::DecodeFailed | Self::Stream(_) => 562,
            Self::RelayHeader(RelayHeaderError::VersionUnsupported) => 568,
            Self::RelayHeader(RelayHeaderError::ClientIdMissing) => 560,
            Self::RelayHeader(RelayHeaderError::Token(_)) | Self::ClientId(_) => 566,
            Self::RelayHeader(_) => 561,
            Self::Counter(_) => 564,
            Self::Pairing(PairingError::TooLarge) => 413,
            Self::Pairing(_) => 400,
            Self::Header(HeaderError::TooLarge) => 431,
            Self::Header(_) => 400,
            Self::Url(UrlError::TooLong) => 414,
            Self::Url(_) | Self::InvalidLength | Self::InvalidMethod => 400,
            Self::State(StateError::Malformed) => 559,
            Self::State(_) => 569,
            Self::NotConfirmed(_) | Self::RelayInfo(_) | Self::RelayKey(_) | Self::ErrorTag(_) => {
                CLIENT_SIDE_STATUS
            }
        }
    }

    /// The error code of §11 (`x-mte-relay-error` and the `error` field of the JSON body); for
    /// client-side errors, a name outside §11's table (`pairing_not_confirmed`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Self::DecodeFailed | Self::Stream(_) => "decode_failed",
            Self::RelayHeader(RelayHeaderError::VersionUnsupported) => "version_unsupported",
            Self::RelayHeader(RelayHeaderError::ClientIdMissing) => "client_id_missing",
            Self::RelayHeader(RelayHeaderError::Token(_)) | Self::ClientId(_) => {
                "invalid_client_id"
            }
            Self::RelayHeader(_) => "relay_header_invalid",
            Self::Counter(CounterError::RetryRefused) => "retry_refused",
            Self::Counter(_) => "counter_rejected",
            Self::Pairing(PairingError::TooLarge) => "too_large",
            Self::Pairing(PairingError::UnknownRelayKey(_)) => "unknown_relay_key",
            Self::Pairing(_) => "invalid_pairing",
            Self::Header(HeaderError::TooLarge) => "headers_too_large",
            Self::Header(_) => "forbidden_header",
            Self::Url(UrlError::TooLong) => "uri_too_long",
            Self::Url(_) => "invalid_url",
            Self::InvalidLength => "invalid_length",
            Self::InvalidMethod => "invalid_method",
            Self::State(StateError::Malformed) => "mte_error",
            Self::State(_) => "repair_required",
            Self::NotConfirmed(_) => "pairing_not_confirmed",
            Self::RelayInfo(_) => "relay_info_invalid",
            Self::RelayKey(RelayKeyError::NotTrusted) => "relay_key_not_trusted",
            Self::RelayKey(_) => "relay_key_invalid",
            Self::ErrorTag(_) => "error_unauthenticated",
        }
    }

    /// The failure kind named by the `expect` field of the test vectors
    /// (`protocol/tests/vectors/README.md` lists each with its status).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::DecodeFailed | Self::Stream(StreamError::Decrypt) => "decode_failure",
            Self::Stream(_) => "framing_failure",
            Self::RelayHeader(RelayHeaderError::VersionUnsupported) => "unsupported_version",
            Self::RelayHeader(RelayHeaderError::ClientIdMissing) => "client_id_missing",
            Self::RelayHeader(RelayHeaderError::Token(_)) | Self::ClientId(_) => {
                "invalid_client_id"
            }
            Self::RelayHeader(_) => "invalid_header",
            Self::Counter(CounterError::RetryRefused) => "retry_refused",
            Self::Counter(_) => "counter_rejected",
            Self::Pairing(PairingError::TooLarge) => "too_large",
            Self::Pairing(PairingError::UnknownRelayKey(_)) => "unknown_relay_key",
            Self::Pairing(_) => "invalid_pairing",
            Self::NotConfirmed(_) => "pairing_not_confirmed",
            Self::Header(HeaderError::TooLarge) => "headers_too_large",
            Self::Header(_) => "forbidden_header",
            Self::Url(UrlError::TooLong) => "uri_too_long",
            Self::Url(_) => "invalid_url",
            Self::InvalidLength => "invalid_length",
            Self::InvalidMethod => "invalid_method",
            Self::State(StateError::Malformed) => "invalid_state",
            Self::State(_) => "state_failure",
            Self::RelayInfo(RelayInfoError::Unsupported(_)) => "unsupported_relay",
            Self::RelayInfo(_) => "invalid_relay_info",
            Self::RelayKey(RelayKeyError::NotTrusted) => "untrusted_relay_key",
            Self::RelayKey(_) => "invalid_relay_key",
            Self::ErrorTag(_) => "unauthenticated_error",
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
            Self::NotConfirmed(e) => e.fmt(f),
            Self::Header(e) => write!(f, "sealed headers: {e}"),
            Self::Url(e) => write!(f, "url: {e}"),
            Self::InvalidLength => f.write_str("content-length is not a valid encoded length"),
            Self::InvalidMethod => f.write_str("request method is not a token of 1..=255 bytes"),
            Self::State(e) => write!(f, "pair state: {e}"),
            Self::RelayInfo(e) => write!(f, "x-mte-relay-info: {e}"),
            Self::RelayKey(e) => write!(f, "relay key: {e}"),
            Self::ErrorTag(e) => write!(f, "error reply not authenticated: {e}"),
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
    NotConfirmed => NotConfirmed,
    HeaderError => Header,
    UrlError => Url,
    StateError => State,
    RelayInfoError => RelayInfo,
    RelayKeyError => RelayKey,
    ErrorTagError => ErrorTag,
}

macro_rules! display_str {
    ($ty:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self {
                    $(Self::$variant => $text,)*
                })
            }
        }
    };
}

/// A STREAM body failure (§10). After any of these a decoder stops for good.
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

display_str!(StreamError {
    Decrypt => "a record did not open",
    BadRecordHeader => "invalid record header",
    Truncated => "stream ended before its final record",
    TrailingBytes => "bytes after the final record",
    LengthMismatch => "plain length differs from the announced length",
    Finished => "stream already finished or failed",
});

/// An `x-mte-relay` header (or `x-mte-relay-eh` field) the relay refuses (§9.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayHeaderError {
    /// The version field is a well-formed number other than `2` (568).
    VersionUnsupported,
    /// No `x-mte-relay`, `2` alone, or an empty token (560 `client_id_missing`).
    ClientIdMissing,
    /// The token is not 64 characters of strict b64 (566 `invalid_client_id`, §3).
    Token(ClientIdError),
    /// Anything else (561); the string names the offending field.
    Malformed(&'static str),
}

impl fmt::Display for RelayHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::VersionUnsupported => f.write_str("unsupported protocol version (this is 2)"),
            Self::ClientIdMissing => f.write_str("no client id (send 2.<token>)"),
            Self::Token(e) => write!(f, "client id: {e}"),
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

display_str!(ClientIdError {
    Malformed => "malformed token (not 64 characters of base64url)",
    BadSignature => "signature does not verify",
});

/// A counter the ratchet refuses (§7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CounterError {
    /// Below the lowest counter not passed: a replay or a stale request.
    Replayed,
    /// More than `max-skip` ahead.
    TooFarAhead,
    /// The pair has used every counter and must be re-paired.
    Exhausted,
    /// The relay lost the compare-and-set of the pair's state: a concurrent use (verdict
    /// `unknown`).
    ConcurrentUse,
    /// A `retry` request whose previous counter was already passed, or with counter 0
    /// (564 `retry_refused`, verdict `dead`).
    RetryRefused,
}

display_str!(CounterError {
    Replayed => "replayed or stale counter",
    TooFarAhead => "counter too far ahead",
    Exhausted => "pair exhausted, re-pair",
    ConcurrentUse => "pair in concurrent use",
    RetryRefused => "retry refused: the previous attempt's counter was already accepted",
});

/// An invalid pairing request or response body, or a pairing the relay cannot answer (§6).
/// Each message names the problem, for the relay's 400 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PairingError {
    /// The body is over 64 KiB (413 `too_large`).
    TooLarge,
    /// Not a JSON object with exactly the required keys, each once, of the right types; the
    /// string says what is wrong.
    Json(String),
    /// A key id (`key`, an item of `keys`) is not 43 characters of strict b64.
    BadKeyId,
    /// A `ct` is not 1120 bytes of strict b64.
    BadCiphertext,
    /// `ek` is not 1216 bytes of strict b64, or is not a valid X-Wing key.
    BadEncapsulationKey,
    /// `pairs` is empty or holds more than `max-pairs` (at most 255).
    PairCount,
    /// A pair id is not 22 characters of strict b64.
    BadPairId,
    /// A pair id is given twice.
    DuplicatePairId,
    /// `keys` is empty, holds more than 8 ids, or one id twice.
    KeyCount,
    /// `confirm` is not 43 characters of strict b64.
    BadConfirm,
    /// A ciphertext's X25519 share gives an all-zero shared secret.
    NonContributory,
    /// `key` is none of the relay's keys (400 `unknown_relay_key`).
    UnknownRelayKey(KeyId),
}

impl fmt::Display for PairingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge => f.write_str("the body is over 65536 bytes"),
            Self::Json(e) => write!(f, "invalid JSON body: {e}"),
            Self::BadKeyId => f.write_str("a key id is not 43 characters of base64url (32 bytes)"),
            Self::BadCiphertext => f.write_str("`ct` is not 1120 bytes of base64url"),
            Self::BadEncapsulationKey => {
                f.write_str("`ek` is not a valid X-Wing encapsulation key (1216 bytes)")
            }
            Self::PairCount => f.write_str("`pairs` must hold 1 to max-pairs ids"),
            Self::BadPairId => {
                f.write_str("a pair id is not 22 characters of base64url (16 bytes)")
            }
            Self::DuplicatePairId => f.write_str("a pair id is given twice"),
            Self::KeyCount => f.write_str("`keys` must hold 1 to 8 distinct key ids"),
            Self::BadConfirm => f.write_str("`confirm` is not 43 characters of base64url"),
            Self::NonContributory => f.write_str("`ct` gives an all-zero X25519 shared secret"),
            Self::UnknownRelayKey(fp) => write!(f, "the relay holds no key {fp}"),
        }
    }
}

/// A pairing answer the client refuses (§6): a hard error naming the relay key. Either an
/// attacker answered, or the relay does not hold the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotConfirmed {
    /// The relay key the pairing was made with.
    pub key: KeyId,
    /// What failed.
    pub reason: ConfirmError,
}

impl fmt::Display for NotConfirmed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pairing with relay key {} not confirmed ({}): an attacker answered, or the relay \
             does not hold this key",
            self.key, self.reason
        )
    }
}

/// Why a pairing answer did not confirm.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfirmError {
    /// The body is not a valid response body.
    Malformed(PairingError),
    /// `ct_E` gives an all-zero X25519 shared secret.
    NonContributory,
    /// `confirm` does not verify.
    Mismatch,
    /// `confirm` verifies but `keys` does not list the key paired with.
    KeyNotListed,
}

impl fmt::Display for ConfirmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(e) => write!(f, "invalid response: {e}"),
            Self::NonContributory => f.write_str("ct gives an all-zero X25519 shared secret"),
            Self::Mismatch => f.write_str("confirm does not verify"),
            Self::KeyNotListed => f.write_str("keys does not list the key"),
        }
    }
}

/// A sealed header list entry that is not allowed (§9.2). The offending name is not included:
/// it was sealed, and errors travel in the clear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// A name is not a lowercase token.
    InvalidName,
    /// A name the relay must not take from a client (`host`, framing, hop-by-hop, `expect`,
    /// forwarding, `x-mte-*`).
    Forbidden,
    /// A value contains a control character (other than tab).
    InvalidValue,
    /// The `x-mte-relay-eh` value is over 16384 characters.
    TooLarge,
}

display_str!(HeaderError {
    InvalidName => "a name is not a lowercase token",
    Forbidden => "a name is forbidden",
    InvalidValue => "a value contains a control character",
    TooLarge => "x-mte-relay-eh is over 16384 characters",
});

/// A URL that is not acceptable origin-form (§9.2). Each message names the rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    /// Over the length limit (414 `uri_too_long`).
    TooLong,
    /// Does not start with exactly one `/` (scheme, authority, empty, `*`, `//`).
    NotOriginForm,
    /// Holds a byte outside 0x21–0x7e (space, control, non-ASCII), `#` or `\`.
    ForbiddenCharacter,
    /// The path holds `%2f`, `%5c` or `%00` (any case).
    EncodedSeparator,
    /// The path holds a dot segment (`.` or `..`, percent-decoded, before any `;`).
    DotSegment,
}

display_str!(UrlError {
    TooLong => "the URL is over the length limit (8192 bytes decoded)",
    NotOriginForm => "the URL must be an origin-form path starting with a single /",
    ForbiddenCharacter => "the URL holds a space, control, non-ASCII byte, # or \\",
    EncodedSeparator => "the path holds an encoded slash, backslash or NUL (%2f, %5c, %00)",
    DotSegment => "the path holds a dot segment (. or .., also percent-encoded or with ;params)",
});

/// Unusable relay-side pair state (§14).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateError {
    /// A sealed blob did not open (wrong secret, wrong client or pair, altered): 569.
    Unreadable,
    /// The plain state is not 49 bytes of version 2: 559.
    Malformed,
    /// The pair was made with a relay key no longer configured: 569.
    UnknownRelayKey,
}

display_str!(StateError {
    Unreadable => "stored state does not open",
    Malformed => "stored state is malformed",
    UnknownRelayKey => "the pair was made with a relay key no longer configured",
});

/// An `x-mte-relay-info` value a client refuses (§5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayInfoError {
    /// Not `;`-separated `key=value` items with the four required keys once each and valid
    /// numbers; the string names the problem.
    Malformed(&'static str),
    /// Well-formed, but not a version-2 relay (no `2` in `versions`, or `chunk-size`/`max-skip`
    /// other than 65536/16); the string names the problem.
    Unsupported(&'static str),
}

impl fmt::Display for RelayInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(what) => write!(f, "malformed: {what}"),
            Self::Unsupported(what) => write!(f, "unsupported relay: {what}"),
        }
    }
}

/// A relay key problem (§4, §5, §13). Each message names the rule; none shows key material.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayKeyError {
    /// A key value is shorter than 43 characters.
    ValueTooShort,
    /// A key value holds a character outside `A-Z a-z 0-9 - _`.
    ValueCharacters,
    /// A fingerprint is not `sha256:` and 43 characters of base64url.
    Fingerprint,
    /// An entry is not strict base64url, or an X-Wing entry is not 1218 bytes.
    Entry,
    /// An entry's KEM id is not 0x647a (X-Wing).
    KemId,
    /// An entry's public key is not a valid X-Wing key.
    EncapsulationKey,
    /// Not 1 to 8 keys.
    Count,
    /// One key given twice.
    Duplicate,
    /// `x-mte-relay-keys` holds no X-Wing entry.
    NoneUsable,
    /// None of the offered keys is trusted (pinned or stored, §13): a hard error.
    NotTrusted,
}

display_str!(RelayKeyError {
    ValueTooShort => "a relay key value has at least 43 characters",
    ValueCharacters => "a relay key value holds only A-Z a-z 0-9 - _",
    Fingerprint => "a fingerprint is sha256: followed by 43 characters of base64url",
    Entry => "a relay key entry is 1218 bytes of strict base64url",
    KemId => "a relay key entry starts with KEM id 0x647a (X-Wing)",
    EncapsulationKey => "a relay key entry does not hold a valid X-Wing public key",
    Count => "a relay has 1 to 8 keys",
    Duplicate => "the same relay key is given twice",
    NoneUsable => "x-mte-relay-keys offers no X-Wing key",
    NotTrusted => "none of the offered relay keys is trusted (pinned or stored)",
});

/// An error reply that is not authenticated (§11.2): it says nothing about the request's fate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorTagError {
    /// No `x-mte-relay-error`, `x-mte-relay-verdict` or `x-mte-relay-tag` header.
    Missing,
    /// `x-mte-relay-verdict` is not `dead`, `unknown`, `partial` or `complete`.
    BadVerdict,
    /// `x-mte-relay-tag` is not 43 characters of strict base64url.
    BadTag,
    /// The code is over 255 bytes.
    CodeTooLong,
    /// The tag does not verify.
    Mismatch,
}

display_str!(ErrorTagError {
    Missing => "no verdict or tag",
    BadVerdict => "unknown verdict",
    BadTag => "malformed tag",
    CodeTooLong => "error code over 255 bytes",
    Mismatch => "tag does not verify",
});
