//! The client against the real relay binary and the real demo upstream (no mock): the sealed
//! round trip as the wire shows it, recovery after a relay restart lost every pair, streamed
//! bodies, concurrency within the pool bound, token rotation, and a server that is no relay.

use bytes::Bytes;
use pqrelay_client::{Body, Error, Method, RelayClient, StatusCode, WireEvent};
use pqrelay_testkit::{sha256_hex, Relay, Tap, Upstream, SECRET};

use crate::util::{recorder, NEW_SECRET};

/// `GET path`, expecting 200, body read to the end.
async fn get_ok(client: &RelayClient, path: &str) -> Bytes {
    let resp = client
        .get(path)
        .send()
        .await
        .expect("no error for the caller");
    assert_eq!(resp.status(), StatusCode::OK);
    resp.bytes().await.unwrap()
}

/// Sends `n` concurrent replayable requests (GETs and byte uploads) and checks every answer.
async fn concurrent_requests(client: &RelayClient, n: usize) {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    let resp = client.get(format!("/echo?msg=m{i}")).send().await?;
                    assert_eq!(resp.status(), StatusCode::OK);
                    let v: serde_json::Value = resp.json().await?;
                    assert_eq!(v["echo"], format!("m{i}"));
                } else {
                    let body = vec![i as u8; 1000 + i];
                    let resp = client.post("/upload").body(body.clone()).send().await?;
                    let v: serde_json::Value = resp.json().await?;
                    assert_eq!(v["sha256"], sha256_hex(&body));
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().expect("the caller sees no error");
    }
}

#[tokio::test]
async fn relay_round_trip_shows_no_plain_path_header_or_body_on_the_wire() {
    let upstream = Upstream::start();
    let relay = Relay::start(&upstream.url(), &[]);
    let tap = Tap::start(relay.port).await;
    let (log, observer) = recorder();
    let client = RelayClient::builder(tap.url())
        .observer(observer)
        .build()
        .unwrap();
    let resp = client
        .request(Method::POST, "/login?from=secret-query")
        .header("content-type", "application/json")
        .header("authorization", "Bearer secret-bearer")
        .body(r#"{"username":"secret-user","password":"secret-pass"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["message"], "Welcome, secret-user!");

    let stats = client.stats();
    assert_eq!(
        (
            stats.discoveries,
            stats.pool.pairings,
            stats.pool.pairs_created
        ),
        (1, 1, 5)
    );
    assert_eq!(
        (stats.pool.in_use, stats.pool.idle),
        (0, 5),
        "the pair came back"
    );

    // On the wire: no path, query, sealed header or body, either way; cookies stay plain.
    // (`application/json` does cross: the pairing request is plain JSON.)
    for secret in [
        &b"login"[..],
        b"secret-query",
        b"Bearer",
        b"secret-bearer",
        b"secret-user",
        b"secret-pass",
        b"Welcome",
    ] {
        assert!(
            !tap.saw(secret),
            "{:?} crossed the wire in the clear",
            String::from_utf8_lossy(secret)
        );
    }
    assert!(tap.saw(b"x-mte-relay-eh"), "the tap saw the exchange");
    assert!(
        tap.saw(b"demo_session=logged-in"),
        "set-cookie stays plain (§8.3)"
    );

    let log = log.lock().unwrap();
    let (target, relay_header, sealed) = log
        .iter()
        .find_map(|e| match e {
            WireEvent::Request {
                target,
                relay_header,
                sealed_headers,
                ..
            } => Some((target.clone(), relay_header.clone(), sealed_headers.clone())),
            _ => None,
        })
        .unwrap();
    for wire in [&target, &relay_header, &sealed] {
        assert!(
            !wire.contains("login") && !wire.contains("Bearer"),
            "{wire}"
        );
    }
    assert!(log
        .iter()
        .any(|e| matches!(e, WireEvent::ResponseBody { plain_len, .. } if *plain_len > 0)));
    assert!(!log.iter().any(|e| matches!(e, WireEvent::Recovery { .. })));
}

#[tokio::test]
async fn relay_restart_every_request_recovers_on_its_repaired_pair() {
    const PAIRS: usize = 5;
    let upstream = Upstream::start();
    let relay = Relay::start(&upstream.url(), &[]);
    let (log, observer) = recorder();
    let client = RelayClient::builder(relay.url(""))
        .pairs(PAIRS)
        .max_pairs(PAIRS)
        .observer(observer)
        .build()
        .unwrap();
    concurrent_requests(&client, 2 * PAIRS).await;
    let before = client.stats();
    assert_eq!(before.pool.pairs_created, PAIRS as u64);

    // A restarted memory relay has lost every pair (563 for each). Twice as many concurrent
    // requests as pairs: each stale pair costs one re-pairing, and every caller succeeds.
    let relay = relay.restart(&upstream.url(), &[]).await;
    log.lock().unwrap().clear();
    concurrent_requests(&client, 2 * PAIRS).await;
    let after = client.stats();
    assert_eq!(
        after.pool.pairs_repaired, PAIRS as u64,
        "each stale pair re-paired once: {after:?}"
    );
    assert_eq!(after.retries - before.retries, PAIRS as u64);
    assert_eq!(after.pool.pairs_created, 2 * PAIRS as u64);
    assert_eq!((after.pool.resets, after.discoveries), (0, 1));
    {
        let log = log.lock().unwrap();
        let errors: Vec<u16> = log
            .iter()
            .filter_map(|e| match e {
                WireEvent::Response { status, .. } if *status >= 559 => Some(*status),
                _ => None,
            })
            .collect();
        // One error per stale pair, never a second one on another old pair.
        assert_eq!(errors, vec![563; PAIRS], "{log:?}");
        let pairings: Vec<usize> = log
            .iter()
            .filter_map(|e| match e {
                WireEvent::Pairing { pairs, status, .. } if *status == 200 => Some(*pairs),
                _ => None,
            })
            .collect();
        assert_eq!(
            pairings,
            vec![1; PAIRS],
            "re-paired one at a time, in place"
        );
    }

    // A streamed body cannot be replayed: the client re-pairs but reports a clear error.
    let relay = relay.restart(&upstream.url(), &[]).await;
    let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"abc"))]);
    let err = client
        .post("/upload")
        .body(Body::stream(stream))
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotRetried { status: 563, code } if code == "state_not_found"),
        "{err:?}"
    );
    assert!(err.to_string().contains("not sent again"), "{err}");
    assert_eq!(client.stats().retries, after.retries, "not retried");
    // The caller sends it again (as bytes here): fine.
    let resp = client.post("/upload").body("abc").send().await.unwrap();
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["size"], 3);
    drop(relay);
}

