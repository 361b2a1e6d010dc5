//! Errors of the client. One top [`Error`] wraps the protocol crate's errors, transport errors
//! and the relay's own JSON error answers (§11). Display never prints key material, sealed
//! content or the client id token.
//!
//! ```text
//! Error
//! ├── Http                     the transport (connection refused, TLS, reset, timeout)
//! ├── Protocol                 a sealed item did not open, bad framing, a malformed header
//! ├── Relay                    the relay's own error answer (§11.1), with its verdict if authenticated
//! ├── NotRetried               recovered from an authenticated `dead` error, body not replayable
//! ├── NotARelay / VersionUnsupported / BadResponse / InvalidRequest / Body
//! └── the client-side codes of §11.1 (Error::code):
//!     PairingNotConfirmed      pairing_not_confirmed   hard: an attacker answered, or the wrong key
//!     RelayKeyNotTrusted       relay_key_not_trusted   hard: no offered key is pinned or stored
//!     Protocol(RelayKey(_))    relay_key_invalid
//!     Protocol(RelayInfo(_))   relay_info_invalid
//!     ErrorUnauthenticated     error_unauthenticated   an error reply that did not verify ended the request
//!     OutcomeUnknown           outcome_unknown         the upstream may or may not have run the request (§12)
//! ```

use core::fmt;

use pqrelay_protocol::{KeyId, NotConfirmed, Verdict};

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
    /// `x-mte-relay` header, an invalid header or URL to seal, a malformed `x-mte-relay-info`
    /// (`relay_info_invalid`) or `x-mte-relay-keys` (`relay_key_invalid`).
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
        /// The verdict of an exchange error whose tag verified (§11.2); `None` for errors of
        /// discovery and pairing.
        verdict: Option<Verdict>,
    },
    /// The relay answered an authenticated error with verdict `dead` (the request never
    /// reached the upstream) and the client recovered (re-paired or re-discovered), but the
    /// request was not sent again because its body is a stream that was already consumed.
    /// Nothing reached the upstream: send the request again.
    NotRetried {
        /// The HTTP status of the relay's answer (559–569).
        status: u16,
        /// The error code (`x-mte-relay-error`), e.g. `decode_failed`.
        code: String,
    },
    /// `pairing_not_confirmed` (§6): the pairing answer did not prove that the relay holds the
    /// key the client paired with. Either an attacker answered the pairing, or the relay does
    /// not hold the key. A hard error: the client never pairs again silently.
    PairingNotConfirmed {
        /// The relay's origin.
        origin: String,
        /// What failed, naming the key's fingerprint.
        reason: NotConfirmed,
    },
    /// `relay_key_not_trusted` (§13): none of the relay keys discovery offered is pinned (or,
    /// without pins, trusted since first use). Either an attacker replaced them, or the relay
    /// no longer has the trusted keys. A hard error.
    RelayKeyNotTrusted {
        /// The relay's origin.
        origin: String,
        /// Whether `trusted` are pins (else: stored by trust on first use).
        pinned: bool,
        /// The key ids the client trusts.
        trusted: Vec<KeyId>,
        /// The key ids discovery offered, current first.
        offered: Vec<KeyId>,
    },
    /// `error_unauthenticated` (§11.2): an error reply to an exchange whose tag did not verify
    /// (anyone on the wire could have sent it) ended an idempotent request after its resends.
    ErrorUnauthenticated {
        /// The HTTP status of the reply.
        status: u16,
        /// Its `x-mte-relay-error` code (`unknown` when absent).
        code: String,
        /// The reason its body gave (unauthenticated too).
        message: String,
    },
    /// `outcome_unknown` (§12): a non-idempotent request may or may not have been run by the
    /// upstream, and sending it again could run it twice. Check with the upstream before
    /// sending it again (or send it with an `idempotency-key` the upstream deduplicates).
    OutcomeUnknown {
        /// What happened to the last attempt.
        reason: String,
    },
    /// Discovery found no `x-mte-relay` header: the server is not a pqrelay.
    NotARelay {
        /// The HTTP status of the discovery answer.
        status: u16,
    },
    /// The relay does not speak protocol version 2.
    VersionUnsupported,
    /// The relay's answer does not follow the protocol (e.g. it echoes another pair or counter,
    /// or lacks `x-mte-relay-eh`). The string names what was wrong.
    BadResponse(&'static str),
    /// The request could not be built: bad URL, header or option. The string names the problem.
    InvalidRequest(String),
    /// The caller's body stream failed or produced a length other than the one announced.
    Body(BoxError),
    /// The known-relays file ([`crate::trust_store`]) could not be read or written, or holds a
    /// malformed line.
    TrustStore {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        problem: String,
    },
}

