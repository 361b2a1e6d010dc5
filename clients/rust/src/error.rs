//! Errors of the client. One top [`Error`] wraps the protocol crate's errors, transport errors
//! and the relay's own JSON error answers (§11). Display never prints key material, sealed
//! content or the client id token.

use core::fmt;

/// A boxed error from a caller-supplied body stream or the transport.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Any failure of the client.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Building or sending the HTTP request, or reading the response, failed (connection
    /// refused, TLS, reset, timeout...). `context` names the step.
    Http {
        /// What the client was doing.
        context: &'static str,
        /// The underlying error.
        source: BoxError,
    },
    /// A protocol-level failure: a sealed item did not open, bad framing, a malformed
    /// `x-mte-relay` header, a bad pairing response, an invalid header or URL to seal.
    Protocol(pqrelay_protocol::Error),
    /// The relay answered with its own plain JSON error (`{"status","error","message"}`):
    /// 559–569 (§11) or an ordinary status such as 400, 404, 413, 429, 502, 503, 504.
    Relay {
        /// The HTTP status.
        status: u16,
        /// The error code (`x-mte-relay-error`, the `error` field), e.g. `decode_failed`.
        code: String,
        /// The relay's human-readable reason.
        message: String,
    },
    /// The relay answered a recoverable error (§11) and the client recovered (re-paired or
    /// re-discovered), but the request was not sent again because its body is a stream that
    /// was already consumed. Nothing reached the upstream: send the request again.
    NotRetried {
        /// The HTTP status of the relay's answer (559–569).
        status: u16,
        /// The error code (`x-mte-relay-error`), e.g. `state_not_found`.
        code: String,
    },
    /// Discovery found no `x-mte-relay` header: the server is not a pqrelay.
    NotARelay {
        /// The HTTP status of the discovery answer.
        status: u16,
    },
    /// The relay does not speak protocol version 1.
    VersionUnsupported,
    /// The relay's answer does not follow the protocol (e.g. it echoes another pair or counter,
    /// or lacks `x-mte-relay-eh`). The string names what was wrong.
    BadResponse(&'static str),
    /// The request could not be built: bad URL, header or option. The string names the problem.
    InvalidRequest(String),
    /// The caller's body stream failed or produced a length other than the one announced.
    Body(BoxError),
}

impl Error {
    /// The HTTP status of a relay error answer, if this is one.
    pub fn relay_status(&self) -> Option<u16> {
        match self {
            Self::Relay { status, .. } | Self::NotRetried { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub(crate) fn http(context: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Http {
            context,
            source: source.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http { context, source } => write!(f, "{context}: {source}"),
            Self::Protocol(e) => write!(f, "protocol: {e}"),
            Self::Relay {
                status,
                code,
                message,
            } => {
                write!(f, "relay answered {status} {code}")?;
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                Ok(())
            }
            Self::NotRetried { status, code } => write!(
                f,
                "relay answered {status} {code}; the client recovered, but the request was not \
                 sent again because its body is a stream (already consumed): send it again"
            ),
            Self::NotARelay { status } => write!(
                f,
                "not a pqrelay: HEAD /api/mte-relay answered {status} without an x-mte-relay header"
            ),
            Self::VersionUnsupported => {
                f.write_str("the relay does not support protocol version 1")
            }
            Self::BadResponse(what) => write!(f, "invalid relay response: {what}"),
            Self::InvalidRequest(what) => write!(f, "invalid request: {what}"),
            Self::Body(e) => write!(f, "request body: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Http { source, .. } | Self::Body(source) => Some(source.as_ref()),
            Self::Protocol(e) => Some(e),
            _ => None,
        }
    }
}

impl From<pqrelay_protocol::Error> for Error {
    fn from(e: pqrelay_protocol::Error) -> Self {
        Self::Protocol(e)
    }
}

macro_rules! from_protocol {
    ($($ty:ident),* $(,)?) => {$(
        impl From<pqrelay_protocol::$ty> for Error {
            fn from(e: pqrelay_protocol::$ty) -> Self {
                Self::Protocol(e.into())
            }
        }
    )*};
}

from_protocol!(
    StreamError,
    RelayHeaderError,
    CounterError,
    PairingError,
    HeaderError,
    UrlError
);
