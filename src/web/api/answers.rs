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

use crate::topology::json::Template;
use actix_web::web::Bytes;
use std::sync::{Arc, Mutex};

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
