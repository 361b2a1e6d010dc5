//! Pingora's process flags and signals keep working: `-u` takes over a running relay's
//! sockets; SIGINT stops it at once.

use std::time::{Duration, Instant};

use pqrelay_testkit::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::machine;
use crate::util::{client, get, Relay, Upstream};

#[tokio::test]
async fn upgrade_flag_takes_over_without_dropping_the_port() {
    let old = Relay::start("http://127.0.0.1:9", &[]);
    assert_eq!(get(&old, "/api/mte-echo/old").await.status(), 200);

    let mut new = Relay::start_on(old.port, "http://127.0.0.1:9", &[], &["-u"]);
    // Tell the old process to hand its listening socket over (Pingora's upgrade signal).
    old.proc
        .signal(Signal::SIGQUIT)
        .expect("SIGQUIT the old relay");

    // The new process serves on the same port while the old one drains and exits.
    let mut old = old;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut served_by_new = false;
    while Instant::now() < deadline {
        assert_eq!(get(&new, "/api/mte-echo/during").await.status(), 200);
        served_by_new |= new.proc.log_text().contains("/api/mte-echo/during");
        if old.proc.exited() && served_by_new {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        served_by_new,
        "the new process never served:\n{}",
        new.proc.log_text()
    );
    assert!(old.proc.exited(), "the old process did not exit");
    assert!(!new.proc.exited());
}

/// A connection the old process accepted before it stopped accepting gets its first request
/// served even when the request's bytes arrive after that moment (within `HEADER_TIMEOUT_MS`).
/// Pingora's proxy on its own drops every connection still waiting for a head when its accept
/// loop ends; a client that had just connected lost its request without an answer (seen as a
/// rare request error in the test above).
#[tokio::test]
async fn connections_accepted_before_the_hand_over_keep_their_first_request() {
    let env = [("HEADER_TIMEOUT_MS", "15000")];
    let old = Relay::start("http://127.0.0.1:9", &env);
    let connect = || TcpStream::connect(("127.0.0.1", old.port));
    // Accepted by the old process (the only one accepting yet): one silent, one mid-head.
    let silent = connect().await.expect("connect");
    let mut half = connect().await.expect("connect");
    half.write_all(b"GET /api/mte-echo/half HTTP/1.1\r\nhost: relay\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let new = Relay::start_on(old.port, "http://127.0.0.1:9", &env, &["-u"]);
    old.proc
        .signal(Signal::SIGQUIT)
        .expect("SIGQUIT the old relay");
    let stopped = "stopped accepting connections";
    let log = old.proc.wait_log(stopped);
    assert!(log.contains(stopped), "{log}");
    // Past the moment Pingora would have dropped them.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let answer = |mut conn: TcpStream, rest: &'static [u8]| async move {
        conn.write_all(rest)
            .await
            .expect("write the rest of the head");
        let mut got = Vec::new();
        let read = conn.read_to_end(&mut got);
        let _ = tokio::time::timeout(Duration::from_secs(10), read).await;
        String::from_utf8_lossy(&got).into_owned()
    };
    let late = answer(
        silent,
        b"GET /api/mte-echo/silent HTTP/1.1\r\nhost: relay\r\n\r\n",
    )
    .await;
    assert!(late.starts_with("HTTP/1.1 200"), "silent: {late:?}\n{log}");
    assert!(late.contains("silent"), "{late}");
    let late = answer(half, b"\r\n").await;
    assert!(late.starts_with("HTTP/1.1 200"), "half: {late:?}\n{log}");
    drop(new);
}

/// SIGINT right after traffic on two threads ends the process within seconds. Pingora's own
/// fast shutdown could leave an accept loop retrying on a stopped runtime and logging
/// "Accept() failed" without end (see `lifecycle::Signals`). It did so in about one round in
/// five of this test (two runs without the fix failed in rounds 4 and 6), so it takes twelve.
#[tokio::test]
async fn sigint_after_traffic_ends_the_process_at_once() {
    let _turn = machine::timed();
    let upstream = Upstream::start();
    for round in 0..12 {
        let env = [("THREADS", "2"), ("PASS_THROUGH_ROUTES", "/echo")];
        let mut relay = Relay::start(&upstream.url(), &env);
        let http = client();
        let url = relay.url("/echo?msg=x");
        let sent = (0..200).map(|_| http.get(&url).send());
        for resp in futures::future::join_all(sent).await {
            assert_eq!(resp.expect("request").status(), 200);
        }
        relay.proc.signal(Signal::SIGINT).expect("SIGINT the relay");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !relay.proc.exited() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = relay.proc.log_text();
        let spins = log.matches("Accept() failed").count();
        assert!(
            relay.proc.exited() && spins == 0,
            "round {round}: exited {}, {spins} accept failures logged",
            relay.proc.exited()
        );
        assert!(log.contains("SIGINT received, exiting now"), "{log}");
    }
}
