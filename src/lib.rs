//! pqrelay: an open, post-quantum end-to-end encrypting HTTP relay on Pingora.
//!
//! Brief overview, in layers from the bottom up (a module imports only from layers below it):
//!
//! 1. [`config`]: the settings as plain data — one field table ([`config::fields`]) drives the
//!    environment, YAML, `domainMap` entries and the docs; [`error`]: the error table and the
//!    one refusal type; leaf recorders anyone may call: `metrics`, `logging`, `lifecycle`.
//! 2. [`store`]: pair state behind one trait (memory, Redis), plus outbound client state.
//! 3. `site` / `state`: the sites of a relay (one per `DOMAIN_MAP` host) and the shared state,
//!    with `pairing_pool` (the bounded pool pairing's key exchange runs in).
//! 4. `http`: everything that touches a Pingora `Session` — context, replies, edge guards,
//!    CORS, routing, the relay's own routes and pairing.
//! 5. `exchange` (open an MTE request, seal its response) and `outbound` (this relay as a
//!    client of a remote relay).
//! 6. `proxy` (the thin `ProxyHttp`), [`serve`] (the Pingora server around it) and [`keys`]
//!    (keygen, and the relay keys as operators see them).
//!
//! The binary (`src/main.rs`) parses the command line and maps errors to exit codes.

#![forbid(unsafe_code)]

pub mod config;
pub mod demo;
pub mod error;
mod exchange;
mod http;
pub mod keys;
mod lifecycle;
mod logging;
mod metrics;
mod outbound;
mod pairing_pool;
mod proxy;
mod server;
mod site;
mod state;
pub mod store;
mod upstream;

pub use server::{check_fleet_keys, serve, ServerFlags};
