//! The request's `x-mte-relay` header: parsed once, and its client id verified with the site's
//! secrets, for routing (MTE routes), discovery and pairing.

use pingora_http::RequestHeader;
use pqrelay_protocol::msgs::relay_header::single_field;
use pqrelay_protocol::names::RELAY_HEADER;
use pqrelay_protocol::{Error, RelayHeader};

use super::ctx::RelayRequest;
use crate::error::{ErrorKind, Refusal};
use crate::site::Site;

/// The request's `x-mte-relay` header, parsed (not yet verified); `None` when absent. Two
/// fields, or one that is not ASCII, are 561; a malformed value is 561, 560 without a client id,
/// 566 with a token that is not one, 568 for another version (PROTOCOL.md §9.1).
pub(crate) fn relay_header(req: &RequestHeader) -> Option<Result<RelayHeader, Refusal>> {
    let fields = req.headers.get_all(RELAY_HEADER);
    let refusal = |e: pqrelay_protocol::RelayHeaderError| Refusal::protocol(&Error::from(e));
    match single_field(fields.iter().map(|v| v.as_bytes())) {
        Ok(None) => None,
        Ok(Some(value)) => Some(RelayHeader::parse(value.trim()).map_err(refusal)),
        Err(e) => Some(Err(refusal(e))),
    }
}

/// Verifies the header's client id with the site's secrets (566 when it does not verify).
pub(crate) fn verify(site: &Site, header: RelayHeader) -> Result<RelayRequest, Refusal> {
    let client = site
        .signer
        .verify(header.token())
        .map_err(|_| Refusal::new(ErrorKind::INVALID_CLIENT_ID, "client id does not verify"))?;
    Ok(RelayRequest { header, client })
}
