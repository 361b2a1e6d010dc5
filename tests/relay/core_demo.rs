//! `pqrelay demo`: the relay plus the built-in demo upstream, one command.

use crate::util::{client, discover, get, get_with_relay_header, Relay};

#[tokio::test]
async fn demo_runs_relay_and_upstream_and_prints_the_url() {
    // Demo mode supplies UPSTREAM, CLIENT_ID_SECRET and CORS_ORIGINS itself.
    let relay = Relay::start_with_args(
        "",
        &[
            ("UPSTREAM", ""),
            ("CLIENT_ID_SECRET", ""),
            ("CORS_ORIGINS", ""),
        ],
        &["demo"],
    );
    let log = relay.proc.wait_log("open http://");
    assert!(
        log.contains(&format!("open http://localhost:{}/", relay.port)),
        "{log}"
    );
    assert!(log.contains("instantiated successfully."), "{log}");

    assert_eq!(get(&relay, "/api/mte-echo/demo").await.status(), 200);
    let token = discover(&relay, None).await;
    // A bare client id is not an exchange: MTE routes need the sealed form.
    let resp = get_with_relay_header(&relay, "/headers", &token).await;
    assert_eq!(resp.status(), 561);
    let c = pqrelay_client::RelayClient::builder(relay.url(""))
        .pairs(1)
        .build()
        .unwrap();
    let resp = c.get("/headers").send().await.unwrap();
    assert_eq!(
        resp.status(),
        200,
        "the demo upstream answers behind the relay"
    );
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["path"], "/headers");
    // The demo page is on in demo mode.
    assert!(
        log.contains(&format!("http://localhost:{}/demo/", relay.port)),
        "{log}"
    );
    assert_eq!(get(&relay, "/demo/").await.status(), 200);

    // The relay's own origin is an allowed CORS origin by default.
    let origin = format!("http://localhost:{}", relay.port);
    let resp = client()
        .get(relay.url("/api/mte-echo/cors"))
        .header("origin", &origin)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        origin.as_str()
    );
}

#[tokio::test]
async fn demo_upstream_alone_serves_its_routes() {
    let up = crate::util::Upstream::start();
    let c = client();
    let v: serde_json::Value = c
        .get(format!("{}/echo?msg=hi+there", up.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["echo"], "hi there");
    let resp = c
        .post(format!("{}/login", up.url()))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: serde_json::Value = c
        .post(format!("{}/upload", up.url()))
        .body("abc")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["sha256"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}
