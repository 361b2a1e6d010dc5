//! Multi-domain (`DOMAIN_MAP`) with real processes: one relay, two sites chosen by `Host`
//! (`127.0.0.1` and `localhost`, both loopback), each with its own upstream and secret.

use pqrelay_client::RelayClient;
use pqrelay_testkit::redis::RedisServer;

use crate::util::exchange::upstream_view;
use crate::util::{client, expect_error, Relay, Upstream};

const SECRET_A: &str = "site-a-secret-0123456789abcdefghij";
const SECRET_B: &str = "site-b-secret-0123456789abcdefghij";

struct Sites {
    up_a: Upstream,
    up_b: Upstream,
    relay: Relay,
}

fn start() -> Sites {
    start_with(&[])
}

/// The two sites, with `env` added to the relay's settings.
fn start_with(env: &[(&str, &str)]) -> Sites {
    let up_a = Upstream::start();
    let up_b = Upstream::start();
    let map = serde_json::json!({
        "127.0.0.1": {
            "upstream": up_a.url(),
            "corsOrigins": ["https://a.example"],
            "clientIdSecret": SECRET_A,
        },
        "LocalHost": {
            "upstream": up_b.url(),
            "corsOrigins": "https://b.example",
            "clientIdSecret": SECRET_B,
            "passThroughRoutes": ["/echo"],
            "headers": {"x-site": "b"},
        },
    });
    let map = map.to_string();
    let mut all = vec![("DOMAIN_MAP", map.as_str())];
    all.extend_from_slice(env);
    let relay = Relay::start(&up_a.url(), &all);
    Sites { up_a, up_b, relay }
}

fn site_client(relay: &Relay, host: &str) -> RelayClient {
    RelayClient::builder(format!("http://{host}:{}", relay.port))
        .pairs(2)
        .build()
        .expect("client")
}

/// `HEAD /api/mte-relay` with `Host: host`: the token handed out.
async fn token_for(relay: &Relay, host: &str) -> String {
    let resp = client()
        .head(relay.url("/api/mte-relay"))
        .header("host", host)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{host}");
    resp.headers()["x-mte-relay"].to_str().unwrap().to_owned()
}

/// A client per site; each reaches its own upstream (which sees its own address as Host),
/// query intact.
async fn each_site_reaches_its_own_upstream(s: &Sites) -> (RelayClient, RelayClient) {
    let a = site_client(&s.relay, "127.0.0.1");
    let b = site_client(&s.relay, "localhost");
    let va = upstream_view(&a, "/headers?site=a").await;
    assert_eq!(va["headers"]["host"], format!("127.0.0.1:{}", s.up_a.port));
    let vb = upstream_view(&b, "/headers?site=b").await;
    assert_eq!(vb["headers"]["host"], format!("127.0.0.1:{}", s.up_b.port));
    assert_eq!(vb["query"], "site=b");
    (a, b)
}

