//! A strict raw-TCP upstream for the security tests: it parses what the relay sends with the
//! strictest HTTP/1.1 rules (CRLF only, no obs-fold, one framing header, origin-form target,
//! one Host, no hop-by-hop fields), records every request (complete, aborted or malformed),
//! and answers each complete request `200` with `x-up: 1` and body `ok` (after `delay`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The head, CRLFs kept.
    pub head: String,
    /// The body (de-chunked).
    pub body: Vec<u8>,
    /// Why the request is not well-formed, if it is not.
    pub problem: Option<String>,
    /// Whether the body arrived whole (false: the relay aborted it).
    pub complete: bool,
}

impl Seen {
    /// The request line's target.
    pub fn target(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or("")
    }

    /// The values of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Vec<String> {
        self.head
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }
}

/// The strict upstream.
pub struct Strict {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Strict {
    pub async fn start(delay: Duration) -> Strict {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, s.clone(), delay));
            }
        });
        Strict { port, seen }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }

    /// Every request seen must be well-formed; returns them.
    pub fn well_formed(&self, case: &str) -> Vec<Seen> {
        let seen = self.take();
        for s in &seen {
            assert!(
                s.problem.is_none(),
                "{case}: the upstream saw a malformed request ({:?}):\n{}",
                s.problem,
                s.head
            );
        }
        seen
    }
}

async fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut piece = [0u8; 65536];
    match s.read(&mut piece).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&piece[..n]);
            true
        }
    }
}

async fn serve(mut s: TcpStream, log: Arc<Mutex<Vec<Seen>>>, delay: Duration) {
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if !read_more(&mut s, &mut buf).await {
                if !buf.is_empty() {
                    log.lock().unwrap().push(Seen {
                        head: String::from_utf8_lossy(&buf).into_owned(),
                        body: Vec::new(),
                        problem: Some("connection closed inside a head".into()),
                        complete: false,
                    });
                }
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        let (framing, problem) = match check_head(&head) {
            Ok(f) => (f, None),
            Err(p) => (Framing::None, Some(p)),
        };
        let mut seen = Seen {
            head,
            body: Vec::new(),
            problem,
            complete: true,
        };
        if seen.problem.is_some() {
            log.lock().unwrap().push(seen);
            return;
        }
        let body = match framing {
            Framing::None => Ok(Vec::new()),
            Framing::Length(n) => {
                while buf.len() < n {
                    if !read_more(&mut s, &mut buf).await {
                        break;
                    }
                }
                if buf.len() < n {
                    Err(buf.split_off(0))
                } else {
                    Ok(buf.drain(..n).collect())
                }
            }
            Framing::Chunked => read_chunked(&mut s, &mut buf).await,
        };
        match body {
            Ok(b) => seen.body = b,
            Err(partial) => {
                seen.body = partial;
                seen.complete = false;
                if seen.problem.is_none() && !buf.is_empty() {
                    seen.problem = Some("bad chunked framing".into());
                }
                log.lock().unwrap().push(seen);
                return;
            }
        }
        log.lock().unwrap().push(seen);
        tokio::time::sleep(delay).await;
        let resp = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nx-up: 1\r\n\r\nok";
        if s.write_all(resp).await.is_err() {
            return;
        }
    }
}

enum Framing {
    None,
    Length(usize),
    Chunked,
}

/// Reads a chunked body strictly; `Err(partial)` when it ends early or is malformed.
async fn read_chunked(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Vec<u8>, Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            if buf.len() > 1024 || !read_more(s, buf).await {
                return Err(body);
            }
        };
        let line = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size_text = line.split(';').next().unwrap_or("");
        if size_text.is_empty() || !size_text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(body);
        }
        let size = usize::from_str_radix(size_text, 16).map_err(|_| body.clone())?;
        buf.drain(..line_end + 2);
        if size == 0 {
            // Trailers (none expected), then the empty line.
            loop {
                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                    let empty = i == 0;
                    buf.drain(..i + 2);
                    if empty {
                        return Ok(body);
                    }
                } else if !read_more(s, buf).await {
                    return Err(body);
                }
            }
        }
        while buf.len() < size + 2 {
            if !read_more(s, buf).await {
                body.extend_from_slice(&buf[..buf.len().min(size)]);
                return Err(body);
            }
        }
        if &buf[size..size + 2] != b"\r\n" {
            return Err(body);
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}

