//! The protocol's names on the wire: header names and the relay's routes (§5, §6, §9, §11),
//! written once for the relay and every Rust caller.

/// The protocol header of discovery, pairing and every exchange message.
pub const RELAY_HEADER: &str = "x-mte-relay";
/// The sealed header block of an exchange message.
pub const SEALED_HEADERS: &str = "x-mte-relay-eh";
/// Discovery's capability header.
pub const RELAY_INFO_HEADER: &str = "x-mte-relay-info";
/// The error code of a relay error reply.
pub const ERROR_HEADER: &str = "x-mte-relay-error";
/// Discovery: `HEAD` this path.
pub const DISCOVERY_PATH: &str = "/api/mte-relay";
/// Pairing: `POST` this path.
pub const PAIRING_PATH: &str = "/api/mte-pair";
/// The relay's error table: `GET` this path.
pub const ERRORS_PATH: &str = "/api/mte-errors";
