//! Pingora's process flags keep working: `-u` takes over a running relay's sockets.

mod common;

use std::time::{Duration, Instant};

use common::{get, Relay};

#[tokio::test]
async fn upgrade_flag_takes_over_without_dropping_the_port() {
    let old = Relay::start("http://127.0.0.1:9", &[]);
    assert_eq!(get(&old, "/api/mte-echo/old").await.status(), 200);

    let mut new = Relay::start_on(old.port, "http://127.0.0.1:9", &[], &["-u"]);
    // Tell the old process to hand its listening socket over (Pingora's upgrade signal).
    let status = std::process::Command::new("kill")
        .args(["-QUIT", &old.proc.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

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
