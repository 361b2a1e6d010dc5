//! Wire names (§5, §9, §11): the protocol version, the relay's header names and its own routes.
//! The relay and every client take them from here.

/// The protocol version this crate implements (the first field of `x-mte-relay`, `versions`
/// of `x-mte-relay-info`).
pub const VERSION: u64 = 2;

/// `x-mte-relay`: version, client id token, and on exchanges pair id, counter and flags (§9.1).
pub const RELAY_HEADER: &str = "x-mte-relay";
/// `x-mte-relay-eh`: the sealed header block of an exchange message (§9.2, §9.3).
pub const EH_HEADER: &str = "x-mte-relay-eh";
/// `x-mte-relay-info`: discovery parameters (§5).
pub const INFO_HEADER: &str = "x-mte-relay-info";
/// `x-mte-relay-keys`: the relay's key configurations, current first (§5).
pub const KEYS_HEADER: &str = "x-mte-relay-keys";
/// `x-mte-relay-error`: the code of an error the relay answered itself (§11.1).
pub const ERROR_HEADER: &str = "x-mte-relay-error";
/// `x-mte-relay-verdict`: what became of the request, on an authenticated error (§11.2).
pub const VERDICT_HEADER: &str = "x-mte-relay-verdict";
/// `x-mte-relay-tag`: the MAC of an authenticated error (§11.2).
pub const TAG_HEADER: &str = "x-mte-relay-tag";

/// Every response header a browser client must be able to read (the relay lists them in
/// `access-control-expose-headers`, §5, §11).
pub const EXPOSED_HEADERS: [&str; 7] = [
    RELAY_HEADER,
    EH_HEADER,
    INFO_HEADER,
    KEYS_HEADER,
    ERROR_HEADER,
    VERDICT_HEADER,
    TAG_HEADER,
];

/// Discovery: `HEAD /api/mte-relay` (§5).
pub const DISCOVERY_PATH: &str = "/api/mte-relay";
/// Pairing: `POST /api/mte-pair` (§6).
pub const PAIRING_PATH: &str = "/api/mte-pair";
/// The error table: `GET /api/mte-errors` (§11.1).
pub const ERRORS_PATH: &str = "/api/mte-errors";

/// Content type of pairing bodies and error replies.
pub const JSON_CONTENT_TYPE: &str = "application/json";
/// Content type of a sealed (STREAM) body on the wire (§9.2, §9.3).
pub const SEALED_BODY_CONTENT_TYPE: &str = "application/octet-stream";
