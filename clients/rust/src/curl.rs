//! `pqrelay-curl`: a curl-like command sending one request through a relay. The argument
//! parser ([`Args`]), the runner ([`run`]) and the exit statuses ([`exit_code`]) live here so
//! that they can be tested; the binary only prints the error and exits.
//!
//! Trust (§13): `--pin FINGERPRINT` (repeatable) pins the relay's keys; without it the keys
//! are trusted on first use and kept, with the client id, in a known-relays file
//! ([`crate::trust_store`]; `--known-relays FILE`, default [`default_known_relays`]).

use std::path::PathBuf;

use bytes::Bytes;
use clap::Parser;
use http::{HeaderName, HeaderValue, Method};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::body::Body;
use crate::client::{split_url, RelayClient, DEFAULT_PAIRS};
use crate::error::Error;
use crate::observer::WireEvent;

/// Command-line arguments of `pqrelay-curl`.
#[derive(Parser, Debug, Clone, PartialEq, Eq)]
#[command(
    name = "pqrelay-curl",
    version,
    about = "Send one HTTP request through a pqrelay, sealed end to end (curl-like)",
    after_help = "URL is the relay URL plus the path: http://127.0.0.1:8080/api/x?y=1\n\n\
Trust: with --pin, only the pinned relay keys are trusted. Without, the keys the relay shows at \
first contact are trusted and kept, with the client id, in the known-relays file \
($XDG_CONFIG_HOME/pqrelay/known_relays, else ~/.config/pqrelay/known_relays; --known-relays \
FILE to choose another). Remove a relay's line there to trust new keys.\n\n\
Exit status: 0 success; 1 failure (transport, relay error, the answer did not open); 2 invalid \
arguments or request; 3 the relay is not trusted (no offered key is pinned or known, or the \
pairing was not confirmed: an attacker may be in the middle); 4 outcome unknown (a request \
that is not idempotent may or may not have run upstream: it was not sent again)."
)]
pub struct Args {
    /// Request method (default GET, or POST with -d/--data-binary).
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    pub method: Option<String>,
    /// Request header, sealed (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Request body; @FILE reads a file, @- reads standard input (streamed, chunked).
    #[arg(
        short = 'd',
        long = "data",
        value_name = "DATA",
        conflicts_with = "data_binary"
    )]
    pub data: Option<String>,
    /// Request body sent as is; @FILE reads a file, @- reads standard input.
    #[arg(long = "data-binary", value_name = "DATA")]
    pub data_binary: Option<String>,
    /// Write the body to FILE instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print the decoded status line and headers before the body.
    #[arg(short = 'i', long = "include")]
    pub include: bool,
    /// Show what went over the wire on standard error.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// Pairs to pair with the relay.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PAIRS)]
    pub pairs: usize,
    /// Send the path in the clear (it is still bound into the sealed headers).
    #[arg(long = "no-encode-url")]
    pub no_encode_url: bool,
    /// Extra CA certificate(s) to trust for https (PEM).
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Trust only this relay key (sha256:..., as `pqrelay keygen` or `pqrelay check-config`
    /// print it); repeatable.
    #[arg(long = "pin", value_name = "FINGERPRINT")]
    pub pins: Vec<String>,
    /// The known-relays file: client ids and relay keys trusted on first use (default
    /// $XDG_CONFIG_HOME/pqrelay/known_relays, else ~/.config/pqrelay/known_relays).
    #[arg(long = "known-relays", value_name = "FILE")]
    pub known_relays: Option<PathBuf>,
    /// Relay URL plus path and query.
    pub url: String,
}

/// Exit status for a failure to trust the relay ([`Error::is_trust_failure`]).
pub const EXIT_NOT_TRUSTED: i32 = 3;
/// Exit status for [`Error::OutcomeUnknown`] (§12).
pub const EXIT_OUTCOME_UNKNOWN: i32 = 4;

/// The exit status for `e`: 2 invalid arguments or request, [`EXIT_NOT_TRUSTED`] (3),
/// [`EXIT_OUTCOME_UNKNOWN`] (4), else 1.
pub fn exit_code(e: &Error) -> i32 {
    match e {
        Error::InvalidRequest(_) => 2,
        Error::OutcomeUnknown { .. } => EXIT_OUTCOME_UNKNOWN,
        e if e.is_trust_failure() => EXIT_NOT_TRUSTED,
        _ => 1,
    }
}

/// The default known-relays file: `$XDG_CONFIG_HOME/pqrelay/known_relays`, else
/// `$HOME/.config/pqrelay/known_relays`; `None` when neither variable is set (trust then lasts
/// one run).
pub fn default_known_relays() -> Option<PathBuf> {
    let nonempty = |v: &str| std::env::var_os(v).filter(|s| !s.is_empty());
    let config = match nonempty("XDG_CONFIG_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(nonempty("HOME")?).join(".config"),
    };
    Some(config.join("pqrelay").join("known_relays"))
}

