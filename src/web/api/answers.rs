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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

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

/// How a request's template was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// Kept from an earlier build.
    Kept,
    /// Built by another (a request or the builder ahead) while this one waited for it.
    Waited,
    /// Built by this caller.
    Built,
}

/// A build under way for a key: callers asking for the same key wait for it (single flight).
#[derive(Default)]
struct Flight {
    /// `None` while it runs; then the template, or `None` when the build failed.
    landed: Mutex<Option<Option<Arc<Template>>>>,
    done: Condvar,
    /// Callers waiting for it.
    waiting: std::sync::atomic::AtomicUsize,
}

// A std Mutex: held only to look up, add or remove a build under way, never across an await.
static FLIGHTS: Mutex<Vec<(Minutes, Arc<Flight>)>> = Mutex::new(Vec::new());

/// The longest a caller waits for another's build before building itself.
const WAIT: Duration = Duration::from_secs(30);

/// Ends a flight when its build returns (or unwinds): waiters are woken with what it built.
struct Landing(Minutes, Arc<Flight>, Option<Arc<Template>>);

impl Drop for Landing {
    fn drop(&mut self) {
        if let Ok(mut landed) = self.1.landed.lock() {
            *landed = Some(self.2.take());
        }
        self.1.done.notify_all();
        if let Ok(mut flights) = FLIGHTS.lock() {
            flights.retain(|(k, f)| !(*k == self.0 && Arc::ptr_eq(f, &self.1)));
        }
    }
}

/// The template for `key`: the one kept, else the one another caller is building (waited
/// for, not built twice), else `build`'s, kept for the next. Blocks: call it off the async
/// runtime.
pub fn kept_or_built<E>(
    key: Minutes,
    build: impl FnOnce() -> Result<Template, E>,
) -> Result<(Arc<Template>, How), E> {
    if let Some(t) = template(key) {
        return Ok((t, How::Kept));
    }
    let mut mine = None;
    let running = FLIGHTS.lock().ok().and_then(|mut flights| {
        let found = flights
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, f)| f.clone());
        if found.is_none() {
            let f = Arc::new(Flight::default());
            flights.push((key, f.clone()));
            mine = Some(Landing(key, f, None));
        }
        found
    });
    if let Some(mut landing) = mine {
        // A build that ended since the look-up above kept its template first.
        if let Some(t) = template(key) {
            landing.2 = Some(t.clone());
            return Ok((t, How::Kept));
        }
        let t = Arc::new(build()?);
        put_template(key, t.clone());
        landing.2 = Some(t.clone());
        return Ok((t, How::Built));
    }
    if let Some(t) = running.and_then(|f| wait(&f)) {
        return Ok((t, How::Waited));
    }
    // The other build failed or took too long: this caller builds (without keeping a flight).
    let t = Arc::new(build()?);
    put_template(key, t.clone());
    Ok((t, How::Built))
}

fn wait(f: &Flight) -> Option<Arc<Template>> {
    let landed = f.landed.lock().ok()?;
    f.waiting.fetch_add(1, Ordering::SeqCst);
    let waited = f.done.wait_timeout_while(landed, WAIT, |l| l.is_none());
    f.waiting.fetch_sub(1, Ordering::SeqCst);
    let (landed, _) = waited.ok()?;
    landed.clone().flatten()
}

/// `/api/topology` answers by how they were made, and the builds made ahead.
#[derive(Default)]
pub struct Counts {
    /// An answer kept for the same window.
    pub kept_answer: AtomicU64,
    /// A template kept (built before the request, by a request or ahead).
    pub kept_template: AtomicU64,
    /// A template another build was making when the request came.
    pub waited: AtomicU64,
    /// Built for the request.
    pub built: AtomicU64,
    /// Templates built ahead, after a commit or at a minute's turn.
    pub built_ahead: AtomicU64,
}

pub static COUNTS: Counts = Counts {
    kept_answer: AtomicU64::new(0),
    kept_template: AtomicU64::new(0),
    waited: AtomicU64::new(0),
    built: AtomicU64::new(0),
    built_ahead: AtomicU64::new(0),
};

impl Counts {
    /// Counts a request's answer made from a template found as `how`.
    pub fn answered(&self, how: How) {
        let c = match how {
            How::Kept => &self.kept_template,
            How::Waited => &self.waited,
            How::Built => &self.built,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
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

    fn empty_template(since: u64) -> Template {
        let window = crate::model::TimeWindow {
            since_unix_nanos: since,
            until_unix_nanos: since + 60_000_000_000,
        };
        let topo = crate::topology::build(crate::model::TopologyRows::default(), window);
        Template::of(&topo).expect("a template")
    }

    #[test]
    fn a_caller_waits_for_the_build_under_way_for_its_key_instead_of_building_again() {
        // Minutes no other test uses, at a generation of their own.
        let key = (7_001, 7_002, crate::store::interface::next_generation());
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let first = std::thread::spawn(move || {
            kept_or_built::<()>(key, || {
                started_tx.send(()).expect("send");
                go_rx.recv().expect("go");
                Ok(empty_template(1))
            })
        });
        started_rx.recv().expect("the first build started");
        let second = std::thread::spawn(move || {
            kept_or_built::<()>(key, || panic!("a second build of the same key"))
        });
        // The second caller waits for the first's build.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !FLIGHTS
            .lock()
            .expect("flights")
            .iter()
            .any(|(k, f)| *k == key && f.waiting.load(Ordering::SeqCst) == 1)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the second never waited"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        go_tx.send(()).expect("go");
        let (a, how_a) = first.join().expect("first").expect("built");
        let (b, how_b) = second.join().expect("second").expect("waited");
        assert_eq!(how_a, How::Built);
        assert_eq!(how_b, How::Waited);
        assert!(Arc::ptr_eq(&a, &b));
        // Kept for the next, and no build is left under way.
        let (c, how_c) = kept_or_built::<()>(key, || panic!("built again")).expect("kept");
        assert_eq!(how_c, How::Kept);
        assert!(Arc::ptr_eq(&a, &c));
        assert!(FLIGHTS
            .lock()
            .expect("flights")
            .iter()
            .all(|(k, _)| *k != key));
    }

    #[test]
    fn a_failed_build_lets_the_next_caller_build() {
        let key = (8_001, 8_002, crate::store::interface::next_generation());
        assert_eq!(
            kept_or_built(key, || Err("no store")).err(),
            Some("no store")
        );
        let (_, how) = kept_or_built::<()>(key, || Ok(empty_template(2))).expect("built");
        assert_eq!(how, How::Built);
    }

    #[test]
    fn an_empty_answer_is_sized_zero_and_ends_at_once() {
        let (size, slices) = sent(Sent::of([Bytes::new()]));
        assert_eq!(size, BodySize::Sized(0));
        assert!(slices.is_empty());
    }
}
