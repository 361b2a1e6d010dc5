//! The exchange with pair state in Redis (real `redis-server` processes): the suite, two
//! relays sharing one Redis, a relay restart without re-pairing, and Redis going away and
//! coming back.

use std::time::Duration;

use pqrelay_client::RelayClient;
use pqrelay_testkit::redis::RedisServer;

use crate::util::exchange::*;
use crate::util::suite::{self, Env};
use crate::util::{expect_error, Relay, Upstream};

const STATE_SECRET: &str = "state-secret-0123456789abcdefghij";

fn redis_env(redis: &RedisServer) -> Vec<(&'static str, String)> {
    vec![
        ("REDIS_URL", redis.url()),
        ("STATE_SECRET", STATE_SECRET.into()),
        ("REDIS_TIMEOUT_MS", "500".into()),
    ]
}

fn start(upstream: &str, redis: &RedisServer) -> Relay {
    let env = redis_env(redis);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Relay::start(upstream, &env)
}

fn env_with(redis: &RedisServer) -> Env {
    let upstream = Upstream::start();
    let relay = start(&upstream.url(), redis);
    Env {
        _upstream: upstream,
        relay,
    }
}

fn one_pair_client(relay: &Relay) -> RelayClient {
    RelayClient::builder(relay.url(""))
        .pairs(1)
        .max_pairs(1)
        .build()
        .unwrap()
}

#[tokio::test]
async fn redis_round_trips_sizes_cookies_and_sse() {
    let redis = RedisServer::start();
    let env = env_with(&redis);
    let resp = crate::util::get(&env.relay, "/api/mte-ready").await;
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["store"], "redis");
    suite::round_trips(&env).await;
    suite::body_sizes(&env).await;
    suite::cookies(&env).await;
    suite::sse_streams(&env).await;
    suite::wire_is_sealed(&env).await;
    let per = suite::exchange_time(&env, 200).await;
    eprintln!("redis: {per:?} per small exchange");
}

#[tokio::test]
async fn redis_rejections_reach_no_upstream() {
    let redis = RedisServer::start();
    let recorder = Recorder::start().await;
    let relay = start(&recorder.url(), &redis);
    suite::rejections(&relay).await;
    assert_eq!(*recorder.connections.lock().unwrap(), 0);
    suite::body_tampering(&relay, &recorder).await;
}

#[tokio::test]
async fn two_relays_share_one_redis() {
    let redis = RedisServer::start();
    let upstream = Upstream::start();
    let a = start(&upstream.url(), &redis);
    let b = start(&upstream.url(), &redis);

    // One pair, requests alternating between the relays: every counter is served once.
    let mut p = HandPair::new(&a, None).await;
    for i in 0..6 {
        let relay = if i % 2 == 0 { &b } else { &a };
        let s = seal_request(&mut p, "GET", &format!("/echo?msg={i}"), &[], None);
        let resp = send_sealed(relay, &s).await;
        assert_eq!(resp.status(), 200, "exchange {i}");
        // A replay on the other relay is refused.
        let other = if i % 2 == 0 { &a } else { &b };
        expect_error(send_sealed(other, &s).await, 564, "counter_rejected").await;
    }

    // The same exchange sent to both relays at once: exactly one serves it.
    for _ in 0..5 {
        let s = seal_request(&mut p, "GET", "/echo?msg=race", &[], None);
        let (ra, rb) = tokio::join!(send_sealed(&a, &s), send_sealed(&b, &s));
        let mut statuses = [ra.status().as_u16(), rb.status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 564]);
    }
}

#[tokio::test]
async fn a_restarted_relay_with_redis_keeps_every_pair() {
    let redis = RedisServer::start();
    let upstream = Upstream::start();
    let port = crate::util::free_port();
    let env = redis_env(&redis);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let relay = Relay::start_on(port, &upstream.url(), &env, &[]);
    let c = relay_client(&relay.url(""));
    for _ in 0..3 {
        assert_eq!(c.get("/echo?msg=a").send().await.unwrap().status(), 200);
    }
    let before = c.stats();
    drop(relay);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _relay = Relay::start_on(port, &upstream.url(), &env, &[]);
    for _ in 0..3 {
        assert_eq!(c.get("/echo?msg=b").send().await.unwrap().status(), 200);
    }
    let after = c.stats();
    assert_eq!(after.pool.pairings, before.pool.pairings, "no re-pairing");
    assert_eq!(after.retries, before.retries, "no retry");
}

#[tokio::test]
async fn redis_down_is_503_on_mte_routes_only_and_recovers() {
    let redis_port = crate::util::free_port();
    let redis = RedisServer::start_with(redis_port, &[]);
    let upstream = Upstream::start();
    let mut vars = redis_env(&redis);
    vars.push(("PASS_THROUGH_ROUTES", "/echo".into()));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let env = Env {
        relay: Relay::start(&upstream.url(), &vars),
        _upstream: upstream,
    };
    let c = one_pair_client(&env.relay);
    assert_eq!(c.get("/headers?a").send().await.unwrap().status(), 200);

    drop(redis);
    tokio::time::sleep(Duration::from_millis(200)).await;
    match c.get("/headers?down").send().await {
        Err(pqrelay_client::Error::Relay { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (503, "state_store_unavailable"));
        }
        other => panic!("expected 503, got {other:?}"),
    }
    let ready = crate::util::get(&env.relay, "/api/mte-ready").await;
    expect_error(ready, 503, "state_store_unavailable").await;
    // The relay's own routes and pass-through routes keep working.
    assert_eq!(
        crate::util::get(&env.relay, "/api/mte-echo/up")
            .await
            .status(),
        200
    );
    assert_eq!(
        crate::util::get(&env.relay, "/echo?msg=plain")
            .await
            .status(),
        200
    );

    // Redis back (empty: no persistence): the client re-pairs on its own.
    let _redis = RedisServer::start_with(redis_port, &[]);
    let mut ok = false;
    for _ in 0..20 {
        if let Ok(resp) = c.get("/headers?back").send().await {
            assert_eq!(resp.status(), 200);
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(ok, "no recovery after Redis came back");
    assert_eq!(
        crate::util::get(&env.relay, "/api/mte-ready")
            .await
            .status(),
        200
    );
}