/// The message `pqrelay-curl` prints for `e`: the error, and for a failure to trust the relay
/// what to do about it.
pub fn error_message(e: &Error, args: &Args) -> String {
    let mut msg = format!("pqrelay-curl: {e}");
    match e {
        Error::RelayKeyNotTrusted { pinned: true, .. } => {
            msg.push_str("\npqrelay-curl: check the --pin fingerprints against the relay's");
        }
        Error::RelayKeyNotTrusted { origin, .. } => {
            if let Some(file) = args.known_relays_file() {
                msg.push_str(&format!(
                    "\npqrelay-curl: the keys of {origin} are kept in {}: if the relay's keys \
                     really changed, remove its line there (or pin the new key with --pin)",
                    file.display()
                ));
            }
        }
        Error::OutcomeUnknown { .. } => msg.push_str(
            "\npqrelay-curl: check with the upstream whether the request ran before sending it \
             again",
        ),
        _ => {}
    }
    msg
}

/// Where the request body comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodySource {
    /// Given on the command line.
    Inline(Vec<u8>),
    /// Read from a file (sent sized, streamed).
    File(PathBuf),
    /// Read from standard input (sent in streaming mode).
    Stdin,
}

impl Args {
    /// The method: `-X`, else POST with a body, else GET.
    pub fn method(&self) -> Result<Method, Error> {
        match &self.method {
            Some(m) => Method::from_bytes(m.as_bytes())
                .map_err(|_| Error::InvalidRequest(format!("invalid method {m:?}"))),
            None if self.body_source().is_some() => Ok(Method::POST),
            None => Ok(Method::GET),
        }
    }

    /// The body source, if any.
    pub fn body_source(&self) -> Option<BodySource> {
        let data = self.data.as_ref().or(self.data_binary.as_ref())?;
        Some(match data.strip_prefix('@') {
            Some("-") => BodySource::Stdin,
            Some(path) => BodySource::File(path.into()),
            None => BodySource::Inline(data.as_bytes().to_vec()),
        })
    }

    /// The `-H` headers, parsed.
    pub fn parsed_headers(&self) -> Result<Vec<(HeaderName, HeaderValue)>, Error> {
        self.headers.iter().map(|h| parse_header(h)).collect()
    }

    /// The known-relays file: `--known-relays`, else [`default_known_relays`].
    pub fn known_relays_file(&self) -> Option<PathBuf> {
        self.known_relays.clone().or_else(default_known_relays)
    }
}

/// Parses `name: value` (curl's `-H`).
pub fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), Error> {
    let bad = || Error::InvalidRequest(format!("header {text:?} is not \"name: value\""));
    let (name, value) = text.split_once(':').ok_or_else(bad)?;
    let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| bad())?;
    let value = HeaderValue::from_str(value.trim()).map_err(|_| bad())?;
    Ok((name, value))
}

fn reader_stream<R: AsyncRead + Unpin + Send + 'static>(
    reader: R,
) -> impl futures_core::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        let mut buf = vec![0u8; 64 * 1024];
        match reader.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some(reader)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

fn shorten(s: &str) -> String {
    if s.len() <= 96 {
        s.to_owned()
    } else {
        format!("{}... ({} chars)", &s[..80], s.len())
    }
}

