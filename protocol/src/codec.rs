//! The only parser primitives of the crate: a bounded [`Reader`] that cannot panic, big-endian
//! integer helpers, strict base64url and decimal number codecs (§2).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// A cursor over peer bytes. Every read is bounds-checked and returns `None` when the input is
/// too short, so no peer input can make a parser panic.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`, positioned at its start.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Takes the next `n` bytes, or `None` if fewer remain.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    /// Takes the next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    /// Reads a `u8`.
    pub fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|b| b[0])
    }

    /// Reads a big-endian `u16`.
    pub fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    /// Reads a big-endian `u32`.
    pub fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    /// Reads a big-endian `u64`.
    pub fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// True when every byte has been read (leftover bytes are an error for every wire type).
    pub fn is_empty(&self) -> bool {
        self.rest().is_empty()
    }
}

/// `b64(x)` of §2: base64url without padding.
pub fn b64_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Appends `b64(x)` to `out`.
pub(crate) fn b64_append(bytes: &[u8], out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(bytes, out);
}

/// The length of `b64(x)` for `len` bytes of `x`.
pub(crate) fn b64_len(len: usize) -> usize {
    (len * 4).div_ceil(3)
}

/// Writes `b64(x)` to `out` through a stack buffer (no allocation): 48 bytes, a multiple of
/// 3, at a time, so the pieces join into the one encoding.
pub(crate) fn b64_write(out: &mut impl core::fmt::Write, bytes: &[u8]) -> core::fmt::Result {
    let mut text = [0u8; 64];
    for piece in bytes.chunks(48) {
        let n = URL_SAFE_NO_PAD
            .encode_slice(piece, &mut text)
            .map_err(|_| core::fmt::Error)?;
        // base64url is ASCII.
        out.write_str(core::str::from_utf8(&text[..n]).map_err(|_| core::fmt::Error)?)?;
    }
    Ok(())
}

/// Strict `b64` decoding (§2): rejects padding, characters outside the alphabet and
/// non-canonical encodings (non-zero unused trailing bits).
pub fn b64_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.as_bytes()).ok()
}

/// Strict `b64` decoding of exactly `N` bytes.
pub fn b64_decode_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    // Cheap length check first, so oversized peer input is never decoded.
    if text.len() != b64_len(N) {
        return None;
    }
    b64_decode(text)?.try_into().ok()
}

/// Parses a decimal number as §2 requires: ASCII digits only, no sign, no leading zeros (except
/// `0` itself), at most 20 digits, and in range for `u64`.
pub fn parse_decimal(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() > 20 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if bytes.len() > 1 && bytes.first() == Some(&b'0') {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b64_write_is_b64_encode_at_every_length() {
        let bytes: Vec<u8> = (0..=200u8).map(|b| b.wrapping_mul(37)).collect();
        for n in 0..bytes.len() {
            let mut written = String::new();
            b64_write(&mut written, &bytes[..n]).unwrap();
            assert_eq!(written, b64_encode(&bytes[..n]), "{n} bytes");
        }
    }

    #[test]
    fn reader_never_reads_past_end() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16(), Some(0x0102));
        assert_eq!(r.u16(), None);
        assert_eq!(r.u8(), Some(3));
        assert!(r.is_empty());
        assert_eq!(r.take(usize::MAX), None);
    }

    #[test]
    fn b64_rejects_padding_and_non_canonical() {
        assert_eq!(b64_decode("AQ"), Some(vec![1]));
        assert_eq!(b64_decode("AQ=="), None);
        assert_eq!(b64_decode("AR"), None);
        assert_eq!(b64_decode("A+"), None);
        assert_eq!(b64_decode("A"), None);
    }

    #[test]
    fn decimal_is_strict() {
        assert_eq!(parse_decimal("0"), Some(0));
        assert_eq!(parse_decimal("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "00",
            "01",
            "+1",
            "-1",
            " 1",
            "18446744073709551616",
            "1a",
        ] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
    }
}
