//! The one retry on a new connection: a request written on a reused keep-alive connection that
//! the server closes before any answer byte is sealed again and sent once more; on a fresh
//! connection, or once answer bytes arrived, the error goes to the caller. A TCP forwarder in
//! front of the real relay cuts exactly one request of the armed kind; the tests send until
//! it did (whether hyper reuses a connection or opens one is its pool's choice).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pqrelay_client::pqrelay_protocol::RelayHeader;
use pqrelay_client::{Error, HttpOptions, RelayClient, StatusCode, WireEvent};
use pqrelay_testkit::{sha256_hex, Relay, Upstream};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::util::recorder;

/// What the forwarder does to the next request of a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cut {
    /// On a connection that already carried an answer: read the request's first bytes,
    /// forward nothing, close. What a server closing an idle connection does at the instant
    /// the client reuses it.
    ReusedUnanswered,
    /// The same on a new connection's first request.
    FreshUnanswered,
    /// On a connection that already carried an answer: forward the request, then only the
    /// first bytes of the answer, then close. The server did process the request.
    ReusedAfterAnswerBytes,
}

/// A TCP forwarder in front of the relay that can cut one request.
struct Cutter {
    port: u16,
    armed: Arc<Mutex<Option<Cut>>>,
    connections: Arc<AtomicUsize>,
    cuts: Arc<AtomicUsize>,
}

impl Cutter {
    async fn start(target_port: u16) -> Cutter {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cutter = Cutter {
            port,
            armed: Arc::default(),
            connections: Arc::default(),
            cuts: Arc::default(),
        };
        let (armed, connections, cuts) = (
            cutter.armed.clone(),
            cutter.connections.clone(),
            cutter.cuts.clone(),
        );
        tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                connections.fetch_add(1, Ordering::SeqCst);
                let Ok(up) = TcpStream::connect(("127.0.0.1", target_port)).await else {
                    continue;
                };
                tokio::spawn(forward(down, up, armed.clone(), cuts.clone()));
            }
        });
        cutter
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn arm(&self, cut: Cut) {
        *self.armed.lock().unwrap() = Some(cut);
    }
}

