//! Every domain-separation label of version 2, in one place (§3, §4, §6, §7, §8, §11.2, §14).
//! Labels are ASCII without a terminator (§2).

/// AAD label (§8).
pub(crate) const AAD: &[u8; 9] = b"pqrelay/2";
/// Client id MAC (§3).
pub(crate) const CLIENT_ID: &[u8] = b"pqrelay/2 client-id";
/// Relay key seed: HKDF-Extract salt for a `RELAY_KEYS` value (§4).
pub(crate) const RELAY_KEY_SALT: &[u8] = b"pqrelay/2 relay key";
/// Relay key seed: HKDF-Extract salt for a client-id secret (§4).
pub(crate) const RELAY_KEY_FROM_SECRET_SALT: &[u8] = b"pqrelay/2 relay key from client-id secret";
/// Relay key seed: HKDF-Expand info (§4).
pub(crate) const RELAY_KEY_SEED: &[u8] = b"pqrelay/2 relay key seed";
/// Pairing transcript hash prefix (§6).
pub(crate) const PAIRING: &[u8] = b"pqrelay/2 pairing";
/// Pairing HKDF-Extract salt (§6).
pub(crate) const PAIR: &[u8] = b"pqrelay/2 pair";
/// `root` info prefix (§6).
pub(crate) const ROOT: &[u8] = b"pqrelay/2 root";
/// `ck_0` info prefix (§6).
pub(crate) const CHAIN: &[u8] = b"pqrelay/2 chain";
/// `kc` info, and the prefix of the `confirm` MAC input (§6).
pub(crate) const CONFIRM: &[u8] = b"pqrelay/2 confirm";
/// `kq_n` info (§7).
pub(crate) const REQUEST: &[u8] = b"pqrelay/2 request";
/// `ks_n` info (§7).
pub(crate) const RESPONSE: &[u8] = b"pqrelay/2 response";
/// `ke_n` info (§7), and the prefix of the error tag MAC input (§11.2).
pub(crate) const ERROR: &[u8] = b"pqrelay/2 error";
/// `ck_{n+1}` info (§7).
pub(crate) const NEXT: &[u8] = b"pqrelay/2 next";
/// State key HKDF-Extract salt, and the state blob AAD prefix (§14).
pub(crate) const STATE: &[u8] = b"pqrelay/2 state";
/// State key HKDF-Expand info (§14).
pub(crate) const STATE_KEY: &[u8] = b"pqrelay/2 state key";
/// Per-blob key info prefix (§14).
pub(crate) const STATE_BLOB: &[u8] = b"pqrelay/2 state blob";
