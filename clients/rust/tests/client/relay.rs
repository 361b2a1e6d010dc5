//! The client against the real relay binary and the real demo upstream (no mock; the counting
//! upstream where runs are counted): the sealed round trip as the wire shows it, what follows a
//! relay restart that lost every pair (§12: idempotent requests recover, a POST on an old pair
//! ends in outcome unknown), streamed
//! bodies, concurrency within the pool bound, token rotation, and a server that is no relay.

use bytes::Bytes;
use pqrelay_client::{Body, Error, Method, RelayClient, StatusCode, WireEvent};
use pqrelay_testkit::{sha256_hex, CountingUpstream, Relay, Tap, Upstream, SECRET};

use crate::util::{error_statuses, post_json, recorder, sent_exchanges, NEW_SECRET};

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

/// Sends `n` concurrent idempotent requests to the counting upstream, each to its own
/// `/count/<tag>-<i>` (GETs, and PUTs of bytes), and checks every answer.
async fn concurrent_idempotent(client: &RelayClient, n: usize, tag: &str) {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let client = client.clone();
            let path = format!("/count/{tag}-{i}");
            tokio::spawn(async move {
                let resp = if i % 2 == 0 {
                    client.get(path).send().await?
                } else {
                    let body = vec![i as u8; 1000 + i];
                    client.request(Method::PUT, path).body(body).send().await?
                };
                assert_eq!(resp.status(), StatusCode::OK);
                let v: serde_json::Value = resp.json().await?;
                assert_eq!(v["count"], 1, "{v}");
                Ok::<_, Error>(())
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().expect("the caller sees no error");
    }
}

#[tokio::test]
async fn relay_restart_idempotent_requests_recover_and_a_post_ends_in_outcome_unknown() {
    const PAIRS: usize = 5;
    let upstream = CountingUpstream::start();
    let relay = Relay::start(&upstream.url(), &[]);
    let (log, observer) = recorder();
    let client = RelayClient::builder(relay.url(""))
        .pairs(PAIRS)
        .max_pairs(PAIRS)
        .observer(observer)
        .build()
        .unwrap();
    concurrent_idempotent(&client, 2 * PAIRS, "before").await;
    let before = client.stats();
    assert_eq!(before.pool.pairs_created, PAIRS as u64);

    // A restarted memory relay has lost every pair: it answers 563, unauthenticated (it has no
    // key for a pair it does not know). Idempotent requests recover silently (§12): the first
    // 563 forgets every old pair, and each request that met one is sent again once, on a pair
    // re-paired in its place, never on another old pair.
    let relay = relay.restart(&upstream.url(), &[]).await;
    log.lock().unwrap().clear();
    concurrent_idempotent(&client, 2 * PAIRS, "after").await;
    let after = client.stats();
    let errors = error_statuses(&log.lock().unwrap());
    assert!(
        !errors.is_empty() && errors.len() <= PAIRS,
        "one 563 per old pair met: {errors:?}"
    );
    assert!(errors.iter().all(|s| *s == 563), "{errors:?}");
    let met = errors.len() as u64;
    assert_eq!(after.pool.pairs_repaired, met, "{after:?}");
    assert_eq!(after.retries - before.retries, met, "{after:?}");
    assert_eq!((after.pool.resets, after.discoveries), (1, 1), "{after:?}");
    assert_eq!((after.retry_attempts, after.outcomes_unknown), (0, 0));

    // A POST on an old pair: 563 ends the pair, so no `retry` attempt is possible, and a 563
    // is unauthenticated (anyone could forge it): outcome unknown, BY DESIGN (§12). The
    // upstream ran it at most once; here never, as the relay answers 563 before forwarding.
    let relay = relay.restart(&upstream.url(), &[]).await;
    log.lock().unwrap().clear();
    let err = post_json(&client, "/count/post", "once").await.unwrap_err();
    assert!(matches!(err, Error::OutcomeUnknown { .. }), "{err:?}");
    assert_eq!(err.code(), Some("outcome_unknown"));
    assert_eq!(upstream.count("post"), 0, "at most once");
    {
        let log = log.lock().unwrap();
        assert_eq!(sent_exchanges(&log).len(), 1, "never sent again: {log:?}");
        assert_eq!(error_statuses(&log), [563]);
    }
    let stats = client.stats();
    assert_eq!((stats.retry_attempts, stats.outcomes_unknown), (0, 1));
    assert_eq!(
        stats.pool.resets, 2,
        "the old pairs are forgotten: {stats:?}"
    );
    // The caller, having checked that it did not run, sends it again: a fresh pair, once.
    let v = post_json(&client, "/count/post", "once").await.unwrap();
    assert_eq!((v["count"].as_u64(), upstream.count("post")), (Some(1), 1));

    // A streamed body cannot be sent again: an idempotent request gets the relay's answer,
    // reported as unauthenticated; the pairs are re-paired for the next request.
    let relay = relay.restart(&upstream.url(), &[]).await;
    let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"abc"))]);
    let err = client
        .request(Method::PUT, "/count/stream")
        .body(Body::stream(stream))
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::ErrorUnauthenticated { status: 563, code, .. } if code == "state_not_found"),
        "{err:?}"
    );
    assert_eq!(upstream.count("stream"), 0);
    let resp = client
        .request(Method::PUT, "/count/stream")
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(upstream.count("stream"), 1);
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
