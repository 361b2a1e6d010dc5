//! The `pqrelay-curl` argument parser.

use clap::Parser as _;
use pqrelay_client::curl::{exit_code, parse_header, Args, BodySource};
use pqrelay_client::{Error, Method};

fn parse(args: &[&str]) -> Args {
    Args::try_parse_from(std::iter::once("pqrelay-curl").chain(args.iter().copied())).unwrap()
}

#[test]
fn curl_defaults_to_get_without_body() {
    let a = parse(&["http://127.0.0.1:8080/api/x?y=1"]);
    assert_eq!(a.method().unwrap(), Method::GET);
    assert_eq!(a.body_source(), None);
    assert_eq!(a.pairs, 5);
    assert!(!a.no_encode_url && !a.include && !a.verbose);
}

#[test]
fn curl_data_implies_post() {
    let a = parse(&["-d", "a=1", "http://h/x"]);
    assert_eq!(a.method().unwrap(), Method::POST);
    assert_eq!(a.body_source(), Some(BodySource::Inline(b"a=1".to_vec())));
}

#[test]
fn curl_data_binary_file_and_stdin() {
    let a = parse(&["--data-binary", "@body.bin", "http://h/x"]);
    assert_eq!(a.body_source(), Some(BodySource::File("body.bin".into())));
    let a = parse(&["--data-binary", "@-", "-X", "PUT", "http://h/x"]);
    assert_eq!(a.body_source(), Some(BodySource::Stdin));
    assert_eq!(a.method().unwrap(), Method::PUT);
}

#[test]
fn curl_all_flags() {
    let a = parse(&[
        "-X",
        "PATCH",
        "-H",
        "content-type: application/json",
        "-H",
        "x-a:b",
        "-o",
        "out.bin",
        "-i",
        "-v",
        "--pairs",
        "3",
        "--no-encode-url",
        "--cacert",
        "ca.pem",
        "--pin",
        "sha256:A",
        "--pin",
        "sha256:B",
        "--known-relays",
        "known",
        "https://h:1/p",
    ]);
    assert_eq!(a.method().unwrap(), Method::PATCH);
    let h = a.parsed_headers().unwrap();
    assert_eq!(h[0].0, "content-type");
    assert_eq!(h[0].1, "application/json");
    assert_eq!((h[1].0.as_str(), h[1].1.to_str().unwrap()), ("x-a", "b"));
    assert_eq!(a.output.as_deref(), Some(std::path::Path::new("out.bin")));
    assert!(a.include && a.verbose && a.no_encode_url);
    assert_eq!(a.pairs, 3);
    assert_eq!(a.cacert.as_deref(), Some(std::path::Path::new("ca.pem")));
    assert_eq!(a.pins, ["sha256:A", "sha256:B"]);
    assert_eq!(a.known_relays_file(), Some("known".into()));
}

#[test]
fn curl_exit_codes_and_help() {
    let unknown = Error::OutcomeUnknown {
        reason: "cut".into(),
    };
    let untrusted = Error::RelayKeyNotTrusted {
        origin: "http://h:80".into(),
        pinned: true,
        trusted: vec![],
        offered: vec![],
    };
    assert_eq!(exit_code(&unknown), 4);
    assert_eq!(exit_code(&untrusted), 3);
    assert_eq!(exit_code(&Error::InvalidRequest("x".into())), 2);
    assert_eq!(exit_code(&Error::BadResponse("x")), 1);
    let help = <Args as clap::CommandFactory>::command()
        .render_long_help()
        .to_string();
    for needle in [
        "--pin",
        "--known-relays",
        "~/.config/pqrelay/known_relays",
        "XDG_CONFIG_HOME",
        "3 the relay is not trusted",
        "4 outcome unknown",
    ] {
        assert!(
            help.contains(needle),
            "{needle:?} missing in --help:\n{help}"
        );
    }
}

#[test]
fn curl_rejects_bad_input() {
    assert!(
        Args::try_parse_from(["pqrelay-curl"]).is_err(),
        "URL is required"
    );
    assert!(Args::try_parse_from(["pqrelay-curl", "-d", "a", "--data-binary", "b", "u"]).is_err());
    assert!(parse_header("no colon").is_err());
    assert!(parse_header("bad name: v").is_err());
    assert!(parse(&["-X", "BAD METHOD", "u"]).method().is_err());
}

#[test]
fn curl_split_url() {
    let (base, path) = pqrelay_client::split_url("http://127.0.0.1:8080/api/x?y=1").unwrap();
    assert_eq!(
        (base.as_str(), path.as_str()),
        ("http://127.0.0.1:8080", "/api/x?y=1")
    );
    let (_, path) = pqrelay_client::split_url("https://h").unwrap();
    assert_eq!(path, "/");
    assert!(pqrelay_client::split_url("/relative").is_err());
}
