//! Upstreams: a round-robin list with one member down, and an https upstream with a
//! self-signed certificate generated here (certificate checks stay on).

use std::collections::HashSet;
use std::sync::Arc;

use crate::util::{client, expect_error, free_port, get, Relay, Upstream};

const PASS: (&str, &str) = ("PASS_THROUGH_ROUTES", "/headers,/upload");

async fn upstream_host_seen(relay: &Relay) -> String {
    let resp = get(relay, "/headers").await;
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    v["headers"]["host"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_list_is_balanced_round_robin() {
    let a = Upstream::start();
    let b = Upstream::start();
    let relay = Relay::start(&format!("{},{}", a.url(), b.url()), &[PASS]);
    let mut seen = HashSet::new();
    for _ in 0..6 {
        seen.insert(upstream_host_seen(&relay).await);
    }
    let expected: HashSet<String> = [a.port, b.port]
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn one_upstream_down_loses_no_request() {
    let up = Upstream::start();
    let down_port = free_port(); // nothing listens here
    let relay = Relay::start(
        &format!("http://127.0.0.1:{down_port},{}", up.url()),
        &[PASS],
    );
    // Before and after the health check has noticed, every request succeeds.
    for i in 0..20 {
        let host = upstream_host_seen(&relay).await;
        assert_eq!(host, format!("127.0.0.1:{}", up.port), "request {i}");
        if i == 9 {
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        }
    }
}

#[tokio::test]
async fn all_upstreams_down_is_a_502_json_error() {
    let relay = Relay::start(&format!("http://127.0.0.1:{}", free_port()), &[PASS]);
    let resp = get(&relay, "/headers").await;
    expect_error(resp, 502, "upstream_unavailable").await;
}

/// An https demo upstream on `localhost` with a fresh self-signed certificate.
/// Returns its port and the certificate's PEM.
async fn start_tls_upstream() -> (u16, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let pem = cert.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    pqrelay::demo::serve_connection(tls).await;
                }
            });
        }
    });
    (port, pem)
}

#[tokio::test]
async fn an_https_upstream_with_sni_and_certificate_checks() {
    let (port, pem) = start_tls_upstream().await;
    let dir = std::env::temp_dir().join(format!("pqrelay-tls-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &pem).unwrap();
    let upstream = format!("https://localhost:{port}");

    // Trusting the generated certificate: proxied over TLS, Host names the upstream.
    let relay = Relay::start(
        &upstream,
        &[PASS, ("UPSTREAM_CA_FILE", ca.to_str().unwrap())],
    );
    let host = upstream_host_seen(&relay).await;
    assert_eq!(host, format!("localhost:{port}"));
    let resp = client()
        .post(relay.url("/upload"))
        .body(vec![7u8; 200_000])
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["size"], 200_000);

    // Without that CA the certificate does not verify: the relay refuses to proxy.
    let strict = Relay::start(&upstream, &[PASS]);
    let resp = get(&strict, "/headers").await;
    assert!(resp.status().as_u16() == 502, "{}", resp.status());

    // A certificate for another name fails the hostname check even with the CA trusted.
    let wrong_name = Relay::start(
        &format!("https://127.0.0.1:{port}"),
        &[PASS, ("UPSTREAM_CA_FILE", ca.to_str().unwrap())],
    );
    assert_eq!(get(&wrong_name, "/headers").await.status(), 502);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn upstream_connections_are_reused() {
    let up = Upstream::start();
    let relay = Relay::start(&up.url(), &[PASS]);
    let mut last = 0;
    for _ in 0..3 {
        // A new client connection each time: only the relay's pool can reuse the upstream's.
        let resp = reqwest::Client::new()
            .get(relay.url("/headers"))
            .send()
            .await
            .unwrap();
        let v: serde_json::Value = resp.json().await.unwrap();
        last = v["connection_request"].as_u64().unwrap();
    }
    assert_eq!(last, 3, "the three requests shared one upstream connection");
}
