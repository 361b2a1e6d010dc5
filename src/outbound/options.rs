//! The caller's side of an outbound request: the vendor's option headers and the headers that
//! are forwarded (sealed) to the remote relay.
//!
//! Options (issue 19), each optional:
//!
//! - `x-mte-encode-url`: a boolean (`true/false/yes/no/on/off/1/0`, any case); default true;
//! - `x-mte-encode-headers`: a boolean, or a comma-separated list of header names (the vendor's
//!   "seal only these"). Accepted and logged at debug, but **every forwarded header is sealed
//!   whatever it says**: a version-2 relay forwards only sealed request headers (cookies
//!   excepted, PROTOCOL.md §9.2), so a header left plain would never reach the upstream;
//! - `x-mte-encode-type`: `MTE` or `MKE` (any case), the vendor's encoder choice: accepted and
//!   logged at debug (pqrelay has one encoding).
//!
//! Any other value is 400 `bad_request` naming the accepted values.

use http::{header, HeaderMap, HeaderName};

/// Which request headers the caller asked to seal (accepted, logged; everything is sealed).
pub(crate) const ENCODE_HEADERS_HEADER: &str = "x-mte-encode-headers";
/// Whether the path and query are sealed: a boolean, default true.
pub(crate) const ENCODE_URL_HEADER: &str = "x-mte-encode-url";
/// The vendor's encoder choice, `MTE` or `MKE` (accepted, logged).
pub(crate) const ENCODE_TYPE_HEADER: &str = "x-mte-encode-type";

/// The spellings of a boolean option value (any case).
const TRUE_WORDS: [&str; 4] = ["true", "yes", "on", "1"];
const FALSE_WORDS: [&str; 4] = ["false", "no", "off", "0"];
/// The accepted `x-mte-encode-type` values (any case).
const ENCODE_TYPES: [&str; 2] = ["MTE", "MKE"];

/// Request headers never forwarded: the client sets framing and `host` itself.
pub(crate) const HOP_BY_HOP: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "expect",
];

/// The caller's option headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    /// `x-mte-encode-url`, when given.
    pub(crate) encode_url: Option<bool>,
    /// `x-mte-encode-headers` as given (a boolean or a list of names), for the log.
    pub(crate) encode_headers: Option<String>,
    /// `x-mte-encode-type`, uppercase, when given.
    pub(crate) encode_type: Option<&'static str>,
}

/// A boolean option value: `true/false/yes/no/on/off/1/0` in any case.
pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    let v = v.trim();
    let is = |words: &[&str]| words.iter().any(|w| w.eq_ignore_ascii_case(v));
    if is(&TRUE_WORDS) {
        Some(true)
    } else if is(&FALSE_WORDS) {
        Some(false)
    } else {
        None
    }
}

/// Parses `x-mte-encode-url`, `x-mte-encode-headers` and `x-mte-encode-type`; the error is
/// the 400 message naming the accepted values.
pub(crate) fn parse_options(headers: &HeaderMap) -> Result<Options, String> {
    let text = |name: &str| -> Result<Option<&str>, String> {
        headers
            .get(name)
            .map(|v| v.to_str().map_err(|_| format!("{name} is not ASCII")))
            .transpose()
    };
    let booleans = "true, false, yes, no, on, off, 1 or 0 (any case)";
    let encode_url = match text(ENCODE_URL_HEADER)? {
        None => None,
        Some(v) => {
            Some(parse_bool(v).ok_or_else(|| format!("{ENCODE_URL_HEADER} must be {booleans}"))?)
        }
    };
    let encode_headers = match text(ENCODE_HEADERS_HEADER)? {
        None => None,
        Some(v) if parse_bool(v).is_some() => Some(v.trim().to_owned()),
        Some(v) => {
            let names: Vec<&str> = v.split(',').map(str::trim).collect();
            let valid = names.iter().all(|n| {
                !n.is_empty() && HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes()).is_ok()
            });
            if !valid {
                return Err(format!(
                    "{ENCODE_HEADERS_HEADER} must be {booleans}, or a comma-separated list of \
                     header names"
                ));
            }
            Some(v.trim().to_owned())
        }
    };
    let encode_type = match text(ENCODE_TYPE_HEADER)? {
        None => None,
        Some(v) => Some(
            ENCODE_TYPES
                .into_iter()
                .find(|t| t.eq_ignore_ascii_case(v.trim()))
                .ok_or_else(|| format!("{ENCODE_TYPE_HEADER} must be MTE or MKE (any case)"))?,
        ),
    };
    Ok(Options {
        encode_url,
        encode_headers,
        encode_type,
    })
}

/// The caller's headers to seal and forward: without `x-mte-*`, `host`, framing and
/// hop-by-hop headers (including those named by `Connection`).
pub(crate) fn forwarded_headers(headers: &HeaderMap) -> HeaderMap {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let n = name.as_str();
        if n.starts_with("x-mte-") || HOP_BY_HOP.contains(&n) || named.iter().any(|c| c == n) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn options_read_the_vendor_spellings() {
        let o = parse_options(&map(&[])).unwrap();
        assert_eq!(
            (o.encode_url, o.encode_headers, o.encode_type),
            (None, None, None)
        );
        for (v, want) in [
            ("true", true),
            ("TRUE", true),
            ("Yes", true),
            ("on", true),
            ("1", true),
            ("false", false),
            ("No", false),
            ("OFF", false),
            ("0", false),
        ] {
            let o = parse_options(&map(&[("x-mte-encode-url", v)])).unwrap();
            assert_eq!(o.encode_url, Some(want), "{v}");
            let o = parse_options(&map(&[("x-mte-encode-headers", v)])).unwrap();
            assert_eq!(o.encode_headers.as_deref(), Some(v), "{v}");
        }
        let o = parse_options(&map(&[("x-mte-encode-headers", "Authorization, x-a")])).unwrap();
        assert_eq!(o.encode_headers.as_deref(), Some("Authorization, x-a"));
        for (v, want) in [("MTE", "MTE"), ("mke", "MKE"), (" Mte ", "MTE")] {
            let o = parse_options(&map(&[("x-mte-encode-type", v)])).unwrap();
            assert_eq!(o.encode_type, Some(want));
        }
    }

    #[test]
    fn options_refuse_other_values_naming_the_accepted_ones() {
        let err = parse_options(&map(&[("x-mte-encode-url", "maybe")])).unwrap_err();
        assert!(
            err.contains("true, false, yes, no, on, off, 1 or 0"),
            "{err}"
        );
        let err = parse_options(&map(&[("x-mte-encode-headers", "a b")])).unwrap_err();
        assert!(err.contains("true, false") && err.contains("list"), "{err}");
        assert!(parse_options(&map(&[("x-mte-encode-headers", "a,,b")])).is_err());
        let err = parse_options(&map(&[("x-mte-encode-type", "AES")])).unwrap_err();
        assert!(err.contains("MTE or MKE"), "{err}");
    }

    #[test]
    fn control_and_hop_by_hop_headers_are_not_forwarded() {
        let h = forwarded_headers(&map(&[
            ("x-mte-outbound-token", "t"),
            ("x-mte-upstream", "http://x"),
            ("host", "relay-a"),
            ("connection", "keep-alive, x-drop"),
            ("x-drop", "1"),
            ("content-length", "3"),
            ("authorization", "Bearer x"),
            ("x-keep", "1"),
        ]));
        let names: Vec<&str> = h.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["authorization", "x-keep"]);
    }
}
