//! Test data shared by the relay's tests, the client's tests and the benchmarks.

use sha2::Digest as _;

/// Lowercase hex SHA-256 of `data` (what the demo upstream's `POST /upload` answers).
pub fn sha256_hex(data: &[u8]) -> String {
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `len` bytes where byte `i` is `i mod 251` (the body of the protocol's test vectors).
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}