const HOP_BY_HOP: &[&str] = &[
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "x-hop",
];

/// Checks a head strictly; the body framing it announces.
fn check_head(head: &str) -> Result<Framing, String> {
    let head = head
        .strip_suffix("\r\n\r\n")
        .ok_or("no CRLF CRLF at the end")?;
    let lines: Vec<&str> = head.split("\r\n").collect();
    if lines.iter().any(|l| l.contains('\n') || l.contains('\r')) {
        return Err("a bare CR or LF".into());
    }
    let parts: Vec<&str> = lines[0].split(' ').collect();
    if parts.len() != 3 || parts[2] != "HTTP/1.1" {
        return Err(format!("bad request line {:?}", lines[0]));
    }
    if !parts[0].bytes().all(|b| b.is_ascii_uppercase()) || parts[0].is_empty() {
        return Err(format!("bad method {:?}", parts[0]));
    }
    let target = parts[1];
    if !target.starts_with('/') || target.starts_with("//") || target.contains('\\') {
        return Err(format!("target not origin-form {target:?}"));
    }
    let path = target.split('?').next().unwrap_or("");
    if path.split('/').any(|s| s == ".." || s == ".") || path.to_ascii_lowercase().contains("%2f") {
        return Err(format!(
            "target with dot segment or encoded slash {target:?}"
        ));
    }
    let mut cl = Vec::new();
    let mut te = Vec::new();
    let mut hosts = 0;
    for l in &lines[1..] {
        if l.starts_with(' ') || l.starts_with('\t') {
            return Err("obs-fold".into());
        }
        let (name, value) = l.split_once(':').ok_or(format!("no colon in {l:?}"))?;
        let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(tchar) {
            return Err(format!("bad header name {name:?}"));
        }
        if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(format!("control byte in {name}"));
        }
        let lname = name.to_ascii_lowercase();
        if HOP_BY_HOP.contains(&lname.as_str()) {
            return Err(format!("hop-by-hop header {name}"));
        }
        match lname.as_str() {
            "content-length" => cl.push(value.trim().to_owned()),
            "transfer-encoding" => te.push(value.trim().to_owned()),
            "host" => hosts += 1,
            _ => {}
        }
    }
    if hosts != 1 {
        return Err(format!("{hosts} host headers"));
    }
    match (cl.len(), te.len()) {
        (0, 0) => Ok(Framing::None),
        (1, 0) => {
            let v = &cl[0];
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("bad content-length {v:?}"));
            }
            v.parse().map(Framing::Length).map_err(|e| e.to_string())
        }
        (0, 1) if te[0].eq_ignore_ascii_case("chunked") => Ok(Framing::Chunked),
        _ => Err(format!(
            "framing: content-length {cl:?}, transfer-encoding {te:?}"
        )),
    }
}

/// Sends `bytes` on a new connection to `port`; returns what came back until the peer closed
/// or `idle` passed without a byte.
pub async fn exchange_raw(port: u16, bytes: &[u8], idle: Duration) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let mut piece = [0u8; 65536];
    loop {
        match tokio::time::timeout(idle, s.read(&mut piece)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&piece[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The statuses of the responses in `raw` (each `HTTP/1.x NNN` at the start of a line).
pub fn statuses(raw: &str) -> Vec<u16> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(i) = rest.find("HTTP/1.") {
        let at_line_start = i == 0 || rest[..i].ends_with('\n');
        let tail = &rest[i..];
        if at_line_start {
            if let Some(code) = tail.get(9..12).and_then(|c| c.parse().ok()) {
                out.push(code);
            }
        }
        rest = &tail[7..];
    }
    out
}
