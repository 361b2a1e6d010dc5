//! Proxying: pass-through routes, MTE_ROUTES, HEADERS, Host rewriting and CORS, through the
//! real binary and the real demo upstream.

use sha2::{Digest, Sha256};

use crate::util::machine;
use crate::util::{
    client, discover, expect_error, get, get_with_relay_header, Relay, Upstream, ORIGIN,
};

const PASS: (&str, &str) = (
    "PASS_THROUGH_ROUTES",
    "/upload,/login,/redirect,/events,/headers",
);

#[tokio::test]
async fn pass_through_streams_bodies_both_ways() {
    let _turn = machine::timed();
    let upstream = Upstream::start();
    let relay = Relay::start(&upstream.url(), &[PASS]);
    // 3 MiB, not a multiple of any buffer size, sent chunked (no Content-Length).
    let body: Vec<u8> = (0..3 * 1024 * 1024 + 17)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let expected = Sha256::digest(&body);
    let expected: String = expected.iter().map(|b| format!("{b:02x}")).collect();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(100_000).map(|c| Ok(c.to_vec())).collect();
    let resp = client()
        .post(relay.url("/upload"))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["size"], body.len() as u64);
    assert_eq!(v["sha256"], expected);

    // With Content-Length too.
    let resp = client()
        .post(relay.url("/upload"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["sha256"], expected);

    // Server-Sent Events arrive as they are produced, not buffered to the end.
    let started = std::time::Instant::now();
    let mut resp = get(&relay, "/events").await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let first = resp.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("id: 0"));
    assert!(
        started.elapsed() < std::time::Duration::from_millis(700),
        "first event was held back"
    );
    let mut rest = Vec::new();
    while let Some(c) = resp.chunk().await.unwrap() {
        rest.extend_from_slice(&c);
    }
    assert!(String::from_utf8_lossy(&rest).contains("id: 4"));
}

#[tokio::test]
async fn pass_through_keeps_every_cookie_and_does_not_follow_redirects() {
    let upstream = Upstream::start();
    let relay = Relay::start(&upstream.url(), &[PASS]);
    let resp = client()
        .post(relay.url("/login"))
        .header("content-type", "application/json")
        .body(r#"{"username":"ann","password":"pw"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookies: Vec<&str> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    assert!(cookies[0].starts_with("demo_session=") && cookies[1].starts_with("demo_theme="));
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["message"], "Welcome, ann!");

    let resp = client()
        .post(relay.url("/login"))
        .body(r#"{"username":"ann","password":""}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "upstream statuses pass through");

    let resp = get(&relay, "/redirect").await;
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], "/echo?msg=redirected");
}

