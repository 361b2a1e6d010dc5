//! Configuration: every error message, warnings, masking, the conf/ examples, precedence and
//! the Pingora flags — all through the real binary.

use crate::util::{run, Relay, Upstream, ORIGIN, SECRET};

const BASE: &[(&str, &str)] = &[
    ("UPSTREAM", "http://127.0.0.1:9"),
    ("CLIENT_ID_SECRET", SECRET),
    ("CORS_ORIGINS", ORIGIN),
];

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut env: Vec<_> = BASE
        .iter()
        .filter(|(k, _)| !extra.iter().any(|(ek, _)| ek == k))
        .copied()
        .collect();
    env.extend_from_slice(extra);
    env
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn conf(name: &str) -> String {
    format!("{}/conf/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn missing_required_values_exit_2_with_one_line_each() {
    let out = run(&[], &["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let problems: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("config error:"))
        .collect();
    assert_eq!(problems.len(), 3, "{err}");
    for (key, var) in [
        ("upstream", "UPSTREAM"),
        ("corsOrigins", "CORS_ORIGINS"),
        ("clientIdSecret", "CLIENT_ID_SECRET"),
    ] {
        assert!(
            problems
                .iter()
                .any(|l| l.contains(&format!("{key} ({var})")) && l.contains("required")),
            "{key}/{var} missing from:\n{err}"
        );
    }
}

#[test]
fn the_relay_itself_refuses_to_start_on_bad_config() {
    let out = run(&[("UPSTREAM", "http://127.0.0.1:9")], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("corsOrigins (CORS_ORIGINS)"));
}

#[test]
fn every_invalid_value_names_field_variable_and_problem() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "UPSTREAM",
            "ftp://x",
            "upstream",
            "scheme must be http or https",
        ),
        (
            "UPSTREAM",
            "http://h/api",
            "upstream",
            "a path is not supported",
        ),
        (
            "CORS_ORIGINS",
            "*",
            "corsOrigins",
            "wildcard origins are not allowed",
        ),
        (
            "CORS_ORIGINS",
            "www.example.com",
            "corsOrigins",
            "http:// or https://",
        ),
        ("PORT", "abc", "port", "not a whole number from 1 to 65535"),
        ("PORT", "0", "port", "not a whole number from 1 to 65535"),
        ("DEBUG", "maybe", "debug", "not a boolean"),
        ("MAX_POOL_SIZE", "-1", "maxPoolSize", "not a whole number"),
        ("HEADERS", "[1]", "headers", "must be a JSON object"),
        (
            "HEADERS",
            r#"{"content-length":"1"}"#,
            "headers",
            "cannot be set by HEADERS",
        ),
        (
            "HEADERS",
            r#"{"bad header":"1"}"#,
            "headers",
            "not a valid header name",
        ),
        (
            "CORS_METHODS",
            "GET,B@D",
            "corsMethods",
            "not an HTTP method",
        ),
        (
            "PASS_THROUGH_ROUTES",
            "health",
            "passThroughRoutes",
            "must start with /",
        ),
        ("MTE_ROUTES", "/api/v*", "mteRoutes", "whole segment"),
        ("AWS_REGION", "Mars", "awsRegion", "not an AWS region"),
        ("REDIS_URL", "http://cache:6379", "redisURL", "redis://"),
        ("LOG_FORMAT", "xml", "logFormat", "not a log format"),
        (
            "UPSTREAM_CA_FILE",
            "/nonexistent/ca.pem",
            "upstreamCaFile",
            "cannot be read",
        ),
        ("HOST", "localhost", "host", "not an IP address"),
        ("THREADS", "0", "threads", "not a positive whole number"),
    ];
    for (var, value, key, problem) in cases {
        let out = run(&with(&[(var, value)]), &["check-config"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {err}");
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("config error:"))
            .collect();
        assert_eq!(lines.len(), 1, "{var}={value}: {err}");
        let expected_head = format!("config error: {key} ({var}, from environment): ");
        assert!(
            lines[0].starts_with(&expected_head) && lines[0].contains(problem),
            "{var}={value}: expected `{expected_head}…{problem}…`, got: {}",
            lines[0]
        );
    }
}

#[test]
fn several_problems_are_reported_together() {
    let out = run(
        &with(&[("PORT", "x"), ("DEBUG", "y"), ("MAX_POOL_SIZE", "z")]),
        &["check-config"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with("config error:"))
            .count(),
        3,
        "{err}"
    );
}

#[test]
fn yaml_problems_name_the_file_and_unknown_keys() {
    let dir = std::env::temp_dir().join(format!("pqrelay-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.yaml");
    std::fs::write(
        &path,
        "upstream: http://127.0.0.1:9\nclientIdSecret: 0123456789abcdef0123456789abcdef\n\
         corsOrigins: {a: 1}\nport: high\nredis_url: redis://x\n",
    )
    .unwrap();
    let out = run(&[], &["check-config", "--config", path.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("config error: corsOrigins (CORS_ORIGINS, from config file"),
        "{err}"
    );
    assert!(err.contains("must be a list of strings"), "{err}");
    assert!(
        err.contains("config error: port (PORT, from config file"),
        "{err}"
    );
    assert!(
        err.contains("config error: redis_url (from config file")
            && err.contains("did you mean `redisURL`?"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_short_secret_is_only_a_warning() {
    let out = run(
        &with(&[("CLIENT_ID_SECRET", "short-secret")]),
        &["check-config"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "warning: clientIdSecret (env CLIENT_ID_SECRET) is only 12 characters; 32 or more"
        ),
        "{err}"
    );
    assert!(
        !err.contains("short-secret"),
        "the secret was printed: {err}"
    );
}

#[test]
fn check_config_prints_the_effective_config_with_secrets_masked() {
    let out = run(
        &with(&[
            (
                "CLIENT_ID_PREVIOUS_SECRETS",
                "previous-secret-value-0123456789ab",
            ),
            ("REDIS_URL", "redis://user:hunter2@cache:6379"),
        ]),
        &["check-config"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains(SECRET), "{text}");
    assert!(!text.contains("previous-secret-value"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(
        text.contains("clientIdSecret: '******** (32 chars)'"),
        "{text}"
    );
    assert!(text.contains("redisURL: redis://***@cache:6379"), "{text}");
    assert!(text.contains("port: 8080"), "{text}");
    assert!(text.contains("maxPoolSize: 25"), "{text}");
    assert!(text.contains("grace_period_seconds: 5"), "{text}");
}

#[test]
fn the_seed_examples_in_conf_load() {
    for file in ["minimal.yaml", "full.yaml"] {
        for flag in ["--config", "-c"] {
            let out = run(&[], &["check-config", flag, &conf(file)]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{file} {flag}: {}",
                stderr(&out)
            );
        }
        let path = conf(file);
        let out = run(&[("CONFIG_FILE", &path)], &["check-config"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{file} CONFIG_FILE: {}",
            stderr(&out)
        );
    }
    let full = stdout(&run(&[], &["check-config", "--config", &conf("full.yaml")]));
    for expected in [
        "port: 3000",
        "maxPoolSize: 10",
        "- /api/v1/*",
        "x-service-name: mte-relay",
        "threads: 2",
    ] {
        assert!(full.contains(expected), "{expected} missing from:\n{full}");
    }
    for file in ["minimal.env", "full.env"] {
        let text = std::fs::read_to_string(conf(file)).unwrap();
        let vars: Vec<(String, String)> = text
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains('='))
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap();
                (k.to_owned(), v.trim_matches('\'').to_owned())
            })
            .collect();
        let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let out = run(&env, &["check-config"]);
        assert_eq!(out.status.code(), Some(0), "{file}: {}", stderr(&out));
        if file == "full.env" {
            let text = stdout(&out);
            assert!(
                text.contains("port: 3000") && text.contains("debug: true"),
                "{text}"
            );
        }
    }
}

#[test]
fn the_environment_overrides_the_file() {
    let path = conf("full.yaml");
    let out = run(
        &[("PORT", "4000"), ("UPSTREAM", "http://10.0.0.7:81")],
        &["check-config", "--config", &path],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("port: 4000"), "{text}");
    assert!(text.contains("http://10.0.0.7:81"), "{text}");
    assert!(
        text.contains("maxPoolSize: 10"),
        "file values still apply: {text}"
    );
}

#[test]
fn config_and_conf_must_agree() {
    let out = run(
        &[],
        &[
            "check-config",
            "--config",
            &conf("full.yaml"),
            "-c",
            &conf("minimal.yaml"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("different files"));
}

#[test]
fn pingora_test_flag_validates_and_exits() {
    let out = run(BASE, &["-t"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[tokio::test]
async fn a_yaml_file_configures_a_running_relay() {
    let upstream = Upstream::start();
    let dir = std::env::temp_dir().join(format!("pqrelay-cfg-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("relay.yaml");
    std::fs::write(
        &path,
        format!(
            "upstream: {}\nclientIdSecret: {SECRET}\ncorsOrigins:\n  - {ORIGIN}\n\
             passThroughRoutes:\n  - /echo\nheaders:\n  x-from-yaml: yes-it-is\nthreads: 1\n",
            upstream.url()
        ),
    )
    .unwrap();
    // The base env supplies UPSTREAM and the secret; the file adds routes and HEADERS.
    let relay = Relay::start_with_args(&upstream.url(), &[], &["--config", path.to_str().unwrap()]);
    let resp = crate::util::client()
        .get(relay.url("/echo?msg=yaml"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-from-yaml"], "yes-it-is");
    let log = relay.proc.wait_log("configuration loaded from");
    assert!(log.contains("configuration loaded from"), "{log}");
    let _ = std::fs::remove_dir_all(dir);
}
