//! Pieces of the byte-level fuzz test of the relay binary (the `fuzz_relay` module): a seeded
//! PRNG, byte mutators, a raw-TCP exchange and a strict check of what comes back.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// SplitMix64: small, fast and reproducible from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A length skewed towards small values, at most `max`.
    pub fn len(&mut self, max: usize) -> usize {
        let bits = self.below(usize::BITS as usize - max.leading_zeros() as usize + 1);
        self.below((1usize << bits).min(max) + 1)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// Random bytes, [`Rng::len`] of them.
    pub fn some_bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.len(max);
        self.bytes(n)
    }

    /// A [`Rng::token`] of `min + len(max)` characters.
    pub fn some_token(&mut self, min: usize, max: usize) -> String {
        let n = min + self.len(max);
        self.token(n)
    }

    /// Characters safe in a path and a header value (`[A-Za-z0-9._~-]`).
    pub fn safe(&mut self, n: usize) -> String {
        const SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-";
        (0..n).map(|_| *self.pick(SAFE) as char).collect()
    }

    /// A [`Rng::safe`] string of `min + len(max)` characters.
    pub fn some_safe(&mut self, min: usize, max: usize) -> String {
        let n = min + self.len(max);
        self.safe(n)
    }

    /// Printable ASCII without spaces (a token-ish string).
    pub fn token(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| (b'!' + self.below(94) as u8) as char)
            .collect()
    }
}

/// Bytes that often break parsers.
const INTERESTING: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b"\0",
    b" ",
    b"\t",
    b":",
    b";",
    b",",
    b"%",
    b"%00",
    b"%2F",
    b"..",
    b"/",
    b"\\",
    b"?",
    b"#",
    b"=",
    b".",
    b"0",
    b"-1",
    b"ffffffffffffffff",
    b"18446744073709551616",
    b"\xff",
    b"\xc3\x28",
    b"\r\n\r\n",
    b"A",
];

/// Applies 1 to 4 random mutations to `data` in place.
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let at = if data.is_empty() {
            0
        } else {
            rng.below(data.len())
        };
        match rng.below(8) {
            0 | 1 if !data.is_empty() => data[at] ^= 1 << rng.below(8),
            2 if !data.is_empty() => data[at] = rng.next() as u8,
            3 => {
                let piece = rng.pick(INTERESTING).to_vec();
                data.splice(at..at, piece);
            }
            4 if !data.is_empty() => {
                let end = (at + 1 + rng.len(64)).min(data.len());
                data.drain(at..end);
            }
            5 if !data.is_empty() => {
                let end = (at + 1 + rng.len(64)).min(data.len());
                let piece = data[at..end].to_vec();
                let n = 1 + rng.len(200);
                for _ in 0..n {
                    data.splice(at..at, piece.iter().copied());
                }
            }
            6 => data.truncate(at),
            _ => {
                let piece = rng.some_bytes(32);
                data.splice(at..at, piece);
            }
        }
    }
}

/// How one case is sent.
pub struct Outgoing {
    pub bytes: Vec<u8>,
    /// Write in random pieces (partial reads at the relay).
    pub pieces: bool,
    /// Shut the write half after the last byte.
    pub half_close: bool,
    /// How long to wait for the first response byte.
    pub first_wait: Duration,
}

/// What came back from one connection.
pub struct Reply {
    pub bytes: Vec<u8>,
    /// The relay closed the connection (rather than the test giving up).
    pub closed: bool,
}

/// Sends one case on a new connection and reads until the relay closes it or goes quiet.
pub async fn exchange(port: u16, send: &Outgoing, rng: &mut Rng) -> Result<Reply, String> {
    let mut s = tokio::time::timeout(
        Duration::from_secs(5),
        TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    .map_err(|_| "connect timed out".to_owned())?
    .map_err(|e| format!("connect failed: {e}"))?;
    let _ = s.set_nodelay(true);
    let mut rest = &send.bytes[..];
    while !rest.is_empty() {
        let n = if send.pieces {
            1 + rng.below(rest.len().min(4096))
        } else {
            rest.len()
        };
        if s.write_all(&rest[..n]).await.is_err() {
            break;
        }
        rest = &rest[n..];
        if send.pieces && rng.chance(20) {
            tokio::time::sleep(Duration::from_millis(rng.below(3) as u64)).await;
        }
    }
    if send.half_close {
        let _ = s.shutdown().await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let wait = if out.is_empty() {
            send.first_wait
        } else {
            Duration::from_millis(300)
        };
        let wait = wait.min(deadline.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(wait, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Ok(Reply {
                    bytes: out,
                    closed: true,
                })
            }
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => {
                return Ok(Reply {
                    bytes: out,
                    closed: false,
                })
            }
        }
    }
}

/// The statuses of the response heads at the start of `raw` (a `1xx` head may be followed by
/// the final one). Every head must be a well-formed HTTP/1.x status line and header fields;
/// a head cut short is accepted only when `complete` is false (the test stopped reading).
pub fn response_statuses(raw: &[u8], complete: bool) -> Result<Vec<u16>, String> {
    let mut statuses = Vec::new();
    let mut rest = raw;
    loop {
        let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
            if complete {
                return Err("the response head is cut short".into());
            }
            // Still check the status line if it is all there.
            if let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
                statuses.push(status_line(&rest[..line_end])?);
            }
            return Ok(statuses);
        };
        let head = &rest[..end + 2];
        let mut lines = head.split_inclusive(|&b| b == b'\n').map(|l| {
            l.strip_suffix(b"\r\n")
                .ok_or("a head line not ended by CRLF")
        });
        let status = status_line(lines.next().unwrap_or(Ok(b""))?)?;
        for line in lines {
            let line = line?;
            let colon = line.iter().position(|&b| b == b':');
            let name_ok = colon.is_some_and(|c| {
                c > 0
                    && line[..c]
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(b))
            });
            if !name_ok || line.iter().any(|&b| b < 0x20 && b != b'\t') {
                return Err(format!(
                    "bad header line {:?}",
                    String::from_utf8_lossy(line)
                ));
            }
        }
        statuses.push(status);
        rest = &rest[end + 4..];
        if !(100..200).contains(&status) || rest.is_empty() {
            return Ok(statuses);
        }
    }
}

fn status_line(line: &[u8]) -> Result<u16, String> {
    let text = std::str::from_utf8(line).map_err(|_| "status line not UTF-8".to_owned())?;
    let bad = || format!("bad status line {text:?}");
    let rest = text
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))
        .ok_or_else(bad)?;
    let code = rest.get(..3).ok_or_else(bad)?;
    let after = &rest[3..];
    if !code.bytes().all(|b| b.is_ascii_digit()) || !(after.is_empty() || after.starts_with(' ')) {
        return Err(bad());
    }
    let status: u16 = code.parse().map_err(|_| bad())?;
    if !(100..600).contains(&status) {
        return Err(bad());
    }
    Ok(status)
}

/// Printable form of a case for a failure message (at most `max` bytes shown).
pub fn show(bytes: &[u8], max: usize) -> String {
    let shown = bytes[..bytes.len().min(max)].escape_ascii().to_string();
    if bytes.len() > max {
        format!("{shown}... ({} bytes)", bytes.len())
    } else {
        shown
    }
}

/// The last `max` bytes of `text` or a little less (cut at a character boundary).
pub fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}
