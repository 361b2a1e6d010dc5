//! Outbound mode against an active attacker on the partner link (PROTOCOL.md §16, issue 15):
//! relay A (outbound) → `pqrelay-attacker` → relay B → the counting upstream. A pins B's key
//! in `OUTBOUND_UPSTREAMS`, one entry per attacker (one attacker per mode).
//!
//! - `substitute-key`, `answer-pairing`: the caller gets 502 `outbound_failed` naming the
//!   client-side code; nothing reaches the upstream;
//! - `forge-error`, `cut`: a POST whose answer was replaced or cut ends in 502
//!   `outcome_unknown` and ran once; a GET is sent again and succeeds;
//! - `add-headers`: the attacker's plain headers never reach the upstream.

use pqrelay_testkit::{Attacker, CountingUpstream};

use crate::util::{client, Relay};

const TOKEN: &str = "outbound-attacker-token-0123456789";
const MODES: [&str; 5] = [
    "substitute-key",
    "answer-pairing",
    "forge-error",
    "cut",
    "add-headers",
];

/// B in front of the counting upstream, one attacker per mode in front of B, and A allowed to
/// reach every attacker with B's key pinned.
struct Scene {
    upstream: CountingUpstream,
    _b: Relay,
    attackers: Vec<(&'static str, Attacker)>,
    a: Relay,
}

impl Scene {
    fn start() -> Scene {
        let upstream = CountingUpstream::start();
        let b = Relay::start(&upstream.url(), &[]);
        let line = b.proc.wait_log("(current)");
        let pin = line
            .lines()
            .find_map(|l| l.split("relay key: ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .expect("B logs its current relay key")
            .to_owned();
        assert!(pin.starts_with("sha256:"), "{pin}");
        let attackers: Vec<_> = MODES
            .iter()
            .map(|&mode| (mode, Attacker::start(&b.url(""), mode, 1)))
            .collect();
        let allowed = attackers
            .iter()
            .map(|(_, at)| format!("{};pin={pin}", at.url()))
            .collect::<Vec<_>>()
            .join(",");
        let a = Relay::start(
            &upstream.url(),
            &[("OUTBOUND_TOKEN", TOKEN), ("OUTBOUND_UPSTREAMS", &allowed)],
        );
        Scene {
            upstream,
            _b: b,
            attackers,
            a,
        }
    }

    /// A plain request to A, outbound through the attacker in `mode`.
    async fn send(&self, mode: &str, method: reqwest::Method, path: &str) -> (u16, String) {
        let attacker = &self.attackers.iter().find(|(m, _)| *m == mode).unwrap().1;
        let mut request = client()
            .request(method.clone(), self.a.url(path))
            .header("x-mte-outbound-token", TOKEN)
            .header("x-mte-upstream", attacker.url());
        if method == reqwest::Method::POST {
            request = request
                .header("content-type", "application/json")
                .body(r#"{"pay":"once"}"#);
        }
        let resp = request.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }
}

fn error_code(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    v["error"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_under_attack_refuses_a_fake_relay_runs_a_post_once_and_drops_added_headers() {
    let scene = Scene::start();

    // (a) The attacker offers its own key, or answers the pairing itself: a hard error naming
    // the client-side code, and nothing ran.
    for (mode, code) in [
        ("substitute-key", "relay_key_not_trusted"),
        ("answer-pairing", "pairing_not_confirmed"),
    ] {
        let name = format!("a-{mode}");
        let (status, body) = scene
            .send(mode, reqwest::Method::POST, &format!("/count/{name}"))
            .await;
        assert_eq!(status, 502, "{mode}: {body}");
        assert_eq!(error_code(&body), "outbound_failed", "{mode}: {body}");
        assert!(body.contains(code), "{mode}: {body}");
        assert_eq!(scene.upstream.count(&name), 0, "{mode}: nothing ran");
    }

    // (b), (c) A POST whose answer is forged or cut: outcome unknown, run exactly once. A GET
    // is sent again and succeeds.
    for mode in ["forge-error", "cut"] {
        let name = format!("post-{mode}");
        let (status, body) = scene
            .send(mode, reqwest::Method::POST, &format!("/count/{name}"))
            .await;
        assert_eq!(status, 502, "{mode}: {body}");
        assert_eq!(error_code(&body), "outcome_unknown", "{mode}: {body}");
        assert_eq!(
            scene.upstream.count(&name),
            1,
            "{mode}: ran once, never twice"
        );
    }
    // Each attacker tampers with its first exchange only: restart them for the GETs.
    let scene = Scene::start();
    for mode in ["forge-error", "cut"] {
        let name = format!("get-{mode}");
        let (status, body) = scene
            .send(mode, reqwest::Method::GET, &format!("/count/{name}"))
            .await;
        assert_eq!(status, 200, "{mode}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["count"], 2, "{mode}: sent again: {v}");
    }

    // (d) Plain headers added on the partner link never reach the upstream.
    let (status, body) = scene
        .send("add-headers", reqwest::Method::GET, "/headers")
        .await;
    assert_eq!(status, 200, "{body}");
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    for added in ["x-http-method-override", "x-original-url", "x-attacker"] {
        assert!(
            seen.get(added).is_none(),
            "{added} reached the upstream: {seen}"
        );
    }
    let forwarded = seen["x-forwarded-for"].as_str().unwrap_or_default();
    assert!(!forwarded.contains("6.6.6.6"), "{seen}");
}
