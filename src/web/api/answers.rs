//! `/api/topology` answers kept for reuse: the same window asked again (the map refreshing,
//! several tabs, the DOT and JSON downloads of one window) is answered with the bytes already
//! made, as long as the store has committed nothing since. The key is the window and the
//! store's write generation ([`crate::store::TopologyReads::generation`]), which every commit
//! (spans, a broker's poll, retention) replaces before it is acknowledged: an answer is never
//! older than the data a client was told is stored.
//!
//! A window ending "now" differs at each request, but the topology is read from per-minute
//! rows: every window over the same minutes at the same generation is answered from one
//! [`Template`], which writes again only what depends on the window's exact bounds (the
//! bounds, and the rates of the edges with traced messages). Such a window is built afresh
//! once a minute and after each commit.

use crate::topology::json::{Piece, Template};
use actix_web::body::{BodySize, MessageBody};
use actix_web::web::Bytes;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// A window (since, until) read at a store's write generation.
pub type Key = (u64, u64, u64);

/// Answers kept at most, and the largest kept (a few megabytes each for a large broker).
const KEPT: usize = 4;
const LARGEST: usize = 16 * 1024 * 1024;

// A std Mutex: held only to look up or insert in a four-entry list, never across an await.
static ANSWERS: Mutex<Vec<(Key, Bytes)>> = Mutex::new(Vec::new());

/// The first and last minute a window covers ([`crate::model::TimeWindow::minutes`]), read
/// at a store's write generation.
pub type Minutes = (i64, i64, u64);

static TEMPLATES: Mutex<Vec<(Minutes, Arc<Template>)>> = Mutex::new(Vec::new());

/// The template kept for windows over these minutes.
pub fn template(key: Minutes) -> Option<Arc<Template>> {
    let kept = TEMPLATES.lock().ok()?;
    kept.iter().find(|(k, _)| *k == key).map(|(_, t)| t.clone())
}

/// The answer a template was made from, sharing its bytes (not a copy).
pub fn body(t: &Arc<Template>) -> Bytes {
    struct Body(Arc<Template>);
    impl AsRef<[u8]> for Body {
        fn as_ref(&self) -> &[u8] {
            self.0.body()
        }
    }
    Bytes::from_owner(Body(t.clone()))
}

/// A template's answer for a window, from its pieces: the template's bytes are shared, not
/// copied.
pub fn answer(t: &Arc<Template>, pieces: Vec<Piece>) -> Sent {
    let whole = body(t);
    Sent::of(pieces.into_iter().map(|p| match p {
        Piece::Copied(r) => whole.slice(r),
        Piece::Written(w) => Bytes::from(w),
    }))
}

/// Bytes handed to the connection at a time.
const SLICE: usize = 64 * 1024;

/// An answer as a list of shared buffers, sent with its `Content-Length` in slices of at most
/// [`SLICE`] bytes. The HTTP server copies what a body yields into its connection's write
/// buffer: one piece of megabytes would grow that buffer to megabytes, fresh pages faulted in
/// and released for every answer, before the first byte leaves; slices keep it small and
/// reused, and the socket is written while the rest waits.
pub struct Sent {
    pieces: VecDeque<Bytes>,
    len: u64,
}

impl Sent {
    pub fn of(pieces: impl IntoIterator<Item = Bytes>) -> Sent {
        let pieces: VecDeque<Bytes> = pieces.into_iter().filter(|b| !b.is_empty()).collect();
        let len = pieces.iter().map(|b| b.len() as u64).sum();
        Sent { pieces, len }
    }
}

impl MessageBody for Sent {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.len)
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Infallible>>> {
        let this = self.get_mut();
        let Some(front) = this.pieces.front_mut() else {
            return Poll::Ready(None);
        };
        let next = if front.len() > SLICE {
            front.split_to(SLICE)
        } else {
            this.pieces.pop_front().unwrap_or_default()
        };
        this.len -= next.len() as u64;
        Poll::Ready(Some(Ok(next)))
    }
}

/// Keeps a template (the newest first; the oldest beyond [`KEPT`] is dropped).
pub fn put_template(key: Minutes, t: Arc<Template>) {
    if t.body().len() > LARGEST {
        return;
    }
    if let Ok(mut kept) = TEMPLATES.lock() {
        kept.retain(|(k, _)| *k != key);
        kept.insert(0, (key, t));
        kept.truncate(KEPT);
    }
}

/// The answer kept for this key.
pub fn get(key: Key) -> Option<Bytes> {
    let kept = ANSWERS.lock().ok()?;
    kept.iter().find(|(k, _)| *k == key).map(|(_, b)| b.clone())
}

/// Keeps an answer (the newest first; the oldest beyond [`KEPT`] is dropped).
pub fn put(key: Key, body: &Bytes) {
    if body.len() > LARGEST {
        return;
    }
    if let Ok(mut kept) = ANSWERS.lock() {
        kept.retain(|(k, _)| *k != key);
        kept.insert(0, (key, body.clone()));
        kept.truncate(KEPT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every slice the body yields, in order.
    fn sent(mut body: Sent) -> (BodySize, Vec<Bytes>) {
        let size = body.size();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut out = Vec::new();
        while let Poll::Ready(Some(Ok(b))) = Pin::new(&mut body).poll_next(&mut cx) {
            out.push(b);
        }
        (size, out)
    }

    #[test]
    fn sends_every_byte_in_order_in_bounded_slices_with_its_length() {
        let big: Vec<u8> = (0..3 * SLICE + 17).map(|i| (i % 251) as u8).collect();
        let pieces = [
            Bytes::from_static(b"{\"a\":"),
            Bytes::new(),
            Bytes::from(big.clone()),
            Bytes::from_static(b"}"),
        ];
        let (size, slices) = sent(Sent::of(pieces));
        let whole: Vec<u8> = slices.iter().flat_map(|b| b.iter().copied()).collect();
        let mut expected = b"{\"a\":".to_vec();
        expected.extend_from_slice(&big);
        expected.push(b'}');
        assert_eq!(whole, expected);
        assert_eq!(size, BodySize::Sized(expected.len() as u64));
        assert!(slices.iter().all(|b| !b.is_empty() && b.len() <= SLICE));
        // The large piece is cut into SLICE-sized parts and its tail, not copied whole.
        assert_eq!(slices.len(), 1 + 4 + 1);
    }

    #[test]
    fn an_empty_answer_is_sized_zero_and_ends_at_once() {
        let (size, slices) = sent(Sent::of([Bytes::new()]));
        assert_eq!(size, BodySize::Sized(0));
        assert!(slices.is_empty());
    }
}