/// Forwards one connection both ways. A request starts when the client sends after the relay
/// did (or first); an answer starts when the relay sends after the client did.
async fn forward(
    mut down: TcpStream,
    mut up: TcpStream,
    armed: Arc<Mutex<Option<Cut>>>,
    cuts: Arc<AtomicUsize>,
) {
    let (mut dbuf, mut ubuf) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let mut client_turn = false;
    let mut answered = false;
    let mut cut_answer = false;
    loop {
        tokio::select! {
            r = down.read(&mut dbuf) => {
                let Ok(n @ 1..) = r else { return };
                if !client_turn {
                    client_turn = true;
                    let mut armed = armed.lock().unwrap();
                    match (*armed, answered) {
                        (Some(Cut::ReusedUnanswered), true) | (Some(Cut::FreshUnanswered), false) => {
                            *armed = None;
                            cuts.fetch_add(1, Ordering::SeqCst);
                            return; // both sockets dropped: nothing forwarded, closed
                        }
                        (Some(Cut::ReusedAfterAnswerBytes), true) => {
                            *armed = None;
                            cut_answer = true;
                        }
                        _ => {}
                    }
                }
                if up.write_all(&dbuf[..n]).await.is_err() {
                    return;
                }
            }
            r = up.read(&mut ubuf) => {
                let Ok(n @ 1..) = r else { return };
                client_turn = false;
                answered = true;
                if cut_answer {
                    cuts.fetch_add(1, Ordering::SeqCst);
                    let _ = down.write_all(&ubuf[..n.min(12)]).await;
                    return;
                }
                if down.write_all(&ubuf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A sealed POST of `body` to `/upload`; checks the upstream saw exactly `body`.
async fn upload(client: &RelayClient, body: &[u8]) -> Result<(), Error> {
    let resp = client.post("/upload").body(body.to_vec()).send().await?;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: serde_json::Value = resp.json().await?;
    assert_eq!(v["sha256"], sha256_hex(body), "{v}");
    assert_eq!(v["size"], body.len(), "{v}");
    Ok(())
}

/// Sends uploads until the forwarder made its cut (at most 20); returns the last result.
async fn upload_until_cut(client: &RelayClient, cutter: &Cutter) -> Result<(), Error> {
    for i in 0..20u8 {
        let result = upload(client, &vec![i; 3000 + usize::from(i)]).await;
        if cutter.cuts.load(Ordering::SeqCst) > 0 {
            return result;
        }
        result.expect("an uncut request succeeds");
    }
    panic!("the forwarder never saw a request of the armed kind");
}

/// The relay and upstream behind a forwarder, and a client of one pair through it.
async fn setup(options: HttpOptions) -> (Upstream, Relay, Cutter, RelayClient, Log) {
    let upstream = Upstream::start();
    let relay = Relay::start(&upstream.url(), &[]);
    let cutter = Cutter::start(relay.port).await;
    let (log, observer) = recorder();
    let client = RelayClient::builder(cutter.url())
        .pairs(1)
        .max_pairs(1)
        .http_options(options)
        .observer(observer)
        .build()
        .unwrap();
    (upstream, relay, cutter, client, log)
}

type Log = Arc<Mutex<Vec<WireEvent>>>;

/// The `x-mte-relay` headers of the exchange requests among `events`.
fn relay_headers(events: &[WireEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            WireEvent::Request { relay_header, .. } => Some(relay_header.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn reused_connection_closed_unanswered_is_resealed_and_sent_on_a_new_connection() {
    let (_upstream, _relay, cutter, client, log) = setup(HttpOptions::default()).await;
    upload(&client, b"warm-up").await.expect("warm-up");

    cutter.arm(Cut::ReusedUnanswered);
    upload_until_cut(&client, &cutter)
        .await
        .expect("the caller sees no error");
    let stats = client.stats();
    assert_eq!(stats.connection_retries, 1, "{stats:?}");
    assert_eq!(stats.retries, 0, "no relay error: {stats:?}");
    assert_eq!(stats.pool.pairs_repaired, 0, "{stats:?}");
    let events = log.lock().unwrap().clone();
    let retry = events
        .iter()
        .position(|e| {
            *e == WireEvent::ConnectionRetry {
                request: "exchange",
            }
        })
        .expect("a connection retry event");
    // Sealed again on the same pair with the next counter, not the same bytes (a replay).
    let sent = relay_headers(&events[..retry]);
    let again = relay_headers(&events[retry..]);
    let exchange = |h: &str| match RelayHeader::parse(h) {
        Ok(RelayHeader::Exchange(x)) => (x.pair_id, x.counter),
        other => panic!("not an exchange header: {other:?}"),
    };
    let (cut, resent) = (exchange(sent.last().unwrap()), exchange(&again[0]));
    assert_eq!((cut.0, cut.1 + 1), resent);
    // The pair still works: the relay accepted the skipped counter.
    upload(&client, b"after").await.expect("the next request");
}

#[tokio::test]
async fn reused_connection_closed_unanswered_retries_discovery() {
    let (_upstream, _relay, cutter, client, log) = setup(HttpOptions::default()).await;
    // A plain request through the client's own pool leaves a kept-alive connection for the
    // discovery to reuse (or the pairing, if hyper opened a new one for the discovery).
    let ready = http::Request::get(format!("{}/api/mte-ready", cutter.url()))
        .body(pqrelay_client::empty_body())
        .unwrap();
    let resp = client.http().request(ready).await.unwrap();
    http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap();
    cutter.arm(Cut::ReusedUnanswered);
    client.connect().await.expect("discovery and pairing");
    let cut_while_connecting = cutter.cuts.load(Ordering::SeqCst) > 0;
    if !cut_while_connecting {
        upload_until_cut(&client, &cutter).await.expect("no error");
    }
    assert_eq!(client.stats().connection_retries, 1);
    assert_eq!(client.stats().discoveries, 1);
    let retried = log.lock().unwrap().iter().find_map(|e| match e {
        WireEvent::ConnectionRetry { request } => Some(*request),
        _ => None,
    });
    let retried = retried.expect("a connection retry event");
    if cut_while_connecting {
        assert!(
            retried.starts_with("discovery") || retried.starts_with("pairing"),
            "{retried}"
        );
    }
}

#[tokio::test]
async fn fresh_connection_closed_unanswered_is_not_retried() {
    // No idle connection is kept: every request goes on a new one.
    let mut options = HttpOptions::default();
    options.max_idle_per_host = Some(0);
    let (_upstream, _relay, cutter, client, _log) = setup(options).await;
    upload(&client, b"warm-up").await.expect("warm-up");

    cutter.arm(Cut::FreshUnanswered);
    let err = upload_until_cut(&client, &cutter).await.unwrap_err();
    assert!(matches!(err, Error::Http { .. }), "{err}");
    assert_eq!(client.stats().connection_retries, 0);
}

#[tokio::test]
async fn reused_connection_closed_after_answer_bytes_is_not_retried() {
    let (_upstream, _relay, cutter, client, _log) = setup(HttpOptions::default()).await;
    upload(&client, b"warm-up").await.expect("warm-up");

    cutter.arm(Cut::ReusedAfterAnswerBytes);
    let err = upload_until_cut(&client, &cutter).await.unwrap_err();
    assert!(matches!(err, Error::Http { .. }), "{err}");
    assert_eq!(client.stats().connection_retries, 0);
}
