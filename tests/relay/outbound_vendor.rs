//! The vendor's server-to-server examples (issue 19), sent as the vendor's collection sends them:
//! plain requests to relay A in outbound mode, sealed by A to relay B, opened by B for the demo
//! upstream, which tells what it received. Every step checks the upstream's view: method, path,
//! query, header names and values, body bytes and framing.

use pqrelay_testkit::{pattern, sha256_hex};

use crate::util::{client, Relay, Upstream};

const TOKEN: &str = "vendor-collection-token-0123456789";

/// The demo upstream, relay B in front of it, relay A allowed to reach B.
struct Chain {
    _upstream: Upstream,
    _b: Relay,
    b_url: String,
    a: Relay,
}

impl Chain {
    fn start() -> Chain {
        let upstream = Upstream::start();
        let b = Relay::start(&upstream.url(), &[]);
        let b_url = b.url("").trim_end_matches('/').to_owned();
        let a = Relay::start(
            &upstream.url(),
            &[("OUTBOUND_TOKEN", TOKEN), ("OUTBOUND_UPSTREAMS", &b_url)],
        );
        Chain {
            _upstream: upstream,
            _b: b,
            b_url,
            a,
        }
    }

    fn out(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        client()
            .request(method, self.a.url(path))
            .header("x-mte-outbound-token", TOKEN)
            .header("x-mte-upstream", &self.b_url)
    }
}

async fn json(resp: reqwest::Response) -> serde_json::Value {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vendors_server_to_server_collection_arrives_as_sent() {
    let c = Chain::start();
    use reqwest::Method;

    // Patients list: a GET with a query.
    let v = json(
        c.out(Method::GET, "/echo?msg=patients")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(v["echo"], "patients", "{v}");

    // Login: a JSON POST; the upstream's cookies come back.
    let resp = c
        .out(Method::POST, "/login")
        .header("content-type", "application/json")
        .body(r#"{"email":"jane@example.com","password":"P@ssw0rd!"}"#)
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("set-cookie").is_some(), "{resp:?}");
    let v = json(resp).await;
    assert!(v.to_string().contains("jane@example.com"), "{v}");

    // Credit card and a multipart file upload: the bytes arrive as sent.
    let card = br#"{"cardNumber":"4111111111111111","expiry":"12/29","cvv":"123"}"#.to_vec();
    let mut multipart = b"--XyZ\r\ncontent-disposition: form-data; name=\"file\"; \
filename=\"scan.bin\"\r\ncontent-type: application/octet-stream\r\n\r\n"
        .to_vec();
    multipart.extend(pattern(200_000));
    multipart.extend_from_slice(b"\r\n--XyZ--\r\n");
    for (content_type, body) in [
        ("application/json", card),
        ("multipart/form-data; boundary=XyZ", multipart),
    ] {
        let want = sha256_hex(&body);
        let len = body.len();
        let v = json(
            c.out(Method::POST, "/upload")
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (v["size"].as_u64(), v["sha256"].as_str()),
            (Some(len as u64), Some(&*want))
        );
    }

    // Custom headers arrive with their names and values; the relays' own headers do not.
    let v = json(
        c.out(Method::GET, "/headers")
            .header("x-custom-header", "custom value")
            .header("x-api-version", "2024-01")
            .header("authorization", "Bearer abc.def")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let h = &v["headers"];
    assert_eq!(h["x-custom-header"], "custom value", "{v}");
    assert_eq!(h["x-api-version"], "2024-01", "{v}");
    assert_eq!(h["authorization"], "Bearer abc.def", "{v}");
    assert!(
        !h.as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("x-mte-")),
        "{v}"
    );

    // An empty POST keeps its framing: content-length 0, no invented content type, not chunked.
    let v = json(
        c.out(Method::POST, "/headers")
            .header("content-length", "0")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(v["method"], "POST", "{v}");
    assert_eq!(v["headers"]["content-length"], "0", "{v}");
    assert!(v["headers"].get("content-type").is_none(), "{v}");
    assert!(v["headers"].get("transfer-encoding").is_none(), "{v}");

    // One Accept-Encoding rule in both header modes: the upstream answers identity.
    for mode in ["true", "false"] {
        let v = json(
            c.out(Method::GET, "/headers")
                .header("x-mte-encode-headers", mode)
                .header("accept-encoding", "gzip, br")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(v["headers"]["accept-encoding"], "identity", "{mode}: {v}");
    }

    // The vendor's option values: MTE/MKE accepted, boolean spellings as the vendor reads them,
    // anything else 400 naming the accepted values.
    for (name, value) in [
        ("x-mte-encode-type", "MKE"),
        ("x-mte-encode-type", "mte"),
        ("x-mte-encode-headers", "off"),
        ("x-mte-encode-headers", "0"),
        ("x-mte-encode-url", "no"),
    ] {
        let resp = c
            .out(Method::GET, "/echo?msg=option")
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{name}: {value}");
    }
    let resp = c
        .out(Method::GET, "/echo?msg=option")
        .header("x-mte-encode-url", "maybe")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let text = resp.text().await.unwrap();
    assert!(text.contains("true") && text.contains("false"), "{text}");

    // Echo and discovery on the remote relay, as the collection's last steps call them.
    let v = json(
        client()
            .get(format!("{}/api/mte-echo", c.b_url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(v["echo"], true, "{v}");
    let resp = client()
        .head(format!("{}/api/mte-relay", c.b_url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-mte-relay-keys"));
}