/// Pairs with site A (`127.0.0.1`) and presents the exchange header it used under site B's
/// Host (`localhost`): refused (566).
async fn pair_of_a_is_refused_under_b(relay: &Relay) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    let observed = RelayClient::builder(format!("http://127.0.0.1:{}", relay.port))
        .pairs(1)
        .observer(move |e| {
            if let pqrelay_client::WireEvent::Request { relay_header, .. } = e {
                log.lock().unwrap().push(relay_header.clone());
            }
        })
        .build()
        .unwrap();
    upstream_view(&observed, "/headers").await;
    let used = seen.lock().unwrap()[0].clone();
    let resp = client()
        .get(relay.url("/x"))
        .header("host", "localhost")
        .header("x-mte-relay", &used)
        .header("x-mte-relay-eh", "AAAA")
        .send()
        .await
        .unwrap();
    expect_error(resp, 566, "invalid_client_id").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domains_reach_their_own_upstreams_and_keep_clients_apart() {
    let s = start();
    each_site_reaches_its_own_upstream(&s).await;

    // Per-site settings: B passes /echo through and adds its header; A does neither.
    let resp = client()
        .get(s.relay.url("/echo?msg=hi"))
        .header("host", "LOCALHOST:1234")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-site"], "b");
    let resp = client()
        .get(s.relay.url("/echo?msg=hi"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 561, "relay_header_invalid").await;

    // A client id of one site is refused on the other: exchange, pairing, and discovery
    // hands out a fresh id instead.
    let ta = token_for(&s.relay, "127.0.0.1").await;
    let tb = token_for(&s.relay, "localhost").await;
    assert_ne!(ta, tb);
    let resp = client()
        .get(s.relay.url("/headers"))
        .header("host", "localhost")
        .header("x-mte-relay", &ta)
        .send()
        .await
        .unwrap();
    expect_error(resp, 566, "invalid_client_id").await;
    let resp = client()
        .post(s.relay.url("/api/mte-pair"))
        .header("host", "127.0.0.1")
        .header("x-mte-relay", &tb)
        .header("content-type", "application/json")
        .body(r#"{"pairs":[]}"#)
        .send()
        .await
        .unwrap();
    expect_error(resp, 566, "invalid_client_id").await;
    let again = client()
        .head(s.relay.url("/api/mte-relay"))
        .header("host", "localhost")
        .header("x-mte-relay", &ta)
        .send()
        .await
        .unwrap();
    assert_ne!(again.headers()["x-mte-relay"].to_str().unwrap(), ta);

    // A's pairs, presented under B's Host: the exchange header is refused (566).
    pair_of_a_is_refused_under_b(&s.relay).await;

    // Unknown hosts: 421 with a JSON reason, including for the relay's own routes.
    for host in ["unknown.example", "127.0.0.2", "localhost.evil"] {
        let resp = client()
            .get(s.relay.url("/api/mte-errors"))
            .header("host", host)
            .send()
            .await
            .unwrap();
        expect_error(resp, 421, "misdirected_request").await;
    }
}

#[test]
fn domain_map_errors_name_the_domain_and_field() {
    let map = serde_json::json!({
        "a.example": {"upstream": "ftp://x", "corsOrigins": ["https://a.example"], "clientIdSecret": SECRET_A},
        "b.example": {"corsOrigins": ["https://b.example"], "clientIdSecret": SECRET_B, "colour": "blue"},
    });
    let out = crate::util::run(
        &[
            ("UPSTREAM", "http://127.0.0.1:9"),
            ("CLIENT_ID_SECRET", crate::util::SECRET),
            ("CORS_ORIGINS", crate::util::ORIGIN),
            ("DOMAIN_MAP", &map.to_string()),
        ],
        &["check-config"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for want in [
        "domainMap.a.example.upstream",
        "domainMap.b.example.upstream",
        "domainMap.b.example.colour",
    ] {
        assert!(err.contains(want), "{want} not in:\n{err}");
    }
    let out = crate::util::run(
        &[
            ("UPSTREAM", "http://127.0.0.1:9"),
            ("CLIENT_ID_SECRET", crate::util::SECRET),
            ("CORS_ORIGINS", crate::util::ORIGIN),
            ("DOMAIN_MAP", "{not json"),
        ],
        &["check-config"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DOMAIN_MAP"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domains_with_redis_state_keep_keys_and_pairs_apart() {
    let redis = RedisServer::start();
    let url = redis.url();
    // No top-level UPSTREAM, CORS_ORIGINS or CLIENT_ID_SECRET: every site has its own.
    let s = start_with(&[
        ("UPSTREAM", ""),
        ("CORS_ORIGINS", ""),
        ("CLIENT_ID_SECRET", ""),
        ("REDIS_URL", &url),
        ("STATE_SECRET", "state-secret-0123456789abcdefghijklmn"),
    ]);
    let (a, b) = each_site_reaches_its_own_upstream(&s).await;

    // The pairs are in Redis under one key space per site, none under a raw client id.
    let keys = std::process::Command::new("redis-cli")
        .args(["-u", &url, "--scan", "--pattern", "pqrelay:2:{*"])
        .output()
        .unwrap();
    // Pair keys only: each client also has an index of its pairs.
    let keys: String = String::from_utf8_lossy(&keys.stdout)
        .lines()
        .filter(|k| !k.ends_with(":index"))
        .map(|k| format!("{k}\n"))
        .collect();
    let tags: std::collections::BTreeSet<&str> = keys
        .lines()
        .filter_map(|k| k.split_once('{')?.1.split_once('}').map(|(t, _)| t))
        .collect();
    assert_eq!(keys.lines().count(), 4, "two pairs per site: {keys}");
    assert_eq!(tags.len(), 2, "one key space per site: {keys}");
    for c in [&a, &b] {
        let token = c.token().unwrap();
        let id = pqrelay_client::pqrelay_protocol::ClientIdToken::parse(&token)
            .unwrap()
            .id()
            .to_b64();
        assert!(!keys.contains(&id), "a raw client id in a Redis key");
    }

    // A pair of site A presented under site B's Host is refused.
    pair_of_a_is_refused_under_b(&s.relay).await;
    // Both sites still work after the refusal.
    upstream_view(&a, "/headers").await;
    upstream_view(&b, "/headers").await;
}

#[test]
fn domain_map_makes_the_top_level_site_settings_optional() {
    let map = serde_json::json!({
        "a.example": {"upstream": "http://127.0.0.1:9", "corsOrigins": ["https://a.example"], "clientIdSecret": SECRET_A},
    })
    .to_string();
    let out = crate::util::run(&[("DOMAIN_MAP", &map)], &["check-config"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    // With Redis the state secret must be named: a random one would not be shared.
    let redis = [
        ("DOMAIN_MAP", map.as_str()),
        ("REDIS_URL", "redis://127.0.0.1:9"),
    ];
    let out = crate::util::run(&redis, &["check-config"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("STATE_SECRET") && err.contains("DOMAIN_MAP"),
        "{err}"
    );
    assert!(
        !err.contains("UPSTREAM ") && !err.contains("CORS_ORIGINS"),
        "{err}"
    );
    // Without DOMAIN_MAP they stay required.
    let out = crate::util::run(
        &[("CLIENT_ID_SECRET", crate::util::SECRET)],
        &["check-config"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("UPSTREAM") && err.contains("CORS_ORIGINS"),
        "{err}"
    );
}
