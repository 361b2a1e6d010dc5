//! `pqrelay-curl` (the built binary) against the real relay and the real demo upstream, and
//! through `pqrelay-attacker` (PROTOCOL.md §16): exit status 3 when the relay is not trusted
//! (`--pin`, `--known-relays`), 4 when the outcome of a POST is unknown. Every run keeps its
//! known relays in a scratch file, never in the user's.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pqrelay_client::curl::{EXIT_NOT_TRUSTED, EXIT_OUTCOME_UNKNOWN};
use pqrelay_testkit::{pattern, sha256_hex, Attacker, CountingUpstream, Relay, TempDir, Upstream};

/// Runs `pqrelay-curl` with `args`, expecting exit status `code`.
fn curl_exits(code: i32, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_pqrelay-curl"))
        .args(args)
        .output()
        .expect("cannot run pqrelay-curl");
    let stderr = text(&out.stderr);
    let status = out.status.code();
    assert_eq!(status, Some(code), "pqrelay-curl {args:?}:\n{stderr}");
    out
}

/// Runs `pqrelay-curl` with `args`, expecting success.
fn curl(args: &[&str]) -> Output {
    curl_exits(0, args)
}

/// Runs `pqrelay-curl` with `args`, expecting exit status `code`; returns its standard error.
fn curl_fails(code: i32, args: &[&str]) -> String {
    text(&curl_exits(code, args).stderr)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A scratch directory and the path of a known-relays file in it (never the user's).
fn scratch_known_relays(name: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(name).unwrap();
    let known = dir.path().join("known_relays");
    (dir, known)
}

#[test]
fn curl_against_the_real_relay() {
    let upstream = Upstream::start();
    let relay = Relay::start(&upstream.url(), &[]);
    let (_dir, known) = scratch_known_relays("pqrelay-curl");
    let known = known.to_str().unwrap();
    let login = relay.url("/login");
    let login_args = [
        "--known-relays",
        known,
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "-d",
        r#"{"username":"a","password":"b"}"#,
        &login,
    ];

    // The upstream's answer, decoded, on standard output.
    let out = curl(&login_args);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON answer");
    assert_eq!(v["message"], "Welcome, a!");

    // -i: the decoded status line and headers (sealed on the wire) before the body.
    let out = curl(&["--known-relays", known, "-i", &relay.url("/echo?msg=hi")]);
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("HTTP/1.1 200 OK\r\n"), "{stdout}");
    let (head, body) = stdout.split_once("\r\n\r\n").expect("head and body");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(body.contains(r#""echo":"hi""#), "{body}");

    // -v: the wire on standard error, without the plaintext.
    let out = curl(&[&["-v"][..], &login_args].concat());
    let stderr = text(&out.stderr);
    for wire in [
        "* discovery: HEAD /api/mte-relay -> 200",
        "* pairing: POST /api/mte-pair",
        "> POST /",
        "> x-mte-relay: 2.",
        "> x-mte-relay-eh: ",
        "< 200",
        "< x-mte-relay-eh: ",
    ] {
        assert!(stderr.contains(wire), "{wire:?} missing in:\n{stderr}");
    }
    for plain in [
        "/login",
        "username",
        "password",
        "Welcome",
        "application/json",
    ] {
        assert!(
            !stderr.contains(plain),
            "{plain:?} shown on the wire:\n{stderr}"
        );
    }
    assert!(text(&out.stdout).contains("Welcome, a!"));

    // --data-binary @file: 3 MiB streamed from the file (sized), hashed by the upstream.
    let data = pattern(3 * 1024 * 1024);
    let file = std::env::temp_dir().join(format!("pqrelay-curl-upload-{}", std::process::id()));
    std::fs::write(&file, &data).unwrap();
    let arg = format!("@{}", file.display());
    let out = curl(&[
        "--known-relays",
        known,
        "--data-binary",
        &arg,
        &relay.url("/upload"),
    ]);
    let _ = std::fs::remove_file(&file);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON answer");
    assert_eq!(v["size"], data.len());
    assert_eq!(v["sha256"], sha256_hex(&data));
}

/// The fingerprints stored for `origin` in a known-relays file.
fn known_keys(file: &Path, origin: &str) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let line = text.lines().find(|l| l.starts_with(&format!("{origin} ")));
    let line = line.unwrap_or_else(|| panic!("no line for {origin}:\n{text}"));
    line.split_whitespace().nth(2).unwrap().to_owned()
}

#[test]
fn curl_through_an_attacker_exits_3_when_not_trusted_and_4_when_the_outcome_is_unknown() {
    let (dir, known) = scratch_known_relays("pqrelay-curl-attacker");
    let upstream = CountingUpstream::start();
    let relay = Relay::start(&upstream.url(), &[]);
    // A clean contact stores the relay's key.
    let known_arg = known.to_str().unwrap();
    curl(&["--known-relays", known_arg, &relay.url("/count/clean")]);
    let key = known_keys(&known, &relay.url(""));
    assert!(key.starts_with("sha256:") && !key.contains(','), "{key}");
    // Pinned runs keep their client ids here.
    let scratch = dir.path().join("scratch");
    let pinned = ["--known-relays", scratch.to_str().unwrap(), "--pin", &key];

    // substitute-key: refused when pinned, and when the known-relays file holds the relay's key
    // for this origin (the clean contact's line, moved to the attacker's address).
    let attacker = Attacker::start(&relay.url(""), "substitute-key", 1);
    let url = format!("{}/count/substituted", attacker.url());
    let stderr = curl_fails(
        EXIT_NOT_TRUSTED,
        &[&pinned[..], &["-d", "x", &url]].concat(),
    );
    assert!(
        stderr.contains(&key) && stderr.contains("--pin"),
        "{stderr}"
    );
    let moved = dir.path().join("moved");
    let text = std::fs::read_to_string(&known).unwrap();
    std::fs::write(&moved, text.replace(&relay.url(""), &attacker.url())).unwrap();
    let moved_arg = moved.to_str().unwrap();
    let stderr = curl_fails(EXIT_NOT_TRUSTED, &["--known-relays", moved_arg, &url]);
    assert!(
        stderr.contains(&key) && stderr.contains(moved_arg),
        "{stderr}"
    );
    assert_eq!(known_keys(&moved, &attacker.url()), key, "the file is kept");

    // answer-pairing: a hard error even at first contact.
    let attacker = Attacker::start(&relay.url(""), "answer-pairing", 1);
    let fresh = dir.path().join("fresh");
    let url = format!("{}/count/answered", attacker.url());
    let stderr = curl_fails(
        EXIT_NOT_TRUSTED,
        &["--known-relays", fresh.to_str().unwrap(), "-d", "x", &url],
    );
    assert!(stderr.contains("not confirmed"), "{stderr}");
    for name in ["substituted", "answered"] {
        assert_eq!(upstream.count(name), 0, "{name}");
    }

    // forge-error, cut: the POST ran once, and its outcome is unknown to the caller.
    for mode in ["forge-error", "cut"] {
        let attacker = Attacker::start(&relay.url(""), mode, 1);
        let name = format!("curl-{mode}");
        let url = format!("{}/count/{name}", attacker.url());
        let stderr = curl_fails(
            EXIT_OUTCOME_UNKNOWN,
            &[&pinned[..], &["-d", "x", &url]].concat(),
        );
        assert!(stderr.contains("outcome unknown"), "{mode}: {stderr}");
        assert_eq!(upstream.count(&name), 1, "{mode}: ran once");
    }

    // add-headers: what reaches the upstream is what the client sealed.
    let attacker = Attacker::start(&relay.url(""), "add-headers", 1);
    let url = format!("{}/headers", attacker.url());
    let out = curl(&[&pinned[..], &["-H", "x-caller: sealed", &url]].concat());
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON answer");
    assert_eq!(seen["x-caller"], "sealed", "{seen}");
    for added in ["x-http-method-override", "x-original-url", "x-attacker"] {
        assert!(
            seen.get(added).is_none(),
            "{added} reached the upstream: {seen}"
        );
    }
}
