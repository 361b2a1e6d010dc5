//! Wire types: the `x-mte-relay` header, the sealed header list, pairing bodies and the
//! request-target check. Parsing is strict and never panics on peer input.

pub mod headers;
pub mod pairing;
pub mod relay_header;
pub mod target;
