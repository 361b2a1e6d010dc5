//! The origin-form URL check of §9.2, for decoded (sealed) URLs and plain wire targets alike.
//!
//! The relay routes on the path it sees and the upstream must see the same path, so besides
//! being origin-form the path must not hold anything an upstream might decode or normalise into
//! another path: an encoded `/`, `\` or NUL, or a dot segment in any spelling (`..`, `%2e%2E`,
//! `..;x`); `/public/../admin` would match a `/public/*` route.

use crate::error::UrlError;

/// Longest decoded URL (§9.2, §15).
pub const MAX_URL_LEN: usize = 8 * 1024;

/// Checks that `url` is an acceptable origin-form URL of at most [`MAX_URL_LEN`] bytes (§9.2).
/// See [`validate_origin_form_within`].
pub fn validate_origin_form(url: &str) -> Result<(), UrlError> {
    validate_origin_form_within(url, MAX_URL_LEN)
}

/// Checks `url` against every rule of §9.2, with `max_len` as the length limit (the relay's
/// `MAX_URL_BYTES` for wire targets):
///
/// - over `max_len` bytes: [`UrlError::TooLong`] (414);
/// - not starting with exactly one `/` (empty, scheme, authority, `*`, `//host`):
///   [`UrlError::NotOriginForm`];
/// - a byte outside `0x21..=0x7e` (space, control, non-ASCII), `#` or `\` anywhere:
///   [`UrlError::ForbiddenCharacter`];
/// - in the path (before the first `?`): `%2f`, `%5c` or `%00` in any case:
///   [`UrlError::EncodedSeparator`]; a segment that, percent-decoded and without a `;`
///   suffix, is `.` or `..`: [`UrlError::DotSegment`]. The query is not inspected further.
///
/// All but the first are 400 `invalid_url`.
pub fn validate_origin_form_within(url: &str, max_len: usize) -> Result<(), UrlError> {
    if url.len() > max_len {
        return Err(UrlError::TooLong);
    }
    let bytes = url.as_bytes();
    if bytes.first() != Some(&b'/') || bytes.get(1) == Some(&b'/') {
        return Err(UrlError::NotOriginForm);
    }
    if bytes
        .iter()
        .any(|&b| !(0x21..=0x7e).contains(&b) || b == b'\\' || b == b'#')
    {
        return Err(UrlError::ForbiddenCharacter);
    }
    let path = url.split_once('?').map_or(url, |(path, _)| path);
    let encoded_separator = |w: &[u8]| matches!(w, [b'%', h, l] if matches!((h, l.to_ascii_lowercase()), (b'2', b'f') | (b'5', b'c') | (b'0', b'0')));
    if path.as_bytes().windows(3).any(encoded_separator) {
        return Err(UrlError::EncodedSeparator);
    }
    if path.split('/').any(is_dot_segment) {
        return Err(UrlError::DotSegment);
    }
    Ok(())
}

/// True if `segment`, percent-decoded and cut at its first `;`, is `.` or `..`.
fn is_dot_segment(segment: &str) -> bool {
    let mut name = PercentDecoded(segment.as_bytes()).take_while(|&b| b != b';');
    matches!(
        (name.next(), name.next(), name.next()),
        (Some(b'.'), None, _) | (Some(b'.'), Some(b'.'), None)
    )
}

/// The bytes of `.0` with `%XX` escapes (either case) decoded; anything else, including a
/// malformed escape, is kept.
struct PercentDecoded<'a>(&'a [u8]);

impl Iterator for PercentDecoded<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let (&b, tail) = self.0.split_first()?;
        let escaped = match tail {
            [h, l, ..] if b == b'%' => hex(*h).zip(hex(*l)).map(|(h, l)| (h << 4) | l),
            _ => None,
        };
        match escaped {
            Some(byte) => {
                self.0 = tail.get(2..).unwrap_or_default();
                Some(byte)
            }
            None => {
                self.0 = tail;
                Some(b)
            }
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decode_keeps_malformed_escapes() {
        let decode = |s: &[u8]| PercentDecoded(s).collect::<Vec<u8>>();
        assert_eq!(decode(b"%2e%2E%"), b"..%");
        assert_eq!(decode(b"a%zz%4"), b"a%zz%4");
        assert_eq!(decode(b"%41%62"), b"Ab");
    }

    #[test]
    fn each_rule_names_its_error() {
        use UrlError::*;
        let cases: &[(&str, Result<(), UrlError>)] = &[
            ("/", Ok(())),
            ("/api/v1/x?y=1", Ok(())),
            ("/a/b.c/..d/.e/...", Ok(())),
            ("/q?redirect=https%3A%2F%2Fx%2F..%2F", Ok(())),
            ("/%41%42/files/a%2520b", Ok(())),
            ("/a//b", Ok(())),
            ("", Err(NotOriginForm)),
            ("*", Err(NotOriginForm)),
            ("http://evil/x", Err(NotOriginForm)),
            ("//evil/x", Err(NotOriginForm)),
            ("/a\\b", Err(ForbiddenCharacter)),
            ("/a?b\\c", Err(ForbiddenCharacter)),
            ("/a#b", Err(ForbiddenCharacter)),
            ("/a b", Err(ForbiddenCharacter)),
            ("/\u{e9}", Err(ForbiddenCharacter)),
            ("/%2F%2Fevil", Err(EncodedSeparator)),
            ("/..%2f", Err(EncodedSeparator)),
            ("/a/%5c", Err(EncodedSeparator)),
            ("/a%00", Err(EncodedSeparator)),
            ("/public/../admin", Err(DotSegment)),
            ("/public/./x", Err(DotSegment)),
            ("/.%2E/admin", Err(DotSegment)),
            ("/a/..;x/admin", Err(DotSegment)),
            ("/a/..%3bx/admin", Err(DotSegment)),
            ("/a/..", Err(DotSegment)),
        ];
        for (url, want) in cases {
            assert_eq!(validate_origin_form(url), *want, "{url:?}");
        }
        assert_eq!(validate_origin_form_within("/abc", 3), Err(TooLong));
        assert_eq!(validate_origin_form_within("/abc", 4), Ok(()));
    }
}
