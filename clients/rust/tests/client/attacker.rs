//! The client against an active attacker on the wire (PROTOCOL.md §16): `pqrelay-attacker`
//! between the client and the real relay, in each of its modes, in front of the counting
//! upstream (which tells how many times a request ran). `pqrelay-curl` against the same modes
//! is in `curl_relay`.
//!
//! - `substitute-key`: a pinned client, or one that stored the relay's key at an earlier clean
//!   contact, refuses the attacker's key (hard error `relay_key_not_trusted`); only a first
//!   contact without a pin trusts it (the caveat of §16);
//! - `answer-pairing`: `pairing_not_confirmed`, a hard error even at first contact;
//! - `forge-error`, `cut`: a POST whose answer was replaced or cut is sent once more with flag
//!   `retry`, which the relay refuses (the first ran): outcome unknown, the upstream ran it
//!   once. An idempotent request is sent again;
//! - `add-headers`: the attacker's plain headers never reach the upstream.

use pqrelay_client::pqrelay_protocol::{Flags, KeyId};
use pqrelay_client::{Error, RelayClient, StatusCode, WireEvent};
use pqrelay_testkit::{Attacker, CountingUpstream, Relay};

use crate::util::{error_statuses, post_json, recorder, sent_exchanges};

/// The counting upstream and the relay in front of it.
struct Scene {
    upstream: CountingUpstream,
    relay: Relay,
}

impl Scene {
    fn start() -> Scene {
        let upstream = CountingUpstream::start();
        let relay = Relay::start(&upstream.url(), &[]);
        Scene { upstream, relay }
    }

    /// An attacker in `mode` between a client and the relay, tampering with the first exchange.
    fn attacker(&self, mode: &str) -> Attacker {
        Attacker::start(&self.relay.url(""), mode, 1)
    }

    /// The relay's key, as a client that reaches the relay directly learns it.
    async fn relay_key(&self) -> KeyId {
        let client = RelayClient::builder(self.relay.url("")).build().unwrap();
        client.connect().await.expect("a clean contact");
        client.trusted_keys()[0]
    }
}

#[tokio::test]
async fn attacker_substituted_key_is_refused_when_pinned_or_stored() {
    let scene = Scene::start();
    let key = scene.relay_key().await;
    let attacker = scene.attacker("substitute-key");
    let pinned = RelayClient::builder(attacker.url())
        .pin(key.fingerprint())
        .build()
        .unwrap();
    let stored = RelayClient::builder(attacker.url())
        .trusted_keys([key.fingerprint()])
        .build()
        .unwrap();
    for (client, is_pinned) in [(&pinned, true), (&stored, false)] {
        let err = post_json(client, "/count/substituted", "x")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::RelayKeyNotTrusted { pinned, trusted, offered, .. }
                if *pinned == is_pinned && trusted[..] == [key] && !offered.contains(&key)),
            "{err:?}"
        );
        assert!(err.is_trust_failure());
        assert!(err.to_string().contains(&key.fingerprint()), "{err}");
    }
    assert_eq!(scene.upstream.count("substituted"), 0);

    // Only a first contact without a pin trusts whatever it is shown (§16): the attacker's key.
    let first = RelayClient::builder(attacker.url()).build().unwrap();
    first.connect().await.expect("paired with the attacker");
    let trusted = first.trusted_keys();
    assert!(
        !trusted.is_empty() && !trusted.contains(&key),
        "{trusted:?}"
    );
}

#[tokio::test]
async fn attacker_answering_the_pairing_is_a_hard_error_even_at_first_contact() {
    let scene = Scene::start();
    let key = scene.relay_key().await;
    let attacker = scene.attacker("answer-pairing");
    for pin in [None, Some(key)] {
        let (log, observer) = recorder();
        let mut builder = RelayClient::builder(attacker.url()).observer(observer);
        if let Some(pin) = pin {
            builder = builder.pin(pin.fingerprint());
        }
        let client = builder.build().unwrap();
        let err = post_json(&client, "/count/answered", "x")
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::PairingNotConfirmed { .. }),
            "{pin:?}: {err:?}"
        );
        assert_eq!(err.code(), Some("pairing_not_confirmed"));
        assert!(err.is_trust_failure());
        assert!(err.to_string().contains(&key.fingerprint()), "{err}");
        let log = log.lock().unwrap();
        let pairings = log
            .iter()
            .filter(|e| matches!(e, WireEvent::Pairing { .. }))
            .count();
        assert_eq!(pairings, 1, "never paired again silently: {log:?}");
        assert!(sent_exchanges(&log).is_empty(), "nothing sent: {log:?}");
        assert!(client.trusted_keys().is_empty(), "nothing stored");
    }
    assert_eq!(scene.upstream.count("answered"), 0);
}