#[tokio::test]
async fn host_is_rewritten_and_headers_are_added_both_ways() {
    let upstream = Upstream::start();
    let relay = Relay::start(
        &upstream.url(),
        &[
            PASS,
            ("HEADERS", r#"{"x-service-name":"mte-relay","x-extra":"1"}"#),
            ("PUBLIC_HOSTS", "127.0.0.1"),
        ],
    );
    let resp = client()
        .get(relay.url("/headers?q=1"))
        .header("x-client", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["x-service-name"],
        "mte-relay",
        "added to the response"
    );
    assert_eq!(resp.headers()["x-extra"], "1");
    let seen: serde_json::Value = resp.json().await.unwrap();
    let h = &seen["headers"];
    assert_eq!(
        h["host"],
        format!("127.0.0.1:{}", upstream.port),
        "Host names the upstream"
    );
    assert_eq!(h["x-forwarded-host"], format!("127.0.0.1:{}", relay.port));
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(
        h["x-service-name"], "mte-relay",
        "added to the upstream request"
    );
    assert_eq!(h["x-client"], "kept");
    assert_eq!(seen["query"], "q=1");

    // The relay's own replies and error replies carry HEADERS too.
    let resp = get(&relay, "/api/mte-echo/x").await;
    assert_eq!(resp.headers()["x-service-name"], "mte-relay");
    let resp = get(&relay, "/not-passed-through").await;
    assert_eq!(resp.headers()["x-service-name"], "mte-relay");
    expect_error(resp, 561, "relay_header_invalid").await;
}

#[tokio::test]
async fn mte_routes_limit_what_exists() {
    let upstream = Upstream::start();
    let relay = Relay::start(
        &upstream.url(),
        &[
            ("PASS_THROUGH_ROUTES", "/echo"),
            ("MTE_ROUTES", "/headers,/api/v1/*"),
        ],
    );
    let token = discover(&relay, None).await;

    // Listed pass-through route: proxied.
    assert_eq!(get(&relay, "/echo?msg=hi").await.status(), 200);
    // Listed MTE route: needs x-mte-relay (561) and works with it.
    expect_error(get(&relay, "/headers").await, 561, "relay_header_invalid").await;
    assert_eq!(
        crate::util::exchange::sealed_get_with_token(&relay, &token, "/headers")
            .await
            .status(),
        200
    );
    // A sealed exchange is checked on its decoded path: unlisted is 404 before any state
    // is touched.
    expect_error(
        crate::util::exchange::sealed_get_with_token(&relay, &token, "/login").await,
        404,
        "not_found",
    )
    .await;
    // Wildcard MTE route: matched, so 561 rather than 404.
    expect_error(
        get(&relay, "/api/v1/users/7").await,
        561,
        "relay_header_invalid",
    )
    .await;
    // Unlisted routes 404, with or without x-mte-relay.
    expect_error(get(&relay, "/login").await, 404, "not_found").await;
    expect_error(get(&relay, "/api/v2/x").await, 404, "not_found").await;
    expect_error(
        get_with_relay_header(&relay, "/login", &token).await,
        404,
        "not_found",
    )
    .await;
    // The relay's own routes always exist.
    assert_eq!(get(&relay, "/api/mte-echo/ok").await.status(), 200);
}

#[tokio::test]
async fn without_mte_routes_every_other_route_is_an_mte_route() {
    let upstream = Upstream::start();
    let relay = Relay::start(&upstream.url(), &[("PASS_THROUGH_ROUTES", "/echo")]);
    expect_error(
        get(&relay, "/anything/at/all").await,
        561,
        "relay_header_invalid",
    )
    .await;
    let token = discover(&relay, None).await;
    let resp = crate::util::exchange::sealed_get_with_token(&relay, &token, "/headers").await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn cors_preflight_from_allowed_and_disallowed_origins() {
    let upstream = Upstream::start();
    let relay = Relay::start(
        &upstream.url(),
        &[
            PASS,
            ("CORS_METHODS", "GET,POST"),
            (
                "CORS_ORIGINS",
                "https://app.example.com,http://localhost:3000",
            ),
        ],
    );
    let preflight = |origin: &'static str, method: &'static str| {
        client()
            .request(reqwest::Method::OPTIONS, relay.url("/login"))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header(
                "access-control-request-headers",
                "Content-Type, X-MTE-Relay, x-mte-relay-eh",
            )
            .send()
    };

    let resp = preflight(ORIGIN, "POST").await.unwrap();
    assert_eq!(resp.status(), 204);
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], ORIGIN);
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(
        h["access-control-allow-methods"],
        "GET, POST, OPTIONS, HEAD"
    );
    assert_eq!(
        h["access-control-allow-headers"],
        "content-type, x-mte-relay, x-mte-relay-eh"
    );
    assert!(h
        .get_all("vary")
        .iter()
        .any(|v| v.to_str().unwrap().contains("Origin")));
    assert!(h.contains_key("access-control-max-age"));

    // The second listed origin is reflected too, and only itself.
    let resp = preflight("http://localhost:3000", "GET").await.unwrap();
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );

    // A method outside CORS_METHODS, and an unlisted origin: no CORS headers.
    for (origin, method) in [
        (ORIGIN, "DELETE"),
        ("https://evil.example", "POST"),
        ("null", "GET"),
    ] {
        let resp = preflight(origin, method).await.unwrap();
        assert!(
            !resp.headers().contains_key("access-control-allow-origin"),
            "{origin} {method}"
        );
        expect_error(resp, 403, "cors_forbidden").await;
    }
}

#[tokio::test]
async fn cors_on_actual_requests() {
    let upstream = Upstream::start();
    let relay = Relay::start(&upstream.url(), &[PASS]);
    let request = |origin: Option<&'static str>, path: &'static str| {
        let mut r = client().get(relay.url(path));
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send()
    };
    let vary_origin = |resp: &reqwest::Response| {
        resp.headers()
            .get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap().contains("Origin"))
    };

    for path in ["/headers", "/api/mte-echo/c", "/nowhere"] {
        let resp = request(Some(ORIGIN), path).await.unwrap();
        let h = resp.headers();
        assert_eq!(h["access-control-allow-origin"], ORIGIN, "{path}");
        assert_eq!(h["access-control-allow-credentials"], "true");
        let exposed = h["access-control-expose-headers"].to_str().unwrap();
        assert!(
            exposed.contains("x-mte-relay") && exposed.contains("x-mte-relay-eh"),
            "{exposed}"
        );
        assert!(vary_origin(&resp), "{path}");

        let resp = request(Some("https://evil.example"), path).await.unwrap();
        assert!(
            !resp.headers().contains_key("access-control-allow-origin"),
            "{path}"
        );
        assert!(!resp
            .headers()
            .contains_key("access-control-allow-credentials"));
        assert!(vary_origin(&resp), "{path}");

        let resp = request(None, path).await.unwrap();
        assert!(!resp.headers().contains_key("access-control-allow-origin"));
        assert!(vary_origin(&resp));
    }

    // Discovery's headers are readable by the allowed origin's scripts.
    let resp = client()
        .head(relay.url("/api/mte-relay"))
        .header("origin", ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["access-control-allow-origin"], ORIGIN);
    assert!(resp.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .contains("x-mte-relay"));
}
