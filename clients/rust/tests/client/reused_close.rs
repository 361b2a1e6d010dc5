//! A connection lost before an answer (§12 outcome 3), whether the relay saw the request or
//! not: an idempotent request is sealed again and sent once more on a new connection; a POST
//! is sent once more on the same pair with counter `n + 1` and flag `retry`, which the relay
//! runs only if the first attempt never reached it (else it answers `564 retry_refused` and
//! the caller gets outcome unknown). Discovery and pairing (no upstream effect) are sent again
//! when a reused keep-alive connection closed before any answer byte. A TCP forwarder in front
//! of the real relay cuts exactly one request of the armed kind; the tests send until it did
//! (whether hyper reuses a connection or opens one is its pool's choice). The counting
//! upstream says how many times each request ran.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pqrelay_client::pqrelay_protocol::Flags;
use pqrelay_client::{Error, HttpOptions, Method, RelayClient, StatusCode, WireEvent};
use pqrelay_testkit::{CountingUpstream, Relay};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::util::{error_statuses, recorder, sent_exchanges};

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

/// A sealed `method` with a body to `/count/<name>`: the upstream's count of it.
async fn send(client: &RelayClient, method: &Method, name: &str) -> Result<u64, Error> {
    let path = format!("/count/{name}");
    let body = vec![7u8; 3000];
    let resp = client
        .request(method.clone(), path)
        .body(body)
        .send()
        .await?;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: serde_json::Value = resp.json().await?;
    Ok(v["count"].as_u64().expect("a count"))
}

/// [`send`], expecting the upstream's first run.
async fn send_once(client: &RelayClient, method: &Method, name: &str) {
    let count = send(client, method, name).await.expect("no error");
    assert_eq!(count, 1, "{name}");
}

/// Sends requests (each to its own `/count/<name>-<i>`) until the forwarder made its cut (at
/// most 20); returns the last result and the name it was sent to.
async fn send_until_cut(
    client: &RelayClient,
    cutter: &Cutter,
    method: Method,
    name: &str,
) -> (Result<u64, Error>, String) {
    for i in 0..20u8 {
        let name = format!("{name}-{i}");
        let result = send(client, &method, &name).await;
        if cutter.cuts.load(Ordering::SeqCst) > 0 {
            return (result, name);
        }
        assert_eq!(result.expect("an uncut request succeeds"), 1);
    }
    panic!("the forwarder never saw a request of the armed kind");
}