#[tokio::test]
async fn relay_streamed_bodies_sized_and_chunked() {
    let upstream = Upstream::start();
    let relay = Relay::start(&upstream.url(), &[]);
    let (log, observer) = recorder();
    let client = RelayClient::builder(relay.url(""))
        .observer(observer)
        .build()
        .unwrap();
    let piece = |i: u8| Bytes::from(vec![i; 50_000]);
    let whole: Vec<u8> = (0..4).flat_map(|i| vec![i; 50_000]).collect();
    let pieces =
        move || futures_util::stream::iter((0..4).map(move |i| Ok::<_, std::io::Error>(piece(i))));
    for (body, sized) in [
        (Body::sized_stream(pieces(), 200_000), true),
        (Body::stream(pieces()), false),
    ] {
        log.lock().unwrap().clear();
        let resp = client.post("/upload").body(body).send().await.unwrap();
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(v["size"], 200_000);
        assert_eq!(v["sha256"], sha256_hex(&whole));
        let wire_len = log.lock().unwrap().iter().find_map(|e| match e {
            WireEvent::Request { body_len, .. } => Some(*body_len),
            _ => None,
        });
        // Sized: the exact encoded length (4 records); streamed: chunked.
        let expected = sized.then_some(200_000 + 4 * 20);
        assert_eq!(wire_len, Some(expected), "sized: {sized}");
    }
}

#[tokio::test]
async fn relay_40_concurrent_requests_within_8_pairs() {
    let upstream = Upstream::start();
    let relay = Relay::start(&upstream.url(), &[]);
    let (log, observer) = recorder();
    let client = RelayClient::builder(relay.url(""))
        .pairs(3)
        .max_pairs(8)
        .observer(observer)
        .build()
        .unwrap();
    concurrent_requests(&client, 40).await;
    let stats = client.stats();
    assert_eq!(stats.retries, 0, "{stats:?}");
    assert!(stats.pool.pairs_created <= 8, "{stats:?}");
    assert_eq!(stats.pool.in_use, 0);
    let log = log.lock().unwrap();
    assert!(
        !log.iter()
            .any(|e| matches!(e, WireEvent::Response { status, .. } if *status >= 559)),
        "no counter was ever used twice (no 564)"
    );
}

#[tokio::test]
async fn relay_rotated_secret_the_client_stores_the_re_signed_token() {
    let upstream = Upstream::start();
    let relay = Relay::start(&upstream.url(), &[]);
    let client = RelayClient::builder(relay.url("")).build().unwrap();
    get_ok(&client, "/echo?msg=a").await;
    let before = client.token().unwrap();

    // New secret, the old one still accepted. With memory state the pairs are gone too: the
    // request is answered after one re-pairing, whose answer carries the re-signed token.
    let relay = relay
        .restart(
            &upstream.url(),
            &[
                ("CLIENT_ID_SECRET", NEW_SECRET),
                ("CLIENT_ID_PREVIOUS_SECRETS", SECRET),
            ],
        )
        .await;
    get_ok(&client, "/echo?msg=b").await;
    let after = client.token().unwrap();
    assert_ne!(before, after);
    assert_eq!(
        before[..21],
        after[..21],
        "same client id (the first 21 characters are its 16 bytes)"
    );
    let stats = client.stats();
    assert_eq!((stats.token_updates, stats.discoveries), (1, 1));
    assert_eq!(stats.pool.pairs_repaired, 1);
    // The stored token is the current one: a fresh client presenting it keeps the same id
    // and is not re-signed again.
    let again = RelayClient::builder(relay.url(""))
        .token(after.clone())
        .build()
        .unwrap();
    again.connect().await.unwrap();
    assert_eq!(again.token().unwrap(), after);
    assert_eq!(again.stats().token_updates, 0);
}

#[tokio::test]
async fn relay_a_server_that_is_not_a_relay_is_reported() {
    let upstream = Upstream::start();
    let client = RelayClient::builder(upstream.url()).build().unwrap();
    let err = client.get("/").send().await.unwrap_err();
    assert!(matches!(err, Error::NotARelay { status: 404 }), "{err:?}");
    assert!(err.to_string().contains("not a pqrelay"), "{err}");
}
