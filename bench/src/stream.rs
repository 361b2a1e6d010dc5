//! Streamed transfers: one large upload (`POST /upload`) and one large download
//! (`GET /download/<n>`), plain or sealed through the relay, in constant memory on this side.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http::{Request, Uri};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt as _;
use pqrelay_client::{Body, HttpClient, RelayClient};

use crate::upstream::CHUNK;

/// Where a transfer goes.
pub(crate) enum Via<'a> {
    /// Plain HTTP to this base URL (`http://127.0.0.1:port`, with an optional path prefix).
    Plain(&'a HttpClient, &'a str),
    /// Sealed through the relay.
    Relay(&'a RelayClient),
}

/// A sized body of `len` bytes made of one chunk repeated (no copies, exact size hint).
struct RepeatBody {
    chunk: Bytes,
    left: u64,
}

impl http_body::Body for RepeatBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        let n = self.left.min(self.chunk.len() as u64) as usize;
        self.left -= n as u64;
        std::task::Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

fn chunk() -> Bytes {
    Bytes::from(vec![b'u'; CHUNK])
}

/// Uploads `len` bytes; returns the time taken. Checks the upstream counted `len` bytes.
pub(crate) async fn upload(via: Via<'_>, len: u64) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let (status, body) = match via {
        Via::Plain(http, base) => {
            let body = RepeatBody {
                chunk: chunk(),
                left: len,
            }
            .map_err(|never| match never {})
            .boxed_unsync();
            let uri: Uri = format!("{base}/upload").parse()?;
            let req = Request::post(uri)
                .header("content-type", "application/octet-stream")
                .body(body)?;
            let resp = http.request(req).await.context("upload")?;
            let status = resp.status();
            (status, resp.into_body().collect().await?.to_bytes())
        }
        Via::Relay(client) => {
            let c = chunk();
            let n = len.div_ceil(CHUNK as u64);
            let frames = (0..n).map(move |i| {
                let take = (len - i * CHUNK as u64).min(CHUNK as u64) as usize;
                Ok::<_, Infallible>(c.slice(..take))
            });
            let resp = client
                .post("/upload")
                .header("content-type", "application/octet-stream")
                .body(Body::sized_stream(futures_util::stream::iter(frames), len))
                .send()
                .await
                .context("sealed upload")?;
            let status = resp.status();
            (status, resp.bytes().await?)
        }
    };
    let elapsed = start.elapsed();
    let want = format!("{{\"size\":{len}}}");
    if status != 200 || body != want.as_bytes() {
        bail!(
            "upload answered {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        );
    }
    Ok(elapsed)
}

/// Downloads `len` bytes; returns the time taken. Checks the length received.
pub(crate) async fn download(via: Via<'_>, len: u64) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut got = 0u64;
    let status = match via {
        Via::Plain(http, base) => {
            let uri: Uri = format!("{base}/download/{len}").parse()?;
            let req = Request::get(uri).body(pqrelay_client::empty_body())?;
            let resp = http.request(req).await.context("download")?;
            let status = resp.status();
            let mut body = resp.into_body();
            while let Some(frame) = body.frame().await {
                if let Some(d) = frame?.data_ref() {
                    got += d.len() as u64;
                }
            }
            status
        }
        Via::Relay(client) => {
            let mut resp = client
                .get(format!("/download/{len}"))
                .send()
                .await
                .context("sealed download")?;
            while let Some(c) = resp.chunk().await? {
                got += c.len() as u64;
            }
            resp.status()
        }
    };
    let elapsed = start.elapsed();
    if status != 200 || got != len {
        bail!("download answered {status} with {got} of {len} bytes");
    }
    Ok(elapsed)
}
