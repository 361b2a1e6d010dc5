//! docs/SECURITY.md §2, framing the relay normalises or drops (`src/http/framing.rs`):
//! interim (1xx) responses of the upstream never reach an MTE client in the clear (pass-through
//! forwards them as sent), and a request's equal `Content-Length` values (`5, 5`, or two
//! fields) reach the upstream as one field; differing ones never reach it. Raw TCP on both
//! sides: the exact bytes the client gets and the exact head the upstream got.

use std::time::Duration;

use crate::util::exchange::{fixed_upstream, seal_request, HandPair};
use crate::util::strict::{exchange_raw, statuses, Strict};
use crate::util::Relay;

const IDLE: Duration = Duration::from_millis(700);

/// An upstream that answers every request with `103 Early Hints` (a `Link` field) and then
/// `200` carrying the same `Link`.
const EARLY_HINTS: &[u8] = b"HTTP/1.1 103 Early Hints\r\nLink: </hint-secret.css>; rel=preload\r\n\r\n\
HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nlink: </final-secret.css>; rel=preload\r\ncontent-length: 2\r\n\r\nok";

#[tokio::test]
async fn early_hints_never_reach_an_mte_client_in_the_clear() {
    let up = fixed_upstream(EARLY_HINTS).await;
    let relay = Relay::start(&up, &[("PASS_THROUGH_ROUTES", "/pt/*")]);
    let mut pair = HandPair::new(&relay, None).await;
    for round in 0..2 {
        let s = seal_request(&mut pair, "GET", "/hinted", &[], None);
        let mut raw = format!("GET {} HTTP/1.1\r\nHost: relay.example\r\n", s.target);
        for (k, v) in &s.headers {
            raw.push_str(&format!("{k}: {v}\r\n"));
        }
        raw.push_str("Connection: close\r\n\r\n");
        let got = exchange_raw(relay.port, raw.as_bytes(), IDLE).await;
        assert_eq!(statuses(&got), [200], "round {round}: {got}");
        let lower = got.to_ascii_lowercase();
        assert!(!lower.contains("early hints"), "{got}");
        assert!(!lower.contains("\r\nlink:"), "a clear Link: {got}");
        assert!(!lower.contains("secret.css"), "{got}");
        assert!(lower.contains("\r\nx-mte-relay-eh:"), "sealed head: {got}");
    }

    // Pass-through forwards interim responses as the upstream sent them.
    let got = exchange_raw(
        relay.port,
        b"GET /pt/a HTTP/1.1\r\nHost: relay.example\r\nConnection: close\r\n\r\n",
        IDLE,
    )
    .await;
    assert_eq!(statuses(&got), [103, 200], "{got}");
    assert!(got.contains("</hint-secret.css>"), "{got}");
    assert!(!relay.proc.log_text().contains("panicked"));
}

#[tokio::test]
async fn equal_content_lengths_reach_the_upstream_as_one() {
    let up = Strict::start(Duration::ZERO).await;
    let relay = Relay::start(&up.url(), &[("PASS_THROUGH_ROUTES", "/pt/*")]);
    let h = "Host: relay.example\r\n";
    for (name, lengths) in [
        ("list", "Content-Length: 5, 5\r\n"),
        ("list_no_space", "Content-Length: 5,5\r\n"),
        ("two_fields", "Content-Length: 5\r\nContent-Length: 5\r\n"),
        ("two_lists", "Content-Length: 5, 5\r\nContent-Length: 5\r\n"),
    ] {
        let raw = format!("POST /pt/{name} HTTP/1.1\r\n{h}{lengths}Connection: close\r\n\r\nhello");
        let got = exchange_raw(relay.port, raw.as_bytes(), IDLE).await;
        assert_eq!(statuses(&got), [200], "{name}: {got}");
        tokio::time::sleep(Duration::from_millis(30)).await;
        let seen = up.well_formed(name);
        assert_eq!(seen.len(), 1, "{name}: {seen:#?}");
        assert_eq!(
            seen[0].header("content-length"),
            ["5"],
            "{name}: {}",
            seen[0].head
        );
        assert_eq!(seen[0].body, b"hello", "{name}");
        assert!(seen[0].complete, "{name}");
    }
}

#[tokio::test]
async fn differing_content_lengths_are_refused_and_never_forwarded() {
    let up = Strict::start(Duration::ZERO).await;
    let relay = Relay::start(&up.url(), &[("PASS_THROUGH_ROUTES", "/pt/*")]);
    let h = "Host: relay.example\r\n";
    for (name, lengths) in [
        ("list", "Content-Length: 5, 6\r\n"),
        ("two_fields", "Content-Length: 5\r\nContent-Length: 6\r\n"),
        (
            "list_and_field",
            "Content-Length: 5, 5\r\nContent-Length: 6\r\n",
        ),
        ("empty_token", "Content-Length: 5,\r\n"),
    ] {
        for path in ["/pt/a", "/api/x", "/api/mte-pair"] {
            let raw =
                format!("POST {path} HTTP/1.1\r\n{h}{lengths}Connection: close\r\n\r\nhello!");
            let got = exchange_raw(relay.port, raw.as_bytes(), IDLE).await;
            assert_eq!(statuses(&got), [400], "{name} {path}: {got}");
            tokio::time::sleep(Duration::from_millis(30)).await;
            assert!(up.take().is_empty(), "{name} {path}: reached the upstream");
        }
    }
    assert!(!relay.proc.log_text().contains("panicked"));
}
