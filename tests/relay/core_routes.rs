//! The relay's own routes, client ids (tampering, rotation) and logs, through the real binary.

use crate::util::{
    client, discover, expect_error, get, get_with_relay_header, Relay, Upstream, OLD_SECRET, SECRET,
};
use pqrelay_protocol::client_id::{self, ClientIdToken};
use pqrelay_protocol::ClientId;

fn token_of(relay_header: &str) -> &str {
    relay_header
        .strip_prefix("2.")
        .expect("x-mte-relay starts with the version")
}

#[tokio::test]
async fn echo_answers_with_the_message_and_utc_time() {
    let relay = Relay::start("http://127.0.0.1:9", &[]);
    let resp = get(&relay, "/api/mte-echo/test").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["echo"], "test");
    let time = v["time"].as_str().unwrap();
    let parsed = chrono::DateTime::parse_from_rfc3339(time).expect("RFC 3339");
    assert_eq!(parsed.offset().local_minus_utc(), 0);
    assert!(time.ends_with('Z'), "{time}");
    let age = chrono::Utc::now().signed_duration_since(parsed);
    assert!(age.num_seconds().abs() < 60);

    let v: serde_json::Value = get(&relay, "/api/mte-echo/hello%20world")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["echo"], "hello world");

    // The vendor's route is `/api/mte-echo/:msg?`: without a message it answers `echo: true`.
    for path in ["/api/mte-echo", "/api/mte-echo/"] {
        let resp = get(&relay, path).await;
        assert_eq!(resp.status(), 200, "{path}");
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(v["echo"], true, "{path}");
        assert!(v["time"].as_str().unwrap().ends_with('Z'), "{path}");
    }
}

