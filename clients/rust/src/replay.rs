//! A streamed request body that can be taken back while it is young: [`Replayable`] keeps what
//! it yielded, up to a limit, so that a request whose connection failed before the body was
//! complete (a kept-alive connection the relay closed, e.g. it restarted) can be sent again on
//! a fresh connection ([`crate::engine::EngineSettings::stream_replay`]). A body that ended may
//! have completed at the upstream, and one past the limit is gone: never taken back.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;

use crate::error::BoxError;
use crate::exchange::ByteStream;

/// What the wrapped stream yielded so far, shared between the wire body and the engine.
#[derive(Default)]
struct Yielded {
    stream: Option<ByteStream>,
    pieces: Vec<Bytes>,
    len: usize,
    limit: usize,
    spilled: bool,
    ended: bool,
}

/// The engine's handle on a wrapped stream.
pub(crate) struct Kept(Arc<Mutex<Yielded>>);

impl Kept {
    fn lock(&self) -> MutexGuard<'_, Yielded> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The whole body again (kept pieces, then the rest), if it can still be replayed.
    pub(crate) fn take_back(&self) -> Option<ByteStream> {
        let mut y = self.lock();
        if y.spilled || y.ended {
            return None;
        }
        let rest = y.stream.take()?;
        let kept = futures_util::stream::iter(std::mem::take(&mut y.pieces).into_iter().map(Ok));
        Some(Box::pin(futures_util::StreamExt::chain(kept, rest)))
    }
}

/// A stream that keeps what it yields, up to `limit` bytes. See the [module docs](self).
pub(crate) struct Replayable {
    shared: Kept,
}

impl Replayable {
    /// Wraps `stream`: the stream to send, and the handle to take it back.
    pub(crate) fn wrap(stream: ByteStream, limit: usize) -> (ByteStream, Kept) {
        let shared = Arc::new(Mutex::new(Yielded {
            stream: Some(stream),
            limit,
            ..Yielded::default()
        }));
        let wrapped = Replayable {
            shared: Kept(shared.clone()),
        };
        (Box::pin(wrapped), Kept(shared))
    }
}

impl Stream for Replayable {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut y = self.shared.lock();
        let Some(stream) = y.stream.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = stream.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(piece))) if !y.spilled => {
                if y.len + piece.len() <= y.limit {
                    y.len += piece.len();
                    y.pieces.push(piece.clone());
                } else {
                    y.spilled = true;
                    y.pieces = Vec::new();
                }
            }
            Poll::Ready(None) => y.ended = true,
            _ => {}
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;

    use super::*;

    const LIMIT: usize = 256 * 1024;

    fn pieces(n: usize, size: usize) -> ByteStream {
        let items = (0..n).map(move |i| Ok(Bytes::from(vec![i as u8; size])));
        Box::pin(futures_util::stream::iter(items.collect::<Vec<_>>()))
    }

    #[tokio::test]
    async fn a_stream_cut_early_is_taken_back_whole() {
        let (mut wire, kept) = Replayable::wrap(pieces(3, 10), LIMIT);
        assert_eq!(wire.next().await.unwrap().unwrap(), vec![0u8; 10]);
        drop(wire);
        let again: Vec<Bytes> = kept
            .take_back()
            .unwrap()
            .map(|p| p.unwrap())
            .collect()
            .await;
        assert_eq!(again, [0u8, 1, 2].map(|i| Bytes::from(vec![i; 10])));
    }

    #[tokio::test]
    async fn an_ended_or_spilled_stream_is_never_replayed() {
        let (wire, kept) = Replayable::wrap(pieces(2, 10), LIMIT);
        assert_eq!(wire.collect::<Vec<_>>().await.len(), 2);
        assert!(kept.take_back().is_none(), "ended: may have completed");
        let (mut wire, kept) = Replayable::wrap(pieces(3, LIMIT / 2 + 1), LIMIT);
        wire.next().await;
        wire.next().await;
        assert!(kept.take_back().is_none(), "over the limit");
    }
}
