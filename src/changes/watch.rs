//! Finds new nodes and edges cheaply: every `interval`, when spans were stored since the last
//! pass, read the statistics rows of the last [`LOOKBACK`] (minute aggregates: a few rows
//! per edge, whatever the span rate) and compare their keys with those seen in the previous
//! [`MEMORY`]. No topology is built and nothing runs per span.
//!
//! Invariants of [`Known`]: it holds at most [`MAX_KEYS`] keys, each with the time of the pass
//! that last saw it; a key not seen for [`MEMORY`] is forgotten, so its return is announced.

use super::{ChangeKind, ChangeLog, Notice};
use crate::ingest::IngestCounters;
use crate::model::{EdgeKind, NodeKey, NodeKind, TimeWindow, TopologyRows};
use crate::store::Store;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

const MINUTE: u64 = 60_000_000_000;
/// How far back each pass reads: spans arrive a little after they end (SDK batches).
pub const LOOKBACK: u64 = 5 * MINUTE;
/// A node or edge not seen for this long is new again when it comes back.
pub const MEMORY: u64 = 60 * MINUTE;
/// Keys remembered at most; past it, new keys are counted but not remembered or announced.
pub const MAX_KEYS: usize = 200_000;
/// Log lines one pass writes at most; the rest are summed up in one more line.
const LOG_LINES_PER_PASS: usize = 20;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Node(String),
    Edge(String, String, EdgeKind),
}

/// Keys seen, with the time of the pass that last saw each.
#[derive(Default)]
pub struct Known {
    seen: HashMap<Key, u64>,
    /// Keys not remembered because [`MAX_KEYS`] was reached.
    pub overflow: u64,
}

fn label(key: Option<&NodeKey>, id: &str) -> String {
    match key {
        Some(k) => format!("{} {:?}", k.kind.as_str(), k.name),
        None => format!("{id:?}"),
    }
}

/// One sentence about a new edge, in the direction people say it.
fn edge_sentence(from: &str, to: &str, kind: EdgeKind, names: &HashMap<&str, &NodeKey>) -> String {
    let (a, b) = (
        label(names.get(from).copied(), from),
        label(names.get(to).copied(), to),
    );
    match kind {
        EdgeKind::Publish => format!("{a} publishes to {b}"),
        EdgeKind::Consume => format!("{b} consumes from {a}"),
        EdgeKind::Call => format!("{a} calls {b}"),
        EdgeKind::Route => format!("{a} routes to {b}"),
        EdgeKind::DeadLetter => format!("{a} dead-letters to {b}"),
        other => format!("{a} -> {b} ({})", other.as_str()),
    }
}

/// The edges of the map (statistics rows such as failures and dependencies are not).
fn is_edge(kind: EdgeKind) -> bool {
    matches!(
        kind,
        EdgeKind::Publish
            | EdgeKind::Consume
            | EdgeKind::Call
            | EdgeKind::Route
            | EdgeKind::DeadLetter
    )
}

