//! pqrelay: an open, post-quantum end-to-end encrypting HTTP relay on Pingora.
//!
//! Brief overview: [`config`] loads the vendor-compatible configuration, [`proxy::Relay`] is
//! the Pingora `ProxyHttp` (thin: each filter delegates), [`routes`] decides what a request is
//! and answers the relay's own routes, [`client_id`] issues and verifies signed client ids,
//! [`cors`] answers browsers, [`upstream`] balances upstreams, [`error`] holds the one table of
//! error statuses, [`demo`] is the built-in demo upstream, [`pairing`] answers
//! `POST /api/mte-pair`, [`exchange`] opens MTE requests and seals their responses, [`store`]
//! keeps pair state, [`outbound`] relays plain requests to another relay sealed (outbound mode),
//! [`domains`] serves several sites by `Host` (`DOMAIN_MAP`).

#![forbid(unsafe_code)]

pub mod client_id;
pub mod config;
pub mod cors;
pub mod ctx;
pub mod demo;
pub mod domains;
pub mod error;
pub mod exchange;
pub mod head_deadline;
pub mod lifecycle;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod outbound;
pub mod pairing;
pub mod proxy;
pub mod routes;
pub mod state;
pub mod store;
pub mod upstream;
