//! Protocol version 2 on the relay's side (PROTOCOL.md §4–§14): relay keys (keygen, discovery,
//! rotation, fleet comparison), pairing bound to a key, authenticated errors, the `retry`
//! rule, pair ids never replaced, and only sealed headers speaking for the client. Exchanges
//! are made by hand with the protocol crate, so every byte is the test's.

use pqrelay_protocol::{
    verify_error_reply, ClientIdToken, ClientPairing, DecapsulationSeed, ExchangeId, Flags, KeyId,
    PairId, RelayKeys, Verdict,
};
use pqrelay_testkit::redis::RedisServer;
use pqrelay_testkit::{CountingUpstream, TempDir};

use crate::util::exchange::{
    discovered, discovery, open_answer, random, seal_request, seal_request_flags, send_pairing,
    send_sealed, HandPair, Sealed,
};
use crate::util::{expect_error, run, Relay};

/// `pqrelay keygen --out FILE`: the fingerprint it prints last.
fn keygen(dir: &TempDir, name: &str) -> (String, KeyId) {
    let path = dir.path().join(name);
    let out = run(&[], &["keygen", "--out", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let fingerprint = text.lines().last().unwrap().to_owned();
    let id = KeyId::parse_fingerprint(&fingerprint).expect("a fingerprint");
    (path.to_str().unwrap().to_owned(), id)
}

/// The relay keys discovery offers, current first.
async fn offered(relay: &Relay) -> Vec<KeyId> {
    let resp = discovery(relay, None).await;
    let keys = resp.headers()["x-mte-relay-keys"].to_str().unwrap();
    RelayKeys::parse(keys).expect("x-mte-relay-keys").ids()
}

/// A sealed GET of `/headers` on the counting upstream: what it saw.
async fn upstream_headers(relay: &Relay, p: &mut HandPair) -> serde_json::Value {
    let s = seal_request(p, "GET", "/headers", &[], None);
    let (status, _, body) = open_answer(&s, send_sealed(relay, &s).await).await;
    assert_eq!(status, 200);
    serde_json::from_slice(&body).unwrap()
}

fn exchange_of(p: &HandPair, s: &Sealed) -> ExchangeId {
    ExchangeId {
        client_id: p.client_id(),
        pair_id: p.pid,
        counter: s.keys.counter,
    }
}

/// The verdict of an error reply, if its tag verifies with the exchange's `ke`.
fn authenticated(p: &HandPair, s: &Sealed, resp: &reqwest::Response) -> Option<Verdict> {
    let h = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok());
    verify_error_reply(
        &s.keys.error,
        exchange_of(p, s),
        resp.status().as_u16(),
        h("x-mte-relay-error"),
        h("x-mte-relay-verdict"),
        h("x-mte-relay-tag"),
    )
    .ok()
}

#[tokio::test]
async fn keygen_writes_a_key_that_discovery_offers_and_check_config_names() {
    let dir = TempDir::new("keys").unwrap();
    let (path, id) = keygen(&dir, "k1");
    let again = run(&[], &["keygen", "--out", &path]);
    assert!(!again.status.success(), "an existing key file is kept");
    let upstream = CountingUpstream::start();
    let relay = Relay::start(&upstream.url(), &[("RELAY_KEYS", &path)]);
    assert_eq!(offered(&relay).await, [id]);
    let env = [
        ("UPSTREAM", upstream.url()),
        ("CLIENT_ID_SECRET", crate::util::SECRET.to_owned()),
        ("CORS_ORIGINS", crate::util::ORIGIN.to_owned()),
        ("RELAY_KEYS", path.clone()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = run(&env, &["check-config"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("relay key: {} (current)", id.fingerprint())),
        "{text}"
    );
    let key_value = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains(key_value.trim()),
        "check-config never prints a key"
    );
    let log = relay.proc.wait_log("relay key");
    assert!(
        log.contains(&id.fingerprint()),
        "the startup log names the key"
    );
    assert!(!log.contains(key_value.trim()), "the log never holds a key");
    // A pair pinned to the key works end to end.
    let mut p = HandPair::with_pins(&relay, None, &[id]).await;
    assert_eq!(
        upstream_headers(&relay, &mut p).await["accept-encoding"],
        "identity"
    );
}

#[tokio::test]
async fn without_relay_keys_the_key_comes_from_the_client_id_secret() {
    let upstream = CountingUpstream::start();
    let a = Relay::start(&upstream.url(), &[]);
    let b = Relay::start(&upstream.url(), &[]);
    let keys = offered(&a).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(
        offered(&b).await,
        keys,
        "relays sharing the secret share the key"
    );
    let rotated = Relay::start(
        &upstream.url(),
        &[
            ("CLIENT_ID_SECRET", crate::util::OLD_SECRET),
            ("CLIENT_ID_PREVIOUS_SECRETS", crate::util::SECRET),
        ],
    );
    let both = offered(&rotated).await;
    assert_eq!(both.len(), 2);
    assert_eq!(
        both[1], keys[0],
        "the previous secret's key is still offered, second"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_serves_both_keys_then_removing_the_old_one_ends_its_pairs() {
    if pqrelay_testkit::redis::missing("redis-server") {
        return;
    }
    let redis = RedisServer::start();
    let dir = TempDir::new("rotation").unwrap();
    let (k0, id0) = keygen(&dir, "k0");
    let (k1, id1) = keygen(&dir, "k1");
    let upstream = CountingUpstream::start();
    let redis_url = redis.url();
    let both = format!("{k1},{k0}");
    let relay = Relay::start(
        &upstream.url(),
        &[("RELAY_KEYS", &both), ("REDIS_URL", &redis_url)],
    );
    assert_eq!(offered(&relay).await, [id1, id0]);
    let mut old = HandPair::with_pins(&relay, None, &[id0]).await;
    let mut new = HandPair::with_pins(&relay, None, &[id1]).await;
    upstream_headers(&relay, &mut old).await;
    upstream_headers(&relay, &mut new).await;

    // A second relay on the same Redis with only the new key: it says so at startup.
    let only_new = Relay::start(
        &upstream.url(),
        &[("RELAY_KEYS", &k1), ("REDIS_URL", &redis_url)],
    );
    let log = only_new.proc.wait_log("announced other relay keys");
    assert!(log.contains("announced other relay keys"), "{log}");
    // Pairs made with the removed key end there (569); pairs of the current key go on.
    let s = seal_request(&mut old, "GET", "/headers", &[], None);
    expect_error(send_sealed(&only_new, &s).await, 569, "repair_required").await;
    upstream_headers(&only_new, &mut new).await;
    // A client pinned only to the removed key finds no key it trusts.
    let resp = discovery(&only_new, None).await;
    let keys = RelayKeys::parse(resp.headers()["x-mte-relay-keys"].to_str().unwrap()).unwrap();
    assert_eq!(keys.ids(), [id1]);
    assert!(
        keys.choose(&[id0]).is_err(),
        "no silent pairing with another key"
    );
}

#[tokio::test]
async fn pairing_to_a_key_the_relay_lacks_names_the_relays_fingerprints() {
    let upstream = CountingUpstream::start();
    let relay = Relay::start(&upstream.url(), &[]);
    let current = offered(&relay).await[0];
    let token = crate::util::discover(&relay, None).await;
    let token = ClientIdToken::parse(token.trim_start_matches("2.")).unwrap();
    let stranger = pqrelay_protocol::RelayKey::from_seed(&DecapsulationSeed::from_bytes(random()));
    let seed = DecapsulationSeed::from_bytes(random());
    let pids = vec![PairId(random())];
    let pairing =
        ClientPairing::new(token.id(), stranger.config(), &random(), &seed, pids).unwrap();
    let resp = send_pairing(&relay, &token, &pairing).await;
    let v = expect_error(resp, 400, "unknown_relay_key").await;
    let message = v["message"].as_str().unwrap();
    assert!(message.contains(&current.fingerprint()), "{message}");
    assert!(message.contains(&stranger.id().fingerprint()), "{message}");
}

#[tokio::test]
async fn a_pair_id_is_never_replaced() {
    let upstream = CountingUpstream::start();
    let relay = Relay::start(&upstream.url(), &[]);
    let (token, offered) = discovered(&relay, None).await;
    let key = offered.choose(&[]).unwrap().clone();
    let pid = PairId(random());
    for expected in [200, 400] {
        let seed = DecapsulationSeed::from_bytes(random());
        let pairing = ClientPairing::new(token.id(), &key, &random(), &seed, vec![pid]).unwrap();
        let resp = send_pairing(&relay, &token, &pairing).await;
        assert_eq!(resp.status(), expected);
        if expected == 400 {
            expect_error(resp, 400, "invalid_pairing").await;
        }
    }
}

#[tokio::test]
async fn errors_after_the_commit_are_authenticated_and_earlier_ones_are_not() {
    let upstream = CountingUpstream::start();
    let relay = Relay::start(&upstream.url(), &[]);
    let mut p = HandPair::new(&relay, None).await;

    // A sealed header block changed on the wire: 562, the counter spent, verdict dead.
    let mut s = seal_request(&mut p, "POST", "/count/tampered", &[], None);
    let eh = s
        .headers
        .iter_mut()
        .find(|(k, _)| k == "x-mte-relay-eh")
        .unwrap();
    let flipped = if eh.1.ends_with('A') { 'B' } else { 'A' };
    eh.1.pop();
    eh.1.push(flipped);
    let resp = send_sealed(&relay, &s).await;
    assert_eq!(resp.status(), 562);
    assert_eq!(authenticated(&p, &s, &resp), Some(Verdict::Dead));
    assert_eq!(resp.headers()["x-mte-relay-verdict"], "dead");
    // The untampered request with that counter is a replay now: refused, nothing ran.
    let again = send_sealed(&relay, &s).await;
    assert_eq!(again.status(), 564);
    assert_eq!(
        authenticated(&p, &s, &again),
        None,
        "no key for a spent counter"
    );

    // A forged error has no tag that verifies.
    let good = seal_request(&mut p, "POST", "/count/good", &[], None);
    let resp = send_sealed(&relay, &good).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        upstream.count("tampered"),
        0,
        "the tampered request never reached the upstream"
    );
}

#[tokio::test]
async fn a_retry_runs_only_if_its_first_attempt_never_did() {
    let upstream = CountingUpstream::start();
    let relay = Relay::start(&upstream.url(), &[]);
    let mut p = HandPair::new(&relay, None).await;
    // The first attempt ran (its answer "lost"): the retry is refused, authenticated.
    let first = seal_request(&mut p, "POST", "/count/ran", &[], None);
    assert_eq!(send_sealed(&relay, &first).await.status(), 200);
    let retry = seal_request_flags(&mut p, "POST", "/count/ran", &[], None, Flags::RETRY);
    let resp = send_sealed(&relay, &retry).await;
    assert_eq!(resp.status(), 564);
    assert_eq!(authenticated(&p, &retry, &resp), Some(Verdict::Dead));
    assert_eq!(resp.headers()["x-mte-relay-error"], "retry_refused");
    assert_eq!(upstream.count("ran"), 1, "the upstream ran it once");

    // The first attempt never arrived: the retry runs, and the first can never run after it.
    let lost = seal_request(&mut p, "POST", "/count/lost", &[], None);
    let retry = seal_request_flags(&mut p, "POST", "/count/lost", &[], None, Flags::RETRY);
    let (status, _, _) = open_answer(&retry, send_sealed(&relay, &retry).await).await;
    assert_eq!(status, 200);
    let late = send_sealed(&relay, &lost).await;
    assert_eq!(late.status(), 564, "the first attempt's counter is spent");
    assert_eq!(upstream.count("lost"), 1, "the upstream ran it once");
}

#[tokio::test]
async fn only_sealed_headers_speak_for_the_client() {
    let upstream = CountingUpstream::start();
    let relay = Relay::start(&upstream.url(), &[]);
    let mut p = HandPair::new(&relay, None).await;
    let mut s = seal_request(&mut p, "GET", "/headers", &[("x-sealed", "yes")], None);
    for (k, v) in [
        ("x-http-method-override", "DELETE"),
        ("x-original-url", "/admin"),
        ("x-forwarded-for", "6.6.6.6"),
        ("x-attacker", "1"),
        ("accept-encoding", "gzip"),
        ("cookie", "session=abc"),
    ] {
        s.headers.push((k.to_owned(), v.to_owned()));
    }
    let (status, _, body) = open_answer(&s, send_sealed(&relay, &s).await).await;
    assert_eq!(status, 200);
    let seen: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(seen["x-sealed"], "yes");
    assert_eq!(
        seen["cookie"], "session=abc",
        "cookies are allowed plain (PLAIN_HEADERS)"
    );
    assert_eq!(seen["accept-encoding"], "identity");
    for added in ["x-http-method-override", "x-original-url", "x-attacker"] {
        assert!(
            seen.get(added).is_none(),
            "{added} reached the upstream: {seen}"
        );
    }
    let xff = seen["x-forwarded-for"].as_str().unwrap_or_default();
    assert!(
        !xff.contains("6.6.6.6"),
        "a plain x-forwarded-for reached the upstream: {xff}"
    );

    // Sealed forwarding headers are refused.
    let s = seal_request(
        &mut p,
        "GET",
        "/headers",
        &[("x-forwarded-for", "6.6.6.6")],
        None,
    );
    let resp = send_sealed(&relay, &s).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(authenticated(&p, &s, &resp), Some(Verdict::Dead));
}

#[tokio::test]
async fn an_empty_body_keeps_its_framing() {
    let upstream = CountingUpstream::start();
    let relay = Relay::start(&upstream.url(), &[]);
    let mut p = HandPair::new(&relay, None).await;
    // A POST with an empty body: no body flag, `content-length: 0` (PROTOCOL.md §9.2).
    let mut s = seal_request(&mut p, "POST", "/headers", &[], None);
    s.headers.push(("content-length".into(), "0".into()));
    let (status, _, body) = open_answer(&s, send_sealed(&relay, &s).await).await;
    assert_eq!(status, 200);
    let seen: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(seen["content-length"], "0", "{seen}");
    assert!(seen.get("transfer-encoding").is_none(), "{seen}");
    assert!(
        seen.get("content-type").is_none(),
        "no invented content type: {seen}"
    );
}
