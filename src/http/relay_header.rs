//! The request's `x-mte-relay` header: parsed once, and its client id verified with the site's
//! secrets, for routing (MTE routes), discovery and pairing.

use pingora_http::RequestHeader;
use pqrelay_protocol::names::RELAY_HEADER;
use pqrelay_protocol::{ClientIdToken, RelayHeader, RelayHeaderError};

use super::ctx::RelayRequest;
use crate::error::{ErrorKind, Refusal};
use crate::site::Site;

/// The request's `x-mte-relay` header, parsed (not yet verified); `None` when absent.
pub(crate) fn relay_header(req: &RequestHeader) -> Option<Result<RelayHeader, Refusal>> {
    let value = req.headers.get(RELAY_HEADER)?;
    let Ok(value) = value.to_str() else {
        let why = "x-mte-relay is not ASCII";
        return Some(Err(Refusal::new(ErrorKind::RELAY_HEADER_INVALID, why)));
    };
    Some(RelayHeader::parse(value.trim()).map_err(header_refusal))
}

/// The refusal of a malformed `x-mte-relay`: 568 for another version, 560 without a client id,
/// 566 for a token that is not one, 561 otherwise.
fn header_refusal(e: RelayHeaderError) -> Refusal {
    let kind = match e {
        RelayHeaderError::VersionUnsupported => ErrorKind::VERSION_UNSUPPORTED,
        RelayHeaderError::Malformed("header (no token)") => ErrorKind::CLIENT_ID_MISSING,
        RelayHeaderError::Malformed("token") => ErrorKind::INVALID_CLIENT_ID,
        _ => ErrorKind::RELAY_HEADER_INVALID,
    };
    Refusal::new(kind, format!("x-mte-relay: {e}"))
}

/// Verifies the header's client id with the site's secrets (566 when it does not verify).
pub(crate) fn verify(site: &Site, header: RelayHeader) -> Result<RelayRequest, Refusal> {
    let token: &ClientIdToken = match &header {
        RelayHeader::Discovery { token } => token,
        RelayHeader::Exchange(h) => &h.token,
    };
    let client = site
        .client_ids
        .verify(token)
        .map_err(|_| Refusal::new(ErrorKind::INVALID_CLIENT_ID, "client id does not verify"))?;
    Ok(RelayRequest { header, client })
}