#[tokio::test]
async fn attacker_forged_or_cut_answer_to_a_post_ends_in_outcome_unknown_after_one_run() {
    let scene = Scene::start();
    for mode in ["forge-error", "cut"] {
        let attacker = scene.attacker(mode);
        let (log, observer) = recorder();
        let client = RelayClient::builder(attacker.url())
            .pairs(1)
            .max_pairs(1)
            .observer(observer)
            .build()
            .unwrap();
        let name = format!("post-{mode}");
        let path = format!("/count/{name}");
        let err = post_json(&client, &path, "pay once").await.unwrap_err();
        assert!(
            matches!(err, Error::OutcomeUnknown { .. }),
            "{mode}: {err:?}"
        );
        assert!(err.to_string().contains("retry_refused"), "{mode}: {err}");
        assert_eq!(
            scene.upstream.count(&name),
            1,
            "{mode}: ran once, never twice"
        );
        {
            // The one `retry` attempt: same pair, next counter; the relay refused it.
            let events = log.lock().unwrap();
            let sent = sent_exchanges(&events);
            let [first, retry] = &sent[..] else {
                panic!("{mode}: two attempts: {events:?}");
            };
            assert_eq!(
                (&retry.pair_id, retry.counter),
                (&first.pair_id, first.counter + 1)
            );
            assert!(!first.flags.contains(Flags::RETRY) && retry.flags.contains(Flags::RETRY));
            let expected: &[u16] = match mode {
                "forge-error" => &[562, 564],
                _ => &[564],
            };
            assert_eq!(error_statuses(&events), expected, "{mode}");
        }
        let stats = client.stats();
        assert_eq!(
            (stats.retry_attempts, stats.outcomes_unknown),
            (1, 1),
            "{mode}: {stats:?}"
        );
        // The attacker is done: the pair still works.
        let v = post_json(&client, &format!("{path}-next"), "x")
            .await
            .unwrap();
        assert_eq!(v["count"], 1, "{mode}: {v}");
    }
}

#[tokio::test]
async fn attacker_forged_or_cut_answer_to_a_get_is_sent_again() {
    let scene = Scene::start();
    for mode in ["forge-error", "cut"] {
        let attacker = scene.attacker(mode);
        let client = RelayClient::builder(attacker.url()).build().unwrap();
        let resp = client
            .get(format!("/count/get-{mode}"))
            .send()
            .await
            .expect("the caller sees no error");
        assert_eq!(resp.status(), StatusCode::OK);
        let v: serde_json::Value = resp.json().await.unwrap();
        // Idempotent: a second run has no further effect by definition (§12).
        assert_eq!(v["count"], 2, "{mode}: {v}");
        assert_eq!(client.stats().outcomes_unknown, 0);
    }
}

#[tokio::test]
async fn attacker_added_plain_headers_never_reach_the_upstream() {
    let scene = Scene::start();
    let attacker = scene.attacker("add-headers");
    let client = RelayClient::builder(attacker.url()).build().unwrap();
    let request = client.get("/headers").header("x-caller", "sealed");
    let seen: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
    assert_eq!(seen["x-caller"], "sealed", "{seen}");
    for added in ["x-http-method-override", "x-original-url", "x-attacker"] {
        assert!(
            seen.get(added).is_none(),
            "{added} reached the upstream: {seen}"
        );
    }
    let forwarded = seen["x-forwarded-for"].as_str().unwrap_or_default();
    assert!(!forwarded.contains("6.6.6.6"), "{seen}");
    // A POST stays a POST.
    let v = post_json(&client, "/count/method", "x").await.unwrap();
    assert_eq!(v["method"], "POST", "{v}");
}
