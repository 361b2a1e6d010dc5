//! Wire types: the `x-mte-relay` header and `x-mte-relay-info`, the relay key list, the sealed
//! header list, pairing bodies, the verdict header and the URL check. Parsing is strict and
//! never panics on peer input.

pub mod headers;
pub mod pairing;
pub mod relay_header;
pub mod relay_keys;
pub mod target;
pub mod verdict;