/// Prints a [`WireEvent`] the way `-v` shows it.
pub fn describe(event: &WireEvent) -> String {
    match event {
        WireEvent::Discovery { status, relay_header, relay_info, relay_keys } => format!(
            "* discovery: HEAD /api/mte-relay -> {status}\n*   x-mte-relay: {}\n*   x-mte-relay-info: {}\n*   relay keys offered: {}",
            relay_header.as_deref().unwrap_or("(none)"),
            relay_info.as_deref().unwrap_or("(none)"),
            if relay_keys.is_empty() { "(none)".to_owned() } else { relay_keys.join(", ") }
        ),
        WireEvent::Pairing { pairs, status, request_len, response_len, relay_key } => format!(
            "* pairing: POST /api/mte-pair, {pairs} pairs, relay key {relay_key} -> {status} ({request_len} bytes sent, {response_len} received)"
        ),
        WireEvent::Request {
            method, target, relay_header, sealed_headers, plain_headers, body_len, has_body,
        } => {
            let body = match (has_body, body_len) {
                (false, _) => "none".to_owned(),
                (true, Some(n)) => format!("{n} bytes (sized)"),
                (true, None) => "chunked (streaming)".to_owned(),
            };
            let mut s = format!(
                "> {method} {}\n> x-mte-relay: {relay_header}\n> x-mte-relay-eh: {}\n> body: {body}",
                shorten(target),
                shorten(sealed_headers)
            );
            if !plain_headers.is_empty() {
                s.push_str(&format!("\n> plain headers: {}", plain_headers.join(", ")));
            }
            s
        }
        WireEvent::Response { status, relay_header, sealed_headers, content_length, relay_error, verdict } => {
            let mut s = format!("< {status}");
            if let Some(h) = relay_header {
                s.push_str(&format!("\n< x-mte-relay: {h}"));
            }
            if let Some(h) = sealed_headers {
                s.push_str(&format!("\n< x-mte-relay-eh: {}", shorten(h)));
            }
            if let Some(e) = relay_error {
                s.push_str(&format!("\n< x-mte-relay-error: {e}"));
            }
            if let Some(v) = verdict {
                s.push_str(&format!("\n< x-mte-relay-verdict: {v}"));
            }
            match content_length {
                Some(n) => s.push_str(&format!("\n< content-length: {n}")),
                None => s.push_str("\n< (no content-length: chunked or empty)"),
            }
            s
        }
        WireEvent::ResponseBody { wire_len, plain_len } => {
            format!("* response body: {wire_len} bytes on the wire, {plain_len} bytes decoded")
        }
        WireEvent::Recovery { status, action, retried } => format!(
            "* relay error {status}: {action}{}",
            if *retried { ", retrying" } else { "" }
        ),
        WireEvent::RelayError { status, authenticated } => format!(
            "* relay error {status}: {}",
            if *authenticated { "authenticated (tag verified)" } else { "NOT authenticated (no valid tag)" }
        ),
        WireEvent::Resend { reason, retry_flag } => format!(
            "* {reason}: sent again on the same pair{}",
            if *retry_flag { " with flag retry" } else { "" }
        ),
        WireEvent::OutcomeUnknown { reason } => format!("* outcome unknown: {reason}"),
        WireEvent::RetryAfter { request, status, attempt, wait_ms } => format!(
            "* {request} refused with {status} (attempt {attempt} of {}): waiting {wait_ms} ms (Retry-After), then trying again",
            crate::engine::PAIRING_ATTEMPTS
        ),
        WireEvent::ConnectionRetry { request } => format!(
            "* connection failed before an answer: {request} sent again on a new connection"
        ),
    }
}

/// Runs one request as `args` say, writing the body to `-o` or standard output.
pub async fn run(args: &Args) -> Result<(), Error> {
    let (base, path) = split_url(&args.url)?;
    let mut builder = RelayClient::builder(base)
        .pairs(args.pairs)
        .max_pairs(args.pairs.max(1))
        .encode_url(!args.no_encode_url);
    for pin in &args.pins {
        builder = builder.pin(pin.clone());
    }
    if let Some(file) = args.known_relays_file() {
        builder = builder.trust_store(file);
    }
    if let Some(ca) = &args.cacert {
        let pem = std::fs::read(ca)
            .map_err(|e| Error::InvalidRequest(format!("reading {}: {e}", ca.display())))?;
        builder = builder.extra_ca_pem(pem);
    }
    if args.verbose {
        builder = builder.observer(|e| eprintln!("{}", describe(e)));
    }
    let client = builder.build()?;
    let mut req = client.request(args.method()?, path);
    let headers = args.parsed_headers()?;
    let has_type = headers.iter().any(|(n, _)| n == http::header::CONTENT_TYPE);
    for (name, value) in headers {
        req = req.header(name, value);
    }
    if let Some(source) = args.body_source() {
        if !has_type {
            req = req.header("content-type", "application/x-www-form-urlencoded");
        }
        req = req.body(match source {
            BodySource::Inline(b) => Body::from(b),
            BodySource::File(path) => {
                let file = tokio::fs::File::open(&path).await.map_err(|e| {
                    Error::InvalidRequest(format!("reading {}: {e}", path.display()))
                })?;
                let len = file
                    .metadata()
                    .await
                    .map_err(|e| Error::InvalidRequest(format!("{}: {e}", path.display())))?
                    .len();
                Body::sized_stream(reader_stream(file), len)
            }
            BodySource::Stdin => Body::stream(reader_stream(tokio::io::stdin())),
        });
    }
    let mut resp = req.send().await?;
    let mut out: Box<dyn AsyncWrite + Unpin + Send> = match &args.output {
        Some(path) => Box::new(
            tokio::fs::File::create(path)
                .await
                .map_err(|e| Error::InvalidRequest(format!("creating {}: {e}", path.display())))?,
        ),
        None => Box::new(tokio::io::stdout()),
    };
    let io = |e: std::io::Error| Error::http("writing the output", e);
    if args.include {
        let status = resp.status();
        let mut head = format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
        for (name, value) in resp.headers() {
            head.push_str(&format!(
                "{name}: {}\r\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        head.push_str("\r\n");
        out.write_all(head.as_bytes()).await.map_err(io)?;
    }
    while let Some(chunk) = resp.chunk().await? {
        out.write_all(&chunk).await.map_err(io)?;
        out.flush().await.map_err(io)?;
    }
    out.flush().await.map_err(io)?;
    Ok(())
}
