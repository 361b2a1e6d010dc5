//! The exchange through the real relay binary with in-memory pair state: round trips through
//! the Rust client, what the wire shows, rejections, big and streamed bodies, restarts.

mod common;

use std::time::Duration;

use common::exchange::*;
use common::suite::{self, Env};
use common::{expect_error, Relay};

#[tokio::test]
async fn round_trips_methods_queries_headers() {
    suite::round_trips(&Env::start(&[])).await;
}

#[tokio::test]
async fn body_sizes_round_the_record_boundary() {
    suite::body_sizes(&Env::start(&[])).await;
}

#[tokio::test]
async fn cookies_stay_plain_and_reach_the_upstream() {
    suite::cookies(&Env::start(&[])).await;
}

#[tokio::test]
async fn the_wire_never_shows_plain_path_headers_or_body() {
    suite::wire_is_sealed(&Env::start(&[])).await;
}

#[tokio::test]
async fn sse_events_arrive_one_by_one() {
    suite::sse_streams(&Env::start(&[])).await;
}

#[tokio::test]
async fn upload_100_mib_in_bounded_memory() {
    let env = Env::start(&[]);
    let (hwm, secs) = suite::big_upload(&env).await;
    let per = suite::exchange_time(&env, 200).await;
    eprintln!(
        "memory: 100 MiB upload in {secs:.2} s, relay VmHWM {} KiB; {:?} per small exchange",
        hwm, per
    );
}

#[tokio::test]
async fn tampered_replayed_wrong_pair_and_wrong_client_requests_are_rejected() {
    let recorder = Recorder::start().await;
    let relay = Relay::start(&recorder.url(), &[]);
    suite::rejections(&relay).await;
    assert_eq!(
        *recorder.connections.lock().unwrap(),
        0,
        "a rejected request reached the upstream"
    );
    suite::body_tampering(&relay, &recorder).await;
}

#[tokio::test]
async fn a_replayed_request_is_rejected_and_not_forwarded() {
    let env = Env::start(&[]);
    let mut p = HandPair::new(&env.relay, None).await;
    let s = seal_request(&mut p, "GET", "/headers?replay=1", &[], None);
    let resp = send_sealed(&env.relay, &s).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-mte-relay-eh"));
    expect_error(send_sealed(&env.relay, &s).await, 564, "counter_rejected").await;
}

#[tokio::test]
async fn pairing_validates_its_input() {
    let env = Env::start(&[("MAX_POOL_SIZE", "3")]);
    let relay = &env.relay;
    let token = common::discover(relay, None).await;
    let post = |body: Vec<u8>, header: Option<String>| {
        let mut req = common::client().post(relay.url("/api/mte-pair")).body(body);
        if let Some(h) = header {
            req = req.header("x-mte-relay", h);
        }
        req.send()
    };
    expect_error(
        post(b"{}".to_vec(), None).await.unwrap(),
        560,
        "client_id_missing",
    )
    .await;
    expect_error(
        post(b"{}".to_vec(), Some("1.AAAA".into())).await.unwrap(),
        566,
        "invalid_client_id",
    )
    .await;
    let v = expect_error(
        post(b"{\"pairs\":[]}".to_vec(), Some(token.clone()))
            .await
            .unwrap(),
        400,
        "invalid_pairing",
    )
    .await;
    assert!(v["message"].as_str().unwrap().contains("1 to 3"), "{v}");
    let v = expect_error(
        post(b"not json".to_vec(), Some(token.clone()))
            .await
            .unwrap(),
        400,
        "invalid_pairing",
    )
    .await;
    assert!(v["message"].as_str().unwrap().contains("pairs"), "{v}");
    expect_error(
        post(vec![b' '; 70_000], Some(token.clone())).await.unwrap(),
        413,
        "too_large",
    )
    .await;
    // Expect: 100-continue is answered, then the pairing proceeds.
    let mut p = HandPair::new(relay, None).await;
    let _ = p.next();
}

#[tokio::test]
async fn readiness_and_demo_pages() {
    let env = Env::start(&[("DEMO", "true")]);
    let resp = common::get(&env.relay, "/api/mte-ready").await;
    assert_eq!(resp.status(), 200);
    let resp = common::get(&env.relay, "/demo/").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("demo.js"));
    let resp = common::get(&env.relay, "/demo/demo.js").await;
    assert_eq!(resp.status(), 200);
    let resp = common::get(&env.relay, "/public/mte-relay-browser.js").await;
    assert!(resp.text().await.unwrap().len() > 10_000, "the real client");
    let off = Env::start(&[]);
    let resp = common::get(&off.relay, "/demo/demo.js").await;
    assert_ne!(resp.status(), 200, "demo pages only with DEMO on");
}

#[tokio::test]
async fn a_restarted_memory_relay_makes_the_client_re_pair_on_its_own() {
    let upstream = common::Upstream::start();
    let port = common::free_port();
    let relay = Relay::start_on(port, &upstream.url(), &[], &[]);
    // One pair: the client re-pairs the pair that got 563 and retries once. (With several
    // pairs, a retry may pick another pair the restart also forgot: see the report.)
    let c = pqrelay_client::RelayClient::builder(relay.url(""))
        .pairs(1)
        .max_pairs(1)
        .build()
        .unwrap();
    for _ in 0..3 {
        assert_eq!(c.get("/echo?msg=a").send().await.unwrap().status(), 200);
    }
    let before = c.stats();
    drop(relay);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _relay = Relay::start_on(port, &upstream.url(), &[], &[]);
    for _ in 0..3 {
        let resp = c
            .get("/echo?msg=b")
            .send()
            .await
            .expect("no error for the caller");
        assert_eq!(resp.status(), 200);
    }
    let after = c.stats();
    assert!(
        after.pool.pairings > before.pool.pairings,
        "re-paired: {before:?} → {after:?}"
    );
}

#[tokio::test]
async fn empty_and_bodiless_upstream_responses() {
    let cases: [(&[u8], u16, &[u8]); 3] = [
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx-up: 1\r\n\r\n",
            200,
            b"",
        ),
        (b"HTTP/1.1 204 No Content\r\nx-up: 1\r\n\r\n", 204, b""),
        (
            b"HTTP/1.1 201 Created\r\ncontent-length: 5\r\nx-up: 1\r\n\r\nhello",
            201,
            b"hello",
        ),
    ];
    for (raw, status, body) in cases {
        let up = fixed_upstream(raw).await;
        let relay = Relay::start(&up, &[]);
        let c = relay_client(&relay.url(""));
        for _ in 0..2 {
            let resp = tokio::time::timeout(Duration::from_secs(5), c.get("/x").send())
                .await
                .expect("answered in time")
                .expect("send");
            assert_eq!(resp.status(), status);
            assert_eq!(resp.headers()["x-up"], "1", "sealed header restored");
            assert!(resp.wire_headers().get("x-up").is_none(), "not plain");
            let got = tokio::time::timeout(Duration::from_secs(5), resp.bytes())
                .await
                .expect("body in time")
                .unwrap();
            assert_eq!(&got[..], body);
        }
    }
}
