//! `pqrelay-curl` (the built binary) against the real relay and the real demo upstream.

use std::process::{Command, Output};

use pqrelay_testkit::{pattern, sha256_hex, Relay, Upstream};

fn curl(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_pqrelay-curl"))
        .args(args)
        .output()
        .expect("cannot run pqrelay-curl");
    assert!(
        out.status.success(),
        "pqrelay-curl {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn curl_against_the_real_relay() {
    let upstream = Upstream::start();
    let relay = Relay::start(&upstream.url(), &[]);
    let login = relay.url("/login");
    let login_args = [
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
    let out = curl(&["-i", &relay.url("/echo?msg=hi")]);
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
        "> x-mte-relay: 1.",
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
    let out = curl(&["--data-binary", &arg, &relay.url("/upload")]);
    let _ = std::fs::remove_file(&file);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON answer");
    assert_eq!(v["size"], data.len());
    assert_eq!(v["sha256"], sha256_hex(&data));
}
