//! Message framing at the edge (docs/SECURITY.md §2): what of a message's framing the relay
//! forwards as it came, and what it normalises or drops.
//!
//! - [`content_length`]: a request's `Content-Length` list (`5, 5`) or repeated fields with
//!   one value are replaced by one field with that value before anything is forwarded
//!   (RFC 9110 §8.6); differing or unparsable values are refused with 400 `bad_request` (Pingora
//!   already refuses most of them while reading the head; this is the second line).
//! - [`drop_informational_on_mte`] / [`informational`]: an MTE client never sees an interim
//!   (1xx) response of the upstream in the clear. Pingora drops every 1xx but `100` (when the
//!   client sent `Expect: 100-continue`) and `101` once the session is told to
//!   ([`Session::set_ignore_info_resp`]); a `100` that is forwarded loses its header fields, and a
//!   `101` (it would turn the connection into a clear tunnel) is a 502. On pass-through routes
//!   interim responses (`103 Early Hints` with its `Link` fields, `100 Continue`) are forwarded
//!   as the upstream sent them, like any HTTP proxy.

use http::header;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;

use crate::error::{ErrorKind, Refusal};

/// Normalises the request's `Content-Length`: one field with one value, or a 400 when the
/// values differ or one is not a length. A request without `Content-Length`, or with
/// `Transfer-Encoding` (Pingora drops the length then), is left as it is.
pub(crate) fn content_length(req: &mut RequestHeader) -> Result<(), Refusal> {
    if req.headers.contains_key(header::TRANSFER_ENCODING) {
        return Ok(());
    }
    let mut fields = 0usize;
    let mut tokens = 0usize;
    let mut length: Option<u64> = None;
    for value in req.headers.get_all(header::CONTENT_LENGTH) {
        fields += 1;
        let text = value.to_str().map_err(|_| bad_length())?;
        for token in text.split(',') {
            tokens += 1;
            let n = parse_length(token.trim()).ok_or_else(bad_length)?;
            match length {
                None => length = Some(n),
                Some(seen) if seen != n => {
                    let why = "the request has differing Content-Length values";
                    return Err(Refusal::new(ErrorKind::BAD_REQUEST, why));
                }
                Some(_) => {}
            }
        }
    }
    if let Some(n) = length.filter(|_| fields > 1 || tokens > 1) {
        req.insert_header(header::CONTENT_LENGTH, n.to_string())
            .map_err(|_| bad_length())?;
    }
    Ok(())
}

/// A length: 1 to 19 ASCII digits (no sign, no spaces).
fn parse_length(token: &str) -> Option<u64> {
    let digits =
        !token.is_empty() && token.len() <= 19 && token.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| token.parse().ok()).flatten()
}

fn bad_length() -> Refusal {
    Refusal::new(
        ErrorKind::BAD_REQUEST,
        "the request's Content-Length is not a length",
    )
}

/// For an MTE request: Pingora drops the upstream's interim responses instead of forwarding
/// them (all but `101` and an expected `100 Continue`, which [`informational`] handles).
pub(crate) fn drop_informational_on_mte(session: &mut Session) {
    session.as_downstream_mut().set_ignore_info_resp(true);
}

/// An interim response about to be forwarded. On an MTE route (`mte`): a `100 Continue` goes
/// out bare (status line only); a `101` is refused (502: it would open a clear tunnel); any
/// other 1xx is dropped by Pingora before it is written ([`drop_informational_on_mte`]) and is
/// stripped here too. On other routes it is forwarded untouched.
pub(crate) fn informational(resp: &mut ResponseHeader, mte: bool) -> Result<()> {
    if !mte {
        return Ok(());
    }
    if resp.status.as_u16() == 101 {
        return Error::e_explain(
            ErrorType::HTTPStatus(502),
            "the upstream switched protocols on an MTE route",
        );
    }
    let names: Vec<_> = resp.headers.keys().cloned().collect();
    for name in names {
        resp.remove_header(&name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(fields: &[&str]) -> RequestHeader {
        let mut req = RequestHeader::build("POST", b"/pt/a", None).unwrap();
        for f in fields {
            req.append_header(header::CONTENT_LENGTH, *f).unwrap();
        }
        req
    }

    fn lengths(req: &RequestHeader) -> Vec<&str> {
        req.headers
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn content_length_list_and_repeats_become_one_value() {
        for fields in [&["5, 5"][..], &["5", "5"], &["5,5", " 5 "], &["5"]] {
            let mut req = request(fields);
            content_length(&mut req).unwrap();
            assert_eq!(lengths(&req), ["5"], "{fields:?}");
        }
        let mut none = request(&[]);
        content_length(&mut none).unwrap();
        assert!(lengths(&none).is_empty());
    }

    #[test]
    fn content_length_refuses_differing_or_bad_values() {
        for fields in [
            &["5, 6"][..],
            &["5", "6"],
            &["+5"],
            &["-1"],
            &["5,"],
            &[""],
            &["0x5"],
            &["99999999999999999999"],
        ] {
            let mut req = request(fields);
            let refused = content_length(&mut req).unwrap_err();
            assert_eq!(refused.kind.code, "bad_request", "{fields:?}");
        }
    }

    #[test]
    fn interim_responses_lose_their_fields_on_mte_routes_only() {
        let mut hints = ResponseHeader::build(103, None).unwrap();
        hints
            .append_header("link", "</a.css>; rel=preload")
            .unwrap();
        let mut kept = hints.clone();
        informational(&mut kept, false).unwrap();
        assert!(kept.headers.contains_key("link"));
        informational(&mut hints, true).unwrap();
        assert!(hints.headers.is_empty());
        let mut switch = ResponseHeader::build(101, None).unwrap();
        assert!(informational(&mut switch, true).is_err());
        assert!(informational(&mut switch, false).is_ok());
    }
}
