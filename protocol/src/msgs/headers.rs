//! The sealed header list (§9.2, §9.3): UTF-8 JSON `[[name, value], ...]`.

use crate::error::{Error, HeaderError};

/// Longest accepted `x-mte-relay-eh` value, in characters of b64 (§9.2, §15).
pub const MAX_SEALED_HEADERS_LEN: usize = 16 * 1024;

/// Names a client may not seal into a request (§9.2), besides any `x-forwarded-*` and
/// `x-mte-*` name.
pub const FORBIDDEN_REQUEST_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "forwarded",
    "x-real-ip",
];

/// Name prefixes a client may not seal into a request (§9.2): the relay's own forwarding
/// headers and the protocol's headers.
pub const FORBIDDEN_REQUEST_PREFIXES: &[&str] = &["x-forwarded-", "x-mte-"];

/// Hop-by-hop and framing names the relay never seals into a response (§9.3), besides
/// `set-cookie` and any `access-control-*` name.
pub const UNSEALED_RESPONSE_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "content-length",
    "te",
    "trailer",
    "upgrade",
];

fn is_tchar_lower(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Checks one entry: the name is a non-empty lowercase token (RFC 9110 `tchar`s, no `A-Z`), the
/// value has no control character other than horizontal tab (no CR, LF, NUL, DEL).
pub fn validate_header(name: &str, value: &str) -> Result<(), HeaderError> {
    if name.is_empty() || !name.bytes().all(is_tchar_lower) {
        return Err(HeaderError::InvalidName);
    }
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(HeaderError::InvalidValue);
    }
    Ok(())
}

/// True for names a client may not seal into a request: [`FORBIDDEN_REQUEST_HEADERS`] and
/// [`FORBIDDEN_REQUEST_PREFIXES`]. `name` must already be lowercase.
pub fn is_forbidden_request_header(name: &str) -> bool {
    FORBIDDEN_REQUEST_HEADERS.contains(&name)
        || FORBIDDEN_REQUEST_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
}

/// True for upstream response headers the relay leaves plain or drops instead of sealing:
/// `set-cookie`, [`UNSEALED_RESPONSE_HEADERS`] and `access-control-*`. `name` must be lowercase.
pub fn is_unsealed_response_header(name: &str) -> bool {
    name == "set-cookie"
        || UNSEALED_RESPONSE_HEADERS.contains(&name)
        || name.starts_with("access-control-")
}

/// Serialises a header list as compact JSON (`[["a","b"],["c","d"]]`), the exact plaintext the
/// Rust implementation seals. Other implementations may serialise differently (whitespace,
/// escapes): receivers parse JSON, they do not compare bytes.
pub fn encode_headers<'a, I>(headers: I) -> Vec<u8>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    // Room for a few headers and the AES-GCM tag sealing appends.
    let mut out = Vec::with_capacity(256);
    out.push(b'[');
    for (i, (name, value)) in headers.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        push_json_string(&mut out, name);
        out.push(b',');
        push_json_string(&mut out, value);
        out.push(b']');
    }
    out.push(b']');
    out
}

fn push_json_string(out: &mut Vec<u8>, s: &str) {
    // Serialising a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Parses and validates a decrypted header list. Not JSON of the shape
/// `[[string, string], ...]` is [`Error::DecodeFailed`]; a bad entry is [`Error::Header`]. With
/// `request` set, forbidden request names are rejected too.
pub fn decode_headers(json: &[u8], request: bool) -> Result<Vec<(String, String)>, Error> {
    let list: Vec<(String, String)> =
        serde_json::from_slice(json).map_err(|_| Error::DecodeFailed)?;
    for (name, value) in &list {
        validate_header(name, value)?;
        if request && is_forbidden_request_header(name) {
            return Err(HeaderError::Forbidden.into());
        }
    }
    Ok(list)
}