impl Error {
    /// The HTTP status of a relay error answer, if this is one.
    pub fn relay_status(&self) -> Option<u16> {
        match self {
            Self::Relay { status, .. }
            | Self::NotRetried { status, .. }
            | Self::ErrorUnauthenticated { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The client-side code of §11.1 for failures only a client detects:
    /// `pairing_not_confirmed`, `relay_key_not_trusted`, `relay_key_invalid`,
    /// `relay_info_invalid`, `error_unauthenticated`, `outcome_unknown`.
    pub fn code(&self) -> Option<&'static str> {
        use pqrelay_protocol::Error as P;
        match self {
            Self::PairingNotConfirmed { .. } => Some("pairing_not_confirmed"),
            Self::RelayKeyNotTrusted { .. } => Some("relay_key_not_trusted"),
            Self::Protocol(e @ (P::RelayKey(_) | P::RelayInfo(_))) => Some(e.code()),
            Self::ErrorUnauthenticated { .. } => Some("error_unauthenticated"),
            Self::OutcomeUnknown { .. } => Some("outcome_unknown"),
            _ => None,
        }
    }

    /// Whether this is a failure to trust the relay: `pairing_not_confirmed` or
    /// `relay_key_not_trusted` (`pqrelay-curl` exits with status 3).
    pub fn is_trust_failure(&self) -> bool {
        matches!(
            self,
            Self::PairingNotConfirmed { .. } | Self::RelayKeyNotTrusted { .. }
        )
    }

    pub(crate) fn http(context: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Http {
            context,
            source: source.into(),
        }
    }
}

/// `sha256:A, sha256:B` (or `none`).
fn fingerprints(ids: &[KeyId]) -> String {
    if ids.is_empty() {
        return "none".into();
    }
    let list: Vec<String> = ids.iter().map(KeyId::fingerprint).collect();
    list.join(", ")
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
                verdict,
            } => {
                write!(f, "relay answered {status} {code}")?;
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                if let Some(v) = verdict {
                    write!(f, " (authenticated, verdict {v})")?;
                }
                Ok(())
            }
            Self::NotRetried { status, code } => write!(
                f,
                "relay answered {status} {code} (authenticated: the request never reached the \
                 upstream); the client recovered, but the request was not sent again because its \
                 body is a stream (already consumed): send it again"
            ),
            Self::PairingNotConfirmed { origin, reason } => {
                write!(f, "relay {origin}: {reason}")
            }
            Self::RelayKeyNotTrusted {
                origin,
                pinned,
                trusted,
                offered,
            } => {
                let how = if *pinned {
                    "pinned"
                } else {
                    "trusted since first use"
                };
                write!(
                    f,
                    "relay {origin} offers no trusted key: {how} {}; offered {}. Either an \
                     attacker is between this client and the relay, or the relay's keys changed \
                     (then {})",
                    fingerprints(trusted),
                    fingerprints(offered),
                    if *pinned {
                        "pin the new fingerprint"
                    } else {
                        "clear the stored keys of this relay"
                    }
                )
            }
            Self::ErrorUnauthenticated {
                status,
                code,
                message,
            } => {
                write!(f, "relay answered {status} {code}")?;
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                f.write_str(
                    " (not authenticated: its tag did not verify, anyone on the wire could have \
                     sent it)",
                )
            }
            Self::OutcomeUnknown { reason } => write!(
                f,
                "outcome unknown: the upstream may or may not have run the request ({reason}); \
                 it was not sent again because it is not idempotent"
            ),
            Self::NotARelay { status } => write!(
                f,
                "not a pqrelay: HEAD /api/mte-relay answered {status} without an x-mte-relay header"
            ),
            Self::VersionUnsupported => {
                f.write_str("the relay does not support protocol version 2")
            }
            Self::BadResponse(what) => write!(f, "invalid relay response: {what}"),
            Self::InvalidRequest(what) => write!(f, "invalid request: {what}"),
            Self::Body(e) => write!(f, "request body: {e}"),
            Self::TrustStore { path, problem } => {
                write!(f, "known relays file {}: {problem}", path.display())
            }
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
    UrlError,
    RelayInfoError,
    RelayKeyError,
);
