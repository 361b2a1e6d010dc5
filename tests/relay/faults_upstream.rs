//! The upstream down, dying mid-response, back again, and slow, for MTE routes (the
//! pass-through answers are in `security_limits::upstream_down_is_502_and_slow_is_504_with_reasons`).
//!
//! - Nothing listening at `UPSTREAM`: a sealed request gets the relay's own
//!   `502 upstream_unavailable` with a reason (a plain JSON error the client reports as such)
//!   and `connection: close` (the relay does not reuse the connection after an error reply).
//! - The upstream process (the demo upstream) starts on that port: the same relay process and
//!   client serve again at once.
//! - The upstream is SIGKILLed while it streams Server-Sent Events: the client's body ends in an
//!   error, never in a clean (and so silently truncated) end; the relay serves again once the
//!   upstream is back.
//! - An upstream slower than `UPSTREAM_READ_TIMEOUT_MS`: `504 upstream_timeout` with a reason.

use std::time::Duration;

use pqrelay_client::{Error, RelayClient};
use pqrelay_testkit::Signal;

use crate::util::exchange::{seal_request, send_sealed, HandPair};
use crate::util::faults::assert_no_panic;
use crate::util::strict::Strict;
use crate::util::{Relay, Upstream};

/// Generous limit for reading a cut stream to its end on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(20);

fn client(relay: &Relay) -> RelayClient {
    RelayClient::builder(relay.url(""))
        .pairs(1)
        .build()
        .expect("client")
}

/// Expects the relay's own error `status code` with a non-empty reason.
fn expect_relay_error(r: Result<pqrelay_client::RelayResponse, Error>, status: u16, code: &str) {
    match r {
        Err(Error::Relay {
            status: s,
            code: c,
            message,
            ..
        }) => {
            assert_eq!((s, c.as_str()), (status, code));
            assert!(!message.is_empty(), "{status} {code} without a reason");
        }
        Err(e) => panic!("expected {status} {code}, got {e}"),
        Ok(resp) => panic!("expected {status} {code}, got {}", resp.status()),
    }
}

async fn echo_ok(c: &RelayClient, msg: &str) {
    let resp = c
        .get(format!("/echo?msg={msg}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{msg}: {e}"));
    assert_eq!(resp.status(), 200, "{msg}");
    let v: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(v["echo"], msg);
}

#[tokio::test]
async fn upstream_down_then_killed_mid_stream_then_back() {
    let port = crate::util::free_port();
    let mut relay = Relay::start(&format!("http://127.0.0.1:{port}"), &[]);
    let pid = relay.proc.pid();
    let c = client(&relay);

    // Down: connection refused. The relay closes the connection after an error reply and says
    // so (`connection: close`), so no client sends its next request into a closing socket.
    expect_relay_error(
        c.get("/echo?msg=down").send().await,
        502,
        "upstream_unavailable",
    );
    let mut pair = HandPair::new(&relay, None).await;
    let sealed = seal_request(&mut pair, "GET", "/echo?msg=raw", &[], None);
    let resp = send_sealed(&relay, &sealed).await;
    assert_eq!(resp.status(), 502);
    assert_eq!(
        resp.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );

    // Up: the same relay and client serve at once.
    let mut upstream = Upstream::start_on(port);
    echo_ok(&c, "up").await;

    // Killed while streaming: the first event arrives, then the body must fail.
    let mut resp = c.get("/events").send().await.expect("events head");
    assert_eq!(resp.status(), 200);
    let first = resp.chunk().await.expect("first event").expect("one event");
    assert!(String::from_utf8_lossy(&first).contains("id: 0"));
    upstream
        .proc
        .signal(Signal::SIGKILL)
        .expect("SIGKILL the upstream");
    let end = tokio::time::timeout(DEADLINE, async {
        loop {
            match resp.chunk().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the cut stream never ended");
    assert!(
        end.is_err(),
        "a stream cut upstream ended cleanly (truncation not detected)"
    );
    // The socket closes while the killed process is torn down: give the kernel a moment to
    // make it a zombie the test can reap.
    let gone = std::time::Instant::now() + Duration::from_secs(5);
    while !upstream.proc.exited() && std::time::Instant::now() < gone {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        upstream.proc.exited(),
        "the killed upstream is still running"
    );

    // Down again, then back: still the same relay process.
    expect_relay_error(
        c.get("/echo?msg=gone").send().await,
        502,
        "upstream_unavailable",
    );
    let _upstream = Upstream::start_on(port);
    echo_ok(&c, "back").await;
    assert!(!relay.proc.exited());
    assert_eq!(relay.proc.pid(), pid);
    assert_no_panic(&relay.proc.log_text());
}

#[tokio::test]
async fn a_slow_upstream_is_504_upstream_timeout_for_mte_routes() {
    let slow = Strict::start(Duration::from_secs(4)).await;
    let relay = Relay::start(&slow.url(), &[("UPSTREAM_READ_TIMEOUT_MS", "1000")]);
    let c = client(&relay);
    expect_relay_error(c.get("/slow").send().await, 504, "upstream_timeout");
    assert_no_panic(&relay.proc.log_text());
}
