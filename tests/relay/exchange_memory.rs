//! The exchange through the real relay binary with in-memory pair state: round trips through
//! the Rust client, what the wire shows, rejections, big and streamed bodies, restarts.

use std::time::Duration;

use pqrelay_testkit::{pattern, sha256_hex};

use crate::util::exchange::*;
use crate::util::machine;
use crate::util::suite::{self, Env};
use crate::util::{expect_error, Relay};

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
    let _turn = machine::heavy();
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
    let token = crate::util::discover(relay, None).await;
    let post = |body: Vec<u8>, header: Option<String>| {
        let mut req = crate::util::client()
            .post(relay.url("/api/mte-pair"))
            .body(body);
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
        post(b"{}".to_vec(), Some("2.AAAA".into())).await.unwrap(),
        566,
        "invalid_client_id",
    )
    .await;
    // A well-formed request but for its pair count (MAX_POOL_SIZE 3).
    let resp = crate::util::exchange::discovery(relay, None).await;
    let keys = resp.headers()["x-mte-relay-keys"].to_str().unwrap();
    let key = pqrelay_protocol::RelayKeys::parse(keys)
        .unwrap()
        .choose(&[])
        .unwrap()
        .clone();
    let id = pqrelay_protocol::ClientIdToken::parse(token.trim_start_matches("2."))
        .unwrap()
        .id();
    let seed = pqrelay_protocol::DecapsulationSeed::from_bytes([3; 32]);
    let pids = (1..=4).map(|i| pqrelay_protocol::PairId([i; 16])).collect();
    let four = pqrelay_protocol::ClientPairing::new(id, &key, &[4; 64], &seed, pids).unwrap();
    let v = expect_error(
        post(four.request_body().to_vec(), Some(token.clone()))
            .await
            .unwrap(),
        400,
        "invalid_pairing",
    )
    .await;
    assert!(v["message"].as_str().unwrap().contains("max-pairs"), "{v}");
    let v = expect_error(
        post(b"not json".to_vec(), Some(token.clone()))
            .await
            .unwrap(),
        400,
        "invalid_pairing",
    )
    .await;
    assert!(v["message"].as_str().unwrap().contains("JSON"), "{v}");
    expect_error(
        post(vec![b' '; 70_000], Some(token.clone())).await.unwrap(),
        413,
        "too_large",
    )
    .await;
}

#[tokio::test]
async fn readiness_and_demo_pages() {
    let env = Env::start(&[("DEMO", "true")]);
    let resp = crate::util::get(&env.relay, "/api/mte-ready").await;
    assert_eq!(resp.status(), 200);
    let resp = crate::util::get(&env.relay, "/demo/").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("demo.js"));
    let resp = crate::util::get(&env.relay, "/demo/demo.js").await;
    assert_eq!(resp.status(), 200);
    let resp = crate::util::get(&env.relay, "/public/mte-relay-browser.js").await;
    assert!(resp.text().await.unwrap().len() > 10_000, "the real client");
    let off = Env::start(&[]);
    let resp = crate::util::get(&off.relay, "/demo/demo.js").await;
    assert_ne!(resp.status(), 200, "demo pages only with DEMO on");
}

#[tokio::test]
async fn a_restarted_memory_relay_makes_the_client_re_pair_on_its_own() {
    let upstream = crate::util::Upstream::start();
    let port = crate::util::free_port();
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

#[tokio::test]
async fn download_100_mib_sized_and_streamed_in_bounded_memory() {
    let _turn = machine::heavy();
    const LEN: u64 = 100 << 20;
    for sized in [true, false] {
        let up = big_upstream(LEN, sized).await;
        let relay = Relay::start(&up, &[]);
        let c = relay_client(&relay.url(""));
        let started = std::time::Instant::now();
        let mut resp = c.get("/big").send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/x-big");
        let wire_len = resp
            .wire_headers()
            .get("content-length")
            .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        if sized {
            assert_eq!(wire_len, pqrelay_protocol::encoded_len(LEN));
        } else {
            assert_eq!(wire_len, None, "streamed");
        }
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        let mut total = 0u64;
        while let Some(piece) = resp.chunk().await.unwrap() {
            total += piece.len() as u64;
            sha2::Digest::update(&mut hasher, &piece);
        }
        assert_eq!(total, LEN);
        let piece = pattern(65536);
        let mut expect = <sha2::Sha256 as sha2::Digest>::new();
        for _ in 0..(LEN / 65536) {
            sha2::Digest::update(&mut expect, &piece);
        }
        assert_eq!(
            sha2::Digest::finalize(hasher),
            sha2::Digest::finalize(expect)
        );
        let hwm = vm_hwm_kib(relay.proc.pid());
        eprintln!(
            "download 100 MiB ({}) in {:.2} s, relay VmHWM {hwm} KiB",
            if sized { "sized" } else { "streamed" },
            started.elapsed().as_secs_f64()
        );
        assert!(hwm > 0 && hwm < 100 * 1024, "relay VmHWM {hwm} KiB");
    }
}

#[tokio::test]
async fn expect_100_continue_on_pairing() {
    let env = Env::start(&[]);
    let token = crate::util::discover(&env.relay, None).await;
    let body = br#"{"pairs":[]}"#;
    let head = format!(
        "POST /api/mte-pair HTTP/1.1\r\nhost: x\r\nx-mte-relay: {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nexpect: 100-continue\r\n\r\n",
        body.len()
    );
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", env.relay.port))
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("100 Continue in time")
        .unwrap();
    let got = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(got.starts_with("HTTP/1.1 100"), "{got}");
    s.write_all(body).await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut rest)).await;
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        rest.contains(" 400 ") && rest.contains("invalid_pairing"),
        "{rest}"
    );
}

