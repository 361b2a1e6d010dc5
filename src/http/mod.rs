//! Everything that touches a Pingora `Session`: the per-request context ([`ctx`]), writing
//! answers ([`reply`]), the edge guards ([`guard`], [`deadline`], [`framing`]), the client's
//! address ([`client_addr`]), CORS ([`cors`]), routing
//! ([`routes`], with [`relay_header`]), the relay's own routes ([`own`], [`pairing`]) and the
//! upstream side of a proxied request ([`upstream`]).

pub(crate) mod client_addr;
pub(crate) mod cors;
pub(crate) mod ctx;
pub(crate) mod deadline;
pub(crate) mod framing;
pub(crate) mod guard;
pub(crate) mod own;
pub(crate) mod pairing;
pub(crate) mod relay_header;
pub(crate) mod reply;
pub(crate) mod routes;
pub(crate) mod upstream;