#[tokio::test]
async fn discovery_issues_a_signed_client_id_and_capabilities() {
    let relay = Relay::start("http://127.0.0.1:9", &[("MAX_POOL_SIZE", "7")]);
    let resp = client()
        .head(relay.url("/api/mte-relay"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let relay_header = resp.headers()["x-mte-relay"].to_str().unwrap().to_owned();
    let token = token_of(&relay_header);
    assert_eq!(token.len(), 64);
    assert!(token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(
        resp.headers()["x-mte-relay-info"],
        "versions=2;max-pairs=7;chunk-size=65536;max-skip=16"
    );
    assert_eq!(resp.headers()["cache-control"], "no-store");

    // The token is exactly id || HMAC-SHA256(secret, "pqrelay/1 client-id" || id).
    let token = ClientIdToken::parse(token).expect("a token");
    let verified = client_id::verify(&[SECRET.as_bytes()], &token)
        .expect("token verifies with the configured secret");
    assert!(!verified.resigned);

    // Sending a valid token back keeps the same id; a fresh discovery gets a new one.
    assert_eq!(discover(&relay, Some(&relay_header)).await, relay_header);
    assert_ne!(discover(&relay, None).await, relay_header);

    // A malformed or tampered token on discovery is not an error: a new id is issued.
    for bad in ["2.garbage", "nonsense", "9.x", ""] {
        let fresh = discover(&relay, Some(bad)).await;
        assert_ne!(fresh, relay_header);
        let fresh = ClientIdToken::parse(token_of(&fresh)).expect("a token");
        assert!(client_id::verify(&[SECRET.as_bytes()], &fresh).is_ok());
    }
}

#[tokio::test]
async fn a_tampered_client_id_gets_566_and_a_good_one_passes() {
    let upstream = Upstream::start();
    let relay = Relay::start(&upstream.url(), &[]);
    let good = discover(&relay, None).await;

    let resp = crate::util::exchange::sealed_get_with_token(&relay, &good, "/headers").await;
    assert_eq!(
        resp.status(),
        200,
        "a verified MTE request reaches the upstream"
    );

    // Flip one character of the MAC, then of the id.
    for pos in [good.len() - 1, 5] {
        let mut bytes = good.clone().into_bytes();
        bytes[pos] = if bytes[pos] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        let resp = get_with_relay_header(&relay, "/headers", &tampered).await;
        expect_error(resp, 566, "invalid_client_id").await;
    }
    // A token signed with some other secret.
    let foreign = client_id::issue(b"another-secret-another-secret-xx", ClientId([3; 16]));
    let resp = client()
        .post(relay.url("/login"))
        .header(
            "x-mte-relay",
            format!("2.{foreign}.AAAAAAAAAAAAAAAAAAAAAA.0.2"),
        )
        .body("{}")
        .send()
        .await
        .unwrap();
    expect_error(resp, 566, "invalid_client_id").await;

    // Other malformed headers.
    let resp = get_with_relay_header(&relay, "/headers", "9.abc").await;
    expect_error(resp, 568, "version_unsupported").await;
    let resp = get_with_relay_header(&relay, "/headers", "2").await;
    expect_error(resp, 560, "client_id_missing").await;
}

#[tokio::test]
async fn rotation_accepts_previous_secrets_and_resigns() {
    let upstream = Upstream::start();
    let old_relay = Relay::start(&upstream.url(), &[("CLIENT_ID_SECRET", OLD_SECRET)]);
    let old = discover(&old_relay, None).await;
    drop(old_relay);

    let rotated = Relay::start(
        &upstream.url(),
        &[("CLIENT_ID_PREVIOUS_SECRETS", OLD_SECRET)],
    );
    let resp = crate::util::exchange::sealed_get_with_token(&rotated, &old, "/headers").await;
    assert_eq!(
        resp.status(),
        200,
        "an id signed with the previous secret still works"
    );
    let echoed = resp.headers()["x-mte-relay"].to_str().unwrap().to_owned();
    assert!(
        !echoed.contains(token_of(&old)),
        "the response carries the re-signed token"
    );

    let renewed = discover(&rotated, Some(&old)).await;
    assert_ne!(renewed, old, "re-signed with the current secret");
    let parse = |t: &str| ClientIdToken::parse(t).expect("a token");
    let old_id = client_id::verify(&[OLD_SECRET.as_bytes()], &parse(token_of(&old)))
        .unwrap()
        .id;
    let new = client_id::verify(&[SECRET.as_bytes()], &parse(token_of(&renewed)))
        .expect("current secret");
    assert_eq!(new.id, old_id, "same client id, so nobody is logged out");

    let without = Relay::start(&upstream.url(), &[]);
    let resp = get_with_relay_header(&without, "/headers", &old).await;
    expect_error(resp, 566, "invalid_client_id").await;
}

#[tokio::test]
async fn the_error_table_is_served() {
    let relay = Relay::start("http://127.0.0.1:9", &[]);
    let v: Vec<serde_json::Value> = get(&relay, "/api/mte-errors").await.json().await.unwrap();
    let statuses: Vec<u64> = v.iter().map(|e| e["status"].as_u64().unwrap()).collect();
    for s in 559..=569 {
        assert!(statuses.contains(&s), "{s} missing");
    }
    let e566 = v.iter().find(|e| e["status"] == 566).unwrap();
    assert_eq!(e566["code"], "invalid_client_id");
    assert!(e566["meaning"].is_string() && e566["client_action"].is_string());
}

#[tokio::test]
async fn the_browser_client_is_served_with_type_and_caching() {
    let relay = Relay::start("http://127.0.0.1:9", &[]);
    let resp = get(&relay, "/public/mte-relay-browser.js").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(resp.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age="));
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    assert!(resp.text().await.unwrap().contains("export"));

    let resp = client()
        .get(relay.url("/public/mte-relay-browser.js"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);
    assert!(resp.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn pairing_needs_a_client_id_and_methods_are_checked() {
    let relay = Relay::start("http://127.0.0.1:9", &[]);
    let resp = client()
        .post(relay.url("/api/mte-pair"))
        .body("x")
        .send()
        .await
        .unwrap();
    expect_error(resp, 560, "client_id_missing").await;
    let resp = get(&relay, "/api/mte-pair").await;
    assert_eq!(resp.headers()["allow"], "POST");
    expect_error(resp, 405, "method_not_allowed").await;
    let resp = client()
        .post(relay.url("/api/mte-echo/x"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn startup_and_access_lines_are_logged_without_secrets() {
    let relay = Relay::start("http://127.0.0.1:9", &[]);
    let resp = get(&relay, "/api/mte-echo/logme?token=sensitive").await;
    assert_eq!(resp.status(), 200);
    let log = relay.proc.wait_log("/api/mte-echo/logme");
    assert!(log.contains("instantiated successfully."), "{log}");
    assert!(
        log.contains(&format!(
            "Server listening at http://[127.0.0.1]:{}",
            relay.port
        )),
        "{log}"
    );
    let access: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("pqrelay::access"))
        .collect();
    assert_eq!(access.len(), 1, "{log}");
    assert!(
        access[0].contains("\"GET /api/mte-echo/logme\" 200"),
        "{log}"
    );
    assert!(
        !log.contains("sensitive"),
        "query strings are not logged: {log}"
    );
    assert!(!log.contains(SECRET), "{log}");
}

#[tokio::test]
async fn json_logs_for_cloudwatch() {
    let relay = Relay::start(
        "http://127.0.0.1:9",
        &[("LOG_FORMAT", "json"), ("DEBUG", "true")],
    );
    get(&relay, "/api/mte-echo/j").await;
    let log = relay.proc.wait_log("/api/mte-echo/j");
    let ours: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    assert!(ours
        .iter()
        .any(|v| v["msg"] == "pqrelay instantiated successfully."));
    assert!(ours
        .iter()
        .any(|v| v["target"] == "pqrelay::access" && v["level"] == "INFO"));
    assert!(!log.contains(SECRET));
}