/// The relay and counting upstream behind a forwarder, and a client of one pair through it.
async fn setup(options: HttpOptions) -> (CountingUpstream, Relay, Cutter, RelayClient, Log) {
    let upstream = CountingUpstream::start();
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

/// The last two exchange attempts: the cut one and the one sent after it, on the same pair at
/// the next counter; returns whether the second carries flag `retry` (the first never does).
fn sent_again_on_the_same_pair(log: &Log) -> bool {
    let sent = sent_exchanges(&log.lock().unwrap());
    let [.., cut, again] = &sent[..] else {
        panic!("two attempts: {sent:?}");
    };
    assert_eq!(
        (&again.pair_id, again.counter),
        (&cut.pair_id, cut.counter + 1),
        "sealed again on the same pair with the next counter, not the same bytes (a replay)"
    );
    assert!(!cut.flags.contains(Flags::RETRY));
    again.flags.contains(Flags::RETRY)
}

/// A POST whose connection `cut` closes unanswered (the relay never saw it): sent once more
/// on its pair with flag `retry`, which the relay runs; the upstream ran it once.
async fn post_cut_unanswered_runs_once_on_its_retry(options: HttpOptions, cut: Cut) {
    let (upstream, _relay, cutter, client, log) = setup(options).await;
    send_once(&client, &Method::POST, "warm-up").await;
    cutter.arm(cut);
    let (result, name) = send_until_cut(&client, &cutter, Method::POST, "post").await;
    let count = result.expect("the relay never saw the first attempt: it runs the retry");
    assert!(sent_again_on_the_same_pair(&log), "flag retry");
    assert_eq!((count, upstream.count(&name)), (1, 1));
    let stats = client.stats();
    let resends = (
        stats.retry_attempts,
        stats.connection_retries,
        stats.retries,
    );
    assert_eq!(resends, (1, 0, 0), "{stats:?}");
    assert_eq!(stats.outcomes_unknown, 0, "{stats:?}");
    assert_eq!(stats.pool.pairs_repaired, 0, "{stats:?}");
    assert!(error_statuses(&log.lock().unwrap()).is_empty());
    // The pair still works: the relay spent the skipped counter.
    send_once(&client, &Method::POST, "after").await;
}

#[tokio::test]
async fn reused_connection_closed_unanswered_post_is_sent_again_with_the_retry_flag_and_runs_once()
{
    post_cut_unanswered_runs_once_on_its_retry(HttpOptions::default(), Cut::ReusedUnanswered).await;
}

#[tokio::test]
async fn reused_connection_closed_unanswered_put_is_resealed_and_sent_on_a_new_connection() {
    let (upstream, _relay, cutter, client, log) = setup(HttpOptions::default()).await;
    send_once(&client, &Method::POST, "warm-up").await;
    cutter.arm(Cut::ReusedUnanswered);
    let (result, name) = send_until_cut(&client, &cutter, Method::PUT, "put").await;
    let count = result.expect("the caller sees no error");
    assert!(!sent_again_on_the_same_pair(&log), "no flag retry");
    assert_eq!((count, upstream.count(&name)), (1, 1));
    let stats = client.stats();
    assert_eq!(
        (stats.connection_retries, stats.retry_attempts),
        (1, 0),
        "{stats:?}"
    );
    assert_eq!(stats.retries, 0, "no relay error: {stats:?}");
    let events = log.lock().unwrap().clone();
    assert!(events.contains(&WireEvent::ConnectionRetry {
        request: "exchange"
    }));
    send_once(&client, &Method::PUT, "after").await;
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
        // An idempotent exchange then: sent again on a new connection as well.
        let (result, _) = send_until_cut(&client, &cutter, Method::PUT, "put").await;
        assert_eq!(result.expect("no error"), 1);
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
async fn fresh_connection_closed_unanswered_post_is_sent_again_with_the_retry_flag_and_runs_once() {
    // No idle connection is kept: every request goes on a new one. Version 2 does not tell a
    // fresh connection from a reused one: the `retry` flag makes either safe.
    let mut options = HttpOptions::default();
    options.max_idle_per_host = Some(0);
    post_cut_unanswered_runs_once_on_its_retry(options, Cut::FreshUnanswered).await;
}

#[tokio::test]
async fn connection_closed_after_answer_bytes_post_is_refused_as_a_retry_and_ends_in_outcome_unknown(
) {
    let (upstream, _relay, cutter, client, log) = setup(HttpOptions::default()).await;
    send_once(&client, &Method::POST, "warm-up").await;
    cutter.arm(Cut::ReusedAfterAnswerBytes);
    let (result, name) = send_until_cut(&client, &cutter, Method::POST, "post").await;
    // The relay ran the first attempt: it refuses the retry (564 retry_refused, authenticated)
    // and the caller learns that the request may have run.
    let err = result.unwrap_err();
    assert!(matches!(err, Error::OutcomeUnknown { .. }), "{err:?}");
    assert!(err.to_string().contains("retry_refused"), "{err}");
    assert!(sent_again_on_the_same_pair(&log), "flag retry");
    assert_eq!(error_statuses(&log.lock().unwrap()), [564]);
    assert_eq!(upstream.count(&name), 1, "ran once, never twice");
    let stats = client.stats();
    assert_eq!(
        (stats.retry_attempts, stats.outcomes_unknown),
        (1, 1),
        "{stats:?}"
    );
    assert_eq!(
        stats.pool.pairs_repaired, 0,
        "retry_refused keeps the pair: {stats:?}"
    );
    send_once(&client, &Method::POST, "after").await;
}

#[tokio::test]
async fn connection_closed_after_answer_bytes_put_is_sent_again_and_runs_twice() {
    let (upstream, _relay, cutter, client, log) = setup(HttpOptions::default()).await;
    send_once(&client, &Method::POST, "warm-up").await;
    cutter.arm(Cut::ReusedAfterAnswerBytes);
    let (result, name) = send_until_cut(&client, &cutter, Method::PUT, "put").await;
    // Idempotent: sent again whatever became of the first (a second run has no further
    // effect by definition); the answer is the second run's.
    let count = result.expect("the caller sees no error");
    assert!(!sent_again_on_the_same_pair(&log), "no flag retry");
    assert_eq!((count, upstream.count(&name)), (2, 2));
    assert_eq!(client.stats().connection_retries, 1);
}
