//! Shared helpers of the relay's integration tests. Processes (the relay binary, the demo
//! upstream, `redis-server`), free ports and test data come from `pqrelay_testkit`; here are
//! the HTTP helpers against a started relay and, in submodules, hand-made exchanges
//! ([`exchange`]), fault injection ([`faults`]), fuzzing pieces ([`fuzz`]), a strict upstream
//! ([`strict`]), the exchange suite ([`suite`]), the store suite ([`store_suite`]) and the
//! turns heavy and timed tests take ([`machine`]).

// A test binary has no public API: `pub` here marks what the test modules share.
#![allow(unreachable_pub)]

pub mod exchange;
pub mod faults;
pub mod fuzz;
pub mod machine;
pub mod store_suite;
pub mod strict;
pub mod suite;

use std::time::Duration;

pub use pqrelay_testkit::{free_port, relay_command, run, Proc, Relay, Upstream, ORIGIN, SECRET};

/// Another 32-character secret (rotation tests).
pub const OLD_SECRET: &str = "old-secret-0123456789abcdefghijk";

/// An HTTP client that never follows redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// Discovery: the `x-mte-relay` value (`1.<token>`) the relay hands out.
pub async fn discover(relay: &Relay, sent: Option<&str>) -> String {
    let resp = exchange::discovery(relay, sent).await;
    resp.headers()["x-mte-relay"]
        .to_str()
        .expect("ascii")
        .to_owned()
}

/// Parses a JSON error reply and checks its shape and `x-mte-relay-error` header.
pub async fn expect_error(resp: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    assert_eq!(
        resp.headers()
            .get("x-mte-relay-error")
            .and_then(|v| v.to_str().ok()),
        Some(code),
        "x-mte-relay-error"
    );
    let v: serde_json::Value = resp.json().await.expect("JSON error body");
    assert_eq!(v["status"], status);
    assert_eq!(v["error"], code);
    assert!(v["message"].is_string());
    v
}

/// `GET path` carrying `x-mte-relay: value`.
pub async fn get_with_relay_header(relay: &Relay, path: &str, value: &str) -> reqwest::Response {
    client()
        .get(relay.url(path))
        .header("x-mte-relay", value)
        .send()
        .await
        .expect("request")
}

/// Plain `GET path`.
pub async fn get(relay: &Relay, path: &str) -> reqwest::Response {
    client().get(relay.url(path)).send().await.expect("request")
}
