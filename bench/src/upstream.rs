//! The fast upstream: a small hyper server whose answers cost next to nothing, so that the
//! upstream is never what a measurement measures.
//!
//! Routes (an optional leading `/pt` is ignored, for the relay's pass-through route):
//! - `GET /health` → `ok`
//! - `GET|POST /json/<n>` → drains the request body, answers a fixed JSON document of exactly
//!   `n` bytes (`n` ≤ 1 MiB)
//! - `POST /upload` → counts the streamed body, answers `{"size":N}`
//! - `GET /download/<n>` → streams `n` bytes in 64 KiB chunks (`content-length: n`)

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// Size of a download chunk.
pub(crate) const CHUNK: usize = 64 * 1024;
/// Largest `/json/<n>` document.
const MAX_JSON: usize = 1024 * 1024;

type Body = BoxBody<Bytes, Infallible>;

/// A JSON document of exactly `n` bytes (at least 12): `{"data":"xxx…"}`.
pub(crate) fn json_of_len(n: usize) -> Bytes {
    let pad = n.saturating_sub(12);
    let mut s = String::with_capacity(n.max(12));
    s.push_str("{\"data\":\"");
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str("\"}\n");
    Bytes::from(s)
}

/// Runs the upstream on `addr` with `threads` worker threads until the process is stopped.
pub(crate) fn run(addr: SocketAddr, threads: usize) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let json_1k = json_of_len(1024);
        let json_10k = json_of_len(10 * 1024);
        let chunk = Bytes::from(vec![b'z'; CHUNK]);
        eprintln!(
            "fast upstream listening on http://{}",
            listener.local_addr()?
        );
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let (j1, j10, c) = (json_1k.clone(), json_10k.clone(), chunk.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req| handle(req, j1.clone(), j10.clone(), c.clone()));
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

fn answer(status: StatusCode, ctype: &str, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_str(ctype).unwrap_or(http::HeaderValue::from_static("text/plain")),
    );
    r
}

async fn drain(mut body: Incoming) -> u64 {
    let mut n = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(d) = frame.data_ref() {
            n += d.len() as u64;
        }
    }
    n
}

async fn handle(
    req: Request<Incoming>,
    json_1k: Bytes,
    json_10k: Bytes,
    chunk: Bytes,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path();
    let path = path.strip_prefix("/pt").unwrap_or(path).to_owned();
    let method = req.method().clone();
    let body = req.into_body();
    let resp = if path == "/health" {
        answer(StatusCode::OK, "text/plain", full("ok\n"))
    } else if let Some(n) = path.strip_prefix("/json/") {
        drain(body).await;
        match n.parse::<usize>() {
            Ok(1024) => answer(StatusCode::OK, "application/json", full(json_1k)),
            Ok(10240) => answer(StatusCode::OK, "application/json", full(json_10k)),
            Ok(n) if n <= MAX_JSON => {
                answer(StatusCode::OK, "application/json", full(json_of_len(n)))
            }
            _ => answer(StatusCode::BAD_REQUEST, "text/plain", full("bad size\n")),
        }
    } else if path == "/upload" && method == Method::POST {
        let n = drain(body).await;
        answer(
            StatusCode::OK,
            "application/json",
            full(format!("{{\"size\":{n}}}")),
        )
    } else if let Some(n) = path.strip_prefix("/download/") {
        drain(body).await;
        match n.parse::<u64>() {
            Ok(n) => {
                let mut r = answer(
                    StatusCode::OK,
                    "application/octet-stream",
                    repeat_body(chunk, n),
                );
                r.headers_mut()
                    .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(n));
                r
            }
            Err(_) => answer(StatusCode::BAD_REQUEST, "text/plain", full("bad size\n")),
        }
    } else {
        drain(body).await;
        answer(StatusCode::NOT_FOUND, "text/plain", full("not found\n"))
    };
    Ok(resp)
}

/// `len` bytes made of `chunk` repeated (the last one cut), as a body.
fn repeat_body(chunk: Bytes, len: u64) -> Body {
    let c = chunk.len() as u64;
    let frames = (0..len.div_ceil(c)).map(move |i| {
        let n = (len - i * c).min(c) as usize;
        Ok::<_, Infallible>(Frame::data(chunk.slice(..n)))
    });
    StreamBody::new(futures_util::stream::iter(frames)).boxed()
}
