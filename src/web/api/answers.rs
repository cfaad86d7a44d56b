//! `/api/topology` answers kept for reuse: the same window asked again (the map refreshing,
//! several tabs, the DOT and JSON downloads of one window) is answered with the bytes already
//! made, as long as the store has committed nothing since. The key is the window and the
//! store's write generation ([`crate::store::TopologyReads::generation`]), which every commit
//! (spans, a broker's poll, retention) replaces before it is acknowledged: an answer is never
//! older than the data a client was told is stored. Windows ending "now" differ at each
//! request and are built afresh.

use actix_web::web::Bytes;
use std::sync::Mutex;

/// A window (since, until) read at a store's write generation.
pub type Key = (u64, u64, u64);

/// Answers kept at most, and the largest kept (a few megabytes each for a large broker).
const KEPT: usize = 4;
const LARGEST: usize = 16 * 1024 * 1024;

// A std Mutex: held only to look up or insert in a four-entry list, never across an await.
static ANSWERS: Mutex<Vec<(Key, Bytes)>> = Mutex::new(Vec::new());

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