#[tokio::test]
async fn mte_requests_fail_over_to_the_next_upstream_before_any_body_byte() {
    let upstream = crate::util::Upstream::start();
    let dead = format!("http://127.0.0.1:{}", crate::util::free_port());
    let relay = Relay::start(&format!("{dead},{}", upstream.url()), &[]);
    let c = relay_client(&relay.url(""));
    for i in 0..4 {
        let body = pattern(100_000 + i);
        let v = upload(&c, body.clone()).await;
        assert_eq!(v["sha256"], sha256_hex(&body));
    }
}

#[tokio::test]
async fn debug_logs_show_no_plaintext_or_keys() {
    let env = Env::start(&[("DEBUG", "true")]);
    let c = env.client();
    let resp = c
        .post("/upload?PLAINQUERY=1")
        .header("x-plain-header", "PLAIN-HEADER-VALUE")
        .header("content-type", "text/plain")
        .body(b"PLAIN-BODY-CONTENT".repeat(10))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
    let log = env.relay.proc.wait_log("route=mte");
    assert!(log.contains("route=mte"), "{log}");
    for needle in [
        "/upload",
        "PLAINQUERY",
        "PLAIN-HEADER-VALUE",
        "x-plain-header",
        "PLAIN-BODY",
        crate::util::SECRET,
    ] {
        assert!(!log.contains(needle), "log shows {needle}:\n{log}");
    }
}

#[tokio::test]
async fn a_streaming_body_sent_with_a_content_length_is_forwarded_whole() {
    use pqrelay_protocol::{
        seal_headers, seal_url, ExchangeHeader, Flags, MessageContext, StreamEncoder,
    };
    let env = Env::start(&[]);
    let mut p = HandPair::new(&env.relay, None).await;
    let keys = p.next();
    let flags = Flags::URL | Flags::HEADERS | Flags::BODY | Flags::STREAMING;
    let ctx =
        MessageContext::request(p.client_id(), p.pid, keys.counter, flags, "POST", "").unwrap();
    let target = seal_url(&keys.request, &ctx, "/upload").unwrap();
    let eh = seal_headers(&keys.request, &ctx, [("content-type", "text/plain")]);
    let plain = pattern(150_000);
    let mut wire = Vec::new();
    let mut enc = StreamEncoder::new(&keys.request, &ctx, None);
    for piece in plain.chunks(5000) {
        enc.push(piece, &mut wire).unwrap();
        enc.flush(&mut wire).unwrap();
    }
    enc.finish(&mut wire).unwrap();
    let relay_header = ExchangeHeader {
        token: p.token.clone(),
        pair_id: p.pid,
        counter: keys.counter,
        flags,
    }
    .encode();
    let resp = crate::util::client()
        .post(env.relay.url(&target))
        .header("x-mte-relay", relay_header)
        .header("x-mte-relay-eh", eh)
        .body(wire)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let relay = resp.headers()["x-mte-relay"].to_str().unwrap().to_owned();
    let pqrelay_protocol::RelayHeader::Exchange(h) =
        pqrelay_protocol::RelayHeader::parse(&relay).unwrap()
    else {
        panic!("not an exchange header: {relay}");
    };
    let rctx = ctx.response(200, h.flags);
    let wire_len: u64 = resp.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut dec = pqrelay_protocol::StreamDecoder::new(
        &keys.response,
        &rctx,
        pqrelay_protocol::plain_len(wire_len),
    );
    let mut body = Vec::new();
    dec.push(&resp.bytes().await.unwrap(), &mut body).unwrap();
    dec.finish().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["size"], plain.len());
    assert_eq!(v["sha256"], sha256_hex(&plain));
}
