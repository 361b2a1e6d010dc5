//! # pqrelay-client
//!
//! A Rust client for pqrelay (`docs/PROTOCOL.md`): it discovers a relay, pairs a pool of
//! X-Wing pairs, and sends HTTP requests whose URL, headers and body are sealed end to end;
//! responses are opened record by record as they arrive.
//!
//! ## Brief overview
//!
//! - [`RelayClient`] (built with [`RelayClient::builder`]): discovery (`HEAD /api/mte-relay`),
//!   the pair pool (`POST /api/mte-pair`, default [`DEFAULT_PAIRS`] pairs growing up to
//!   [`DEFAULT_MAX_PAIRS`]), recovery from relay errors 559–569 (re-pair, re-discover, retry
//!   once when the body is replayable, on the pair that was just re-paired), token rotation,
//!   and one more try on a new connection, sealed again, for a replayable request written on a
//!   reused keep-alive connection that closed before any answer byte
//!   ([`ClientStats::connection_retries`]); a discovery or pairing refused with 429
//!   (`rate_limited`) or 503 (`pairing_busy`) is sent again after its `Retry-After` (at most
//!   10 s, plus up to 250 ms of jitter), [`PAIRING_ATTEMPTS`] attempts in all
//!   ([`ClientStats::busy_retries`], [`WireEvent::RetryAfter`]). `Clone + Send + Sync`, cheap
//!   to share.
//! - [`RequestBuilder`] → [`RelayResponse`] (status, decoded headers, [`ResponseBody`] stream,
//!   `bytes()` / `text()` / `json()`). Request bodies: [`Body`] — bytes (sized, replayable),
//!   a stream of known length (sized, constant memory) or of unknown length (chunked).
//! - [`http_client`]: the hyper client (keep-alive pool, rustls with webpki roots and an
//!   optional extra CA) used for relay traffic, reusable for plain traffic.
//! - [`engine::Engine`]: the send / recover loop above, written once and generic over a
//!   [`source::PairSource`] (where the session and pairs live): [`RelayClient`] runs it on its
//!   own in-process pool; the relay's outbound mode on leases from its shared store.
//! - [`exchange`]: one exchange without I/O (seal a head and body, open a response head),
//!   [`pool::PoolState`]: the pool's rules without I/O, and [`recovery`]: what a relay error
//!   leads to (§11); all public for tests.
//! - [`WireEvent`]: what crossed the wire, for `pqrelay-curl -v` and for tests.
//! - [`Error`]: one enum for transport, protocol and relay errors.
//!
//! ## Example
//!
//! ```no_run
//! use pqrelay_client::{Method, RelayClient};
//!
//! # async fn run() -> Result<(), pqrelay_client::Error> {
//! let client = RelayClient::builder("http://127.0.0.1:8080")
//!     .pairs(5)
//!     .max_pairs(25)
//!     .encode_url(true)
//!     .build()?;
//! let resp = client
//!     .request(Method::POST, "/api/x?y=1")
//!     .header("content-type", "application/json")
//!     .body(r#"{"hello":"world"}"#)
//!     .send()
//!     .await?;
//! println!("{} {:?}", resp.status(), resp.headers().get("content-type"));
//! let body = resp.bytes().await?;
//! # let _ = body;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod body;
mod client;
pub mod delivery;
pub mod engine;
pub mod error;
pub mod exchange;
mod local;
pub mod observer;
pub mod pool;
pub mod recovery;
mod replay;
mod response;
mod reuse;
pub mod source;
mod transport;
pub mod trust_store;

#[cfg(feature = "cli")]
pub mod curl;

pub use crate::body::Body;
pub use crate::client::{
    split_url, ClientBuilder, ClientStats, RelayClient, RequestBuilder, DEFAULT_MAX_PAIRS,
    DEFAULT_PAIRS,
};
pub use crate::engine::{random_pair_ids, seeded_pairing, PAIRING_ATTEMPTS};
pub use crate::error::{BoxError, Error};
pub use crate::exchange::HeaderSelection;
pub use crate::observer::{WireEvent, WireObserver};
pub use crate::response::{RelayResponse, ResponseBody};
pub use crate::transport::{
    empty_body, full_body, http_client, HttpClient, HttpOptions, RequestBody,
};
pub use crate::trust_store::{KnownRelay, TrustStore};
pub use ::http::{HeaderMap, Method, StatusCode};
pub use bytes::Bytes;
pub use pqrelay_protocol;
