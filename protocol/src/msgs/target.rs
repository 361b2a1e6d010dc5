//! The origin-form request-target check of §8.2.

use crate::error::UrlError;

/// Longest decoded URL (§12).
pub const MAX_URL_LEN: usize = 8 * 1024;

/// Checks that `url` is an origin-form request-target: starts with a single `/` (so no scheme or
/// authority), contains no `\`, `#`, space, control character (bytes below 0x20 and 0x7f) or
/// non-ASCII character (send those percent-encoded), and is at most 8 KiB.
pub fn validate_origin_form(url: &str) -> Result<(), UrlError> {
    if url.len() > MAX_URL_LEN {
        return Err(UrlError::TooLong);
    }
    let bytes = url.as_bytes();
    if bytes.first() != Some(&b'/') || bytes.get(1) == Some(&b'/') {
        return Err(UrlError::NotOriginForm);
    }
    if bytes
        .iter()
        .any(|&b| !(0x21..0x7f).contains(&b) || b == b'\\' || b == b'#')
    {
        return Err(UrlError::ForbiddenCharacter);
    }
    Ok(())
}