impl Known {
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Remembers every key of `rows` as seen at `now` (after forgetting what was not seen for
    /// [`MEMORY`]); returns a notice for each key it did not know, when `announce`.
    pub fn observe(&mut self, rows: &TopologyRows, now: u64, announce: bool) -> Vec<Notice> {
        let cutoff = now.saturating_sub(MEMORY);
        self.seen.retain(|_, at| *at >= cutoff);
        let names: HashMap<&str, &NodeKey> = rows
            .nodes
            .iter()
            .map(|n| (n.key.id.as_str(), &n.key))
            .collect();
        let mut out = Vec::new();
        for n in &rows.nodes {
            if self.remember(Key::Node(n.key.id.clone()), now) && announce {
                let what = label(Some(&n.key), &n.key.id);
                let kind = ChangeKind::of_node(n.key.kind);
                let sentence = match n.key.kind {
                    NodeKind::Destination => format!(
                        "new {what} on {}",
                        n.key.system.as_deref().unwrap_or("an unknown system")
                    ),
                    _ => format!("new {what}"),
                };
                out.push(Notice::new(now, kind, n.key.id.clone(), sentence));
            }
        }
        for e in rows.edges.iter().filter(|e| is_edge(e.kind)) {
            let key = Key::Edge(e.from.clone(), e.to.clone(), e.kind);
            if self.remember(key, now) && announce {
                let mut n = Notice::new(
                    now,
                    ChangeKind::NewEdge,
                    e.from.clone(),
                    format!(
                        "new edge: {}",
                        edge_sentence(&e.from, &e.to, e.kind, &names)
                    ),
                );
                n.to = Some(e.to.clone());
                n.edge_kind = Some(e.kind);
                out.push(n);
            }
        }
        out
    }

    /// Marks `key` seen at `now`; true when it was not known.
    fn remember(&mut self, key: Key, now: u64) -> bool {
        if let Some(at) = self.seen.get_mut(&key) {
            *at = now;
            return false;
        }
        if self.seen.len() >= MAX_KEYS {
            self.overflow += 1;
            return false;
        }
        self.seen.insert(key, now);
        true
    }
}

/// Writes the log lines of one pass: at most [`LOG_LINES_PER_PASS`], then one line for the
/// rest. Names are quoted (`{:?}`), so a name cannot forge a line.
fn log_notices(notices: &[Notice]) {
    for n in notices.iter().take(LOG_LINES_PER_PASS) {
        tracing::info!(kind = n.kind.as_str(), node = ?n.node, to = ?n.to, "architecture changed: {}", n.description);
    }
    if notices.len() > LOG_LINES_PER_PASS {
        tracing::info!(
            more = notices.len() - LOG_LINES_PER_PASS,
            "architecture changed: more new nodes and edges (see /changes)"
        );
    }
}

/// What the watcher reads and writes.
pub struct Watch {
    pub store: Store,
    pub counters: Arc<IngestCounters>,
    pub log: ChangeLog,
    pub notifiers: Vec<super::notify::Notifier>,
    pub interval: Duration,
}

async fn rows(store: &Store, window: TimeWindow) -> Option<TopologyRows> {
    match store.blocking(move |s| s.topology(window)).await {
        Ok(rows) => Some(rows),
        Err(e) => {
            if let Some(suppressed) = crate::lograte::ERRORS.allow("changes.read") {
                tracing::warn!(error = %e, suppressed, "change watch could not read the store");
            }
            None
        }
    }
}

/// What the watcher knows before its first pass: the last hour's nodes and edges, and the
/// spans stored counter when it was read.
pub struct Baseline {
    known: Known,
    stored: u64,
}

/// Reads the baseline. Called before the listeners open, so spans sent once the server is
/// ready are never mistaken for what was already there.
pub async fn baseline(store: &Store, counters: &IngestCounters) -> Baseline {
    let stored = counters.spans_stored.load(Ordering::Relaxed);
    let mut known = Known::default();
    let now = crate::model::window::now_unix_nanos();
    let window = TimeWindow::new(now.saturating_sub(MEMORY), now + MINUTE);
    if let Some(rows) = window.map(|b| rows(store, b)) {
        if let Some(rows) = rows.await {
            known.observe(&rows, now, false);
        }
    }
    Baseline { known, stored }
}

/// The watcher task: from its baseline, one pass per `interval`.
pub async fn run(w: Watch, baseline: Baseline) {
    let Baseline {
        mut known,
        stored: mut last_stored,
    } = baseline;
    let mut tick = tokio::time::interval(w.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let stored = w.counters.spans_stored.load(Ordering::Relaxed);
        if stored == last_stored {
            continue;
        }
        last_stored = stored;
        let now = crate::model::window::now_unix_nanos();
        let Some(window) = TimeWindow::new(now.saturating_sub(LOOKBACK), now + MINUTE) else {
            continue;
        };
        let Some(rows) = rows(&w.store, window).await else {
            continue;
        };
        let mut notices = known.observe(&rows, now, true);
        if notices.is_empty() {
            continue;
        }
        log_notices(&notices);
        w.log.push(&mut notices);
        for n in &w.notifiers {
            n.send(&notices);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EdgeKind::*;
    use crate::topology::detect::testing::rows;

    #[test]
    fn what_was_seen_within_the_hour_is_not_new() {
        let mut known = Known::default();
        let base = rows(&[("service:a", "destination:rabbitmq:q", Publish, 1)]);
        assert!(
            known.observe(&base, MINUTE, false).is_empty(),
            "a baseline announces nothing"
        );
        assert_eq!(known.len(), 3);
        assert!(known.observe(&base, 2 * MINUTE, true).is_empty());
        let more = rows(&[
            ("service:a", "destination:rabbitmq:q", Publish, 1),
            ("destination:rabbitmq:q", "service:b", Consume, 1),
            ("service:a", "destination:rabbitmq:q", Dependency, 1),
        ]);
        let n = known.observe(&more, 3 * MINUTE, true);
        let got: Vec<(&str, &str)> = n
            .iter()
            .map(|n| (n.kind.as_str(), n.description.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("new_service", "new service \"b\""),
                (
                    "new_edge",
                    "new edge: service \"b\" consumes from destination \"q\""
                ),
            ]
        );
        assert_eq!(n[1].to.as_deref(), Some("service:b"));
        assert_eq!(n[1].edge_kind, Some(Consume));
        // Seen an hour ago: still known. Unseen for longer: forgotten, so its return is
        // announced again.
        let n = known.observe(&more, 3 * MINUTE + MEMORY, true);
        assert!(n.is_empty(), "seen within the hour: {n:?}");
        let only_a = rows(&[("service:a", "destination:rabbitmq:q", Publish, 1)]);
        known.observe(&only_a, 5 * MINUTE + 2 * MEMORY, true);
        let n = known.observe(&more, 6 * MINUTE + 2 * MEMORY, true);
        assert_eq!(n.len(), 2, "{n:?}");
    }

    #[test]
    fn a_new_destination_names_its_system_and_names_are_quoted() {
        let mut known = Known::default();
        let r = rows(&[("service:a\"\nb", "destination:kafka:orders", Publish, 1)]);
        let n = known.observe(&r, MINUTE, true);
        let text: Vec<&str> = n.iter().map(|n| n.description.as_str()).collect();
        assert!(
            text.contains(&"new destination \"orders\" on kafka"),
            "{text:?}"
        );
        assert!(text.iter().all(|t| !t.contains('\n')), "{text:?}");
    }

    #[test]
    fn the_key_bound_holds() {
        let mut known = Known::default();
        for i in 0..MAX_KEYS {
            known.remember(Key::Node(i.to_string()), 1);
        }
        assert!(!known.remember(Key::Node("one more".into()), 1));
        assert_eq!((known.len(), known.overflow), (MAX_KEYS, 1));
    }
}
