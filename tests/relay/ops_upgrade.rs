//! Zero-downtime upgrade (Pingora's `-u` + SIGQUIT), under load: several tasks of the Rust
//! client send sealed POSTs without pause and a 20 MiB sized upload trickles in over about 2 s
//! while a second relay process takes the listening socket over (`UPGRADE_SOCK`) and the first
//! one drains and exits. Zero caller-visible failures, with memory state (the new process has
//! no pairs: clients get 563, re-pair and retry on the re-paired pair; a request written on a
//! kept-alive connection at the instant the old process drops it is sealed again and sent on
//! a new connection — both invisible to the caller) and with Redis state (nothing to re-pair;
//! the draining relay says `Connection: close`). Also: the old process answers
//! `/api/mte-ready` with 503 `shutting_down` once it is handing over. (Both run in the foreground: Pingora writes
//! `PID_FILE` only with `-d`, which systemd's unit uses; `systemd/verify.sh` checks that unit.)

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use pqrelay_client::{Body, RelayClient};
use pqrelay_testkit::redis::RedisServer;
use pqrelay_testkit::{pattern, sha256_hex, Signal, TempDir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::faults::small_upload;
use crate::util::{free_port, machine, relay_command, Proc, Upstream, ORIGIN, SECRET};

/// Concurrent request loops.
const LOAD_TASKS: usize = 4;
/// The slow upload: `UPLOAD_CHUNKS` × `UPLOAD_CHUNK` bytes, one chunk every `UPLOAD_PAUSE`.
const UPLOAD_CHUNK: usize = 512 * 1024;
const UPLOAD_CHUNKS: usize = 40;
const UPLOAD_PAUSE: Duration = Duration::from_millis(50);

/// A relay's settings for one upgrade: port, pid file and upgrade socket in a fresh directory.
struct Setup {
    port: u16,
    dir: TempDir,
    env: Vec<(String, String)>,
}

impl Setup {
    fn new(upstream: &str, extra: &[(&str, String)]) -> Setup {
        let port = free_port();
        let dir = TempDir::new("pqrelay-upgrade").expect("temp dir");
        let mut env: Vec<(String, String)> = vec![
            ("UPSTREAM".into(), upstream.into()),
            ("CLIENT_ID_SECRET".into(), SECRET.into()),
            ("CORS_ORIGINS".into(), ORIGIN.into()),
            ("HOST".into(), "127.0.0.1".into()),
            ("PORT".into(), port.to_string()),
            ("THREADS".into(), "2".into()),
            (
                "PID_FILE".into(),
                dir.path().join("pqrelay.pid").display().to_string(),
            ),
            (
                "UPGRADE_SOCK".into(),
                dir.path().join("upgrade.sock").display().to_string(),
            ),
        ];
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        Setup { port, dir, env }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts a relay process with these settings (`-u`: take the sockets over).
    fn spawn(&self, tag: &str, args: &[&str]) -> Proc {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let log = self.dir.path().join(format!("{tag}.log"));
        Proc::spawn(tag, &mut relay_command(&env, args), log).expect("cannot start pqrelay")
    }

    fn sock(&self) -> PathBuf {
        self.dir.path().join("upgrade.sock")
    }
}

/// Waits for `path` to exist (up to 15 s).
fn wait_file(path: &Path, proc: &mut Proc) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !path.exists() {
        assert!(!proc.exited(), "new relay exited:\n{}", proc.log_text());
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the load loops saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    errors: Mutex<Vec<String>>,
}

/// One sealed POST of a small body to `/upload` (status, size and digest checked).
async fn one_request(c: &RelayClient, n: u64) -> Result<(), String> {
    small_upload(c, n)
        .await
        .map_err(|f| format!("{}: {}", f.kind, f.detail))
}

/// Sends requests without pause until `stop`.
async fn load(c: RelayClient, stop: Arc<AtomicBool>, tally: Arc<Tally>, task: u64) {
    let mut n = task;
    while !stop.load(Ordering::Relaxed) {
        match one_request(&c, n).await {
            Ok(()) => tally.ok.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                tally.errors.lock().unwrap().push(e);
                tally.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
        n += LOAD_TASKS as u64;
    }
}

/// The slow 20 MiB upload as a sized stream; returns the upstream's answer and the digest sent.
async fn slow_upload(c: RelayClient) -> (serde_json::Value, String) {
    let data: Vec<u8> = pattern(UPLOAD_CHUNK * UPLOAD_CHUNKS);
    let want = sha256_hex(&data);
    let chunks: Vec<Bytes> = data
        .chunks(UPLOAD_CHUNK)
        .map(Bytes::copy_from_slice)
        .collect();
    let stream = futures::stream::iter(chunks).then(|chunk| async move {
        tokio::time::sleep(UPLOAD_PAUSE).await;
        Ok::<_, std::io::Error>(chunk)
    });
    let resp = c
        .post("/upload")
        .header("content-type", "application/octet-stream")
        .body(Body::sized_stream(stream, data.len() as u64))
        .send()
        .await
        .expect("the upload's head");
    assert_eq!(resp.status(), 200, "upload status");
    (resp.json().await.expect("upload answer"), want)
}

/// `GET /api/mte-ready` on an already open connection; returns the raw response.
async fn ready_on(mut conn: tokio::net::TcpStream) -> String {
    conn.write_all(b"GET /api/mte-ready HTTP/1.1\r\nhost: relay\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs one upgrade under load and checks everything the module docs promise. Only
/// caller-visible failures count: the client's 563 → re-pair → retry and its one retry on a new
/// connection are successes (its stats show both).
async fn upgrade_under_load(extra: &[(&str, String)], memory: bool) {
    // Heavy: the two upgrades (and every other heavy test) run one after the other, as each
    // loads the machine on its own.
    let _turn = machine::heavy();
    let upstream = Upstream::start();
    let setup = Setup::new(&upstream.url(), extra);
    let mut old = setup.spawn("old", &[]);
    old.wait_port(setup.port).expect("the old relay listens");

    // The relay statuses the client recovered from: with Redis the upgrade itself must lose
    // no pair (no 563); a transient store error under load (565) may still re-pair one.
    let recovered = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = recovered.clone();
    let client = RelayClient::builder(setup.url())
        .pairs(LOAD_TASKS + 1)
        .observer(move |e| {
            if let pqrelay_client::WireEvent::Recovery { status, .. } = e {
                seen.lock().unwrap().push(*status);
            }
        })
        .build()
        .expect("client");
    one_request(&client, 0).await.expect("warm-up request");

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let loads: Vec<_> = (0..LOAD_TASKS as u64)
        .map(|t| tokio::spawn(load(client.clone(), stop.clone(), tally.clone(), t)))
        .collect();
    let upload = tokio::spawn(slow_upload(client.clone()));
    // A connection the old process accepted before the upgrade, used for readiness later.
    let held = tokio::net::TcpStream::connect(("127.0.0.1", setup.port))
        .await
        .expect("connect");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = tally.ok.load(Ordering::Relaxed);
    assert!(before > 0, "no load before the upgrade");

    // The upgrade: the new process waits on the upgrade socket, the old one hands over.
    let mut new = setup.spawn("new", &["-u"]);
    wait_file(&setup.sock(), &mut new);
    old.signal(Signal::SIGQUIT).expect("SIGQUIT the old relay");

    // Handing over: the old process is no longer ready.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answer = ready_on(held).await;
    assert!(
        answer.starts_with("HTTP/1.1 503") && answer.contains("shutting_down"),
        "{answer}\n{}",
        old.log_text()
    );

    // The old process drains and exits (5 s of shared accepting, then its grace period).
    let deadline = Instant::now() + Duration::from_secs(40);
    while !old.exited() {
        assert!(
            Instant::now() < deadline,
            "old relay never exited:\n{}",
            old.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after_exit = tally.ok.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for l in loads {
        l.await.expect("load task");
    }
    let (answer, want) = upload.await.expect("upload task");

    let ok = tally.ok.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    let errors = tally.errors.lock().unwrap().clone();
    let stats = client.stats();
    let state = if memory { "memory" } else { "Redis" };
    eprintln!("upgrade ({state} state): {ok} requests ok, {failed} failed; client stats {stats:?}");
    assert_eq!(failed, 0, "caller-visible failures: {errors:?}");
    assert!(
        ok > after_exit,
        "no request served after the old process exited"
    );
    // Memory state: the new process started empty, so pairs were renewed (563); Redis: no
    // state was lost.
    let recovered = recovered.lock().unwrap().clone();
    assert_eq!(recovered.contains(&563), memory, "{recovered:?} {stats:?}");
    if memory {
        assert!(stats.pool.pairs_repaired > 0, "{stats:?}");
    }
    assert_eq!(answer["size"], UPLOAD_CHUNK * UPLOAD_CHUNKS, "{answer}");
    assert_eq!(answer["sha256"], want.as_str(), "{answer}");

    // The new process serves, is ready, and owns the pid file.
    assert!(!new.exited(), "{}", new.log_text());
    let resp = crate::util::client()
        .get(format!("{}/api/mte-ready", setup.url()))
        .send()
        .await
        .expect("readiness");
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upgrade_under_load_with_memory_state() {
    upgrade_under_load(&[], true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upgrade_under_load_with_redis_state() {
    let redis = RedisServer::start();
    upgrade_under_load(
        &[
            ("REDIS_URL", redis.url()),
            ("STATE_SECRET", "state-secret-0123456789abcdefghij".into()),
        ],
        false,
    )
    .await;
}
