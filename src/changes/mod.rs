//! Architecture change notices: a node (service, destination, external peer) or an edge that
//! appears in traces and was not seen in the previous hour. [`watch`] finds them by comparing
//! the keys of the last minutes' statistics with the keys it saw before (a periodic task,
//! never on the ingest path); each is logged, kept in a bounded in-memory [`ChangeLog`]
//! (`/changes`, `GET /api/changes`) and, with `--notify-url`, posted as a JSON summary by
//! [`notify`] (a bounded queue and its own thread).
//!
//! What survives a restart: nothing of the log (it is in memory); the watcher's first pass
//! after a start reads the last hour from the store as its baseline, so what was already
//! there is not announced again.

pub mod notify;
pub mod tls;
pub mod watch;

use crate::model::window::rfc3339;
use crate::model::{EdgeKind, NodeKind};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Notices the log keeps; older ones are dropped first.
pub const LOG_CAPACITY: usize = 1_000;

/// What appeared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    NewService,
    NewDestination,
    NewPeer,
    NewEdge,
}

impl ChangeKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ChangeKind::NewService => "new_service",
            ChangeKind::NewDestination => "new_destination",
            ChangeKind::NewPeer => "new_peer",
            ChangeKind::NewEdge => "new_edge",
        }
    }

    pub fn of_node(kind: NodeKind) -> ChangeKind {
        match kind {
            NodeKind::Service => ChangeKind::NewService,
            NodeKind::Destination => ChangeKind::NewDestination,
            NodeKind::External => ChangeKind::NewPeer,
        }
    }
}

/// One notice. Names come from span data: shown escaped, logged quoted.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Notice {
    /// Order of detection, from 1 since the start.
    pub seq: u64,
    pub at_unix_nanos: u64,
    pub at: String,
    pub kind: ChangeKind,
    /// The new node's id, or the new edge's source.
    pub node: String,
    /// A new edge's target and kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edge_kind: Option<EdgeKind>,
    /// One sentence: `service "checkout" publishes to destination "orders" (new edge)`.
    pub description: String,
}

impl Notice {
    pub fn new(at_unix_nanos: u64, kind: ChangeKind, node: String, description: String) -> Notice {
        Notice {
            seq: 0,
            at_unix_nanos,
            at: rfc3339(at_unix_nanos),
            kind,
            node,
            to: None,
            edge_kind: None,
            description,
        }
    }
}

/// The last [`LOG_CAPACITY`] notices, newest last. A cheap clone (shared).
#[derive(Clone, Default)]
pub struct ChangeLog {
    // A std Mutex: held to push or copy a bounded list, never across an await or any IO.
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    notices: VecDeque<Notice>,
    next_seq: u64,
    dropped: u64,
}

impl ChangeLog {
    /// Appends notices (numbering them), dropping the oldest past the capacity.
    pub fn push(&self, notices: &mut [Notice]) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        for n in notices.iter_mut() {
            inner.next_seq += 1;
            n.seq = inner.next_seq;
            if inner.notices.len() == LOG_CAPACITY {
                inner.notices.pop_front();
                inner.dropped += 1;
            }
            inner.notices.push_back(n.clone());
        }
    }

    /// Up to `limit` notices, newest first, and how many older ones were dropped.
    pub fn newest(&self, limit: usize) -> (Vec<Notice>, u64) {
        let Ok(inner) = self.inner.lock() else {
            return (Vec::new(), 0);
        };
        let list = inner.notices.iter().rev().take(limit).cloned().collect();
        (list, inner.dropped)
    }

    pub fn total(&self) -> u64 {
        self.inner.lock().map(|i| i.next_seq).unwrap_or(0)
    }
}

/// Everything the web server reads about changes: the log and the webhook's counters.
#[derive(Clone, Default)]
pub struct Changes {
    pub log: ChangeLog,
    /// One per `--notify-url` receiver, each with its own queue, thread and retries.
    pub notify: Vec<notify::Notifier>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_the_newest_and_numbers_them() {
        let log = ChangeLog::default();
        let mut batch: Vec<Notice> = (0..LOG_CAPACITY + 5)
            .map(|i| {
                Notice::new(
                    i as u64,
                    ChangeKind::NewService,
                    format!("service:{i}"),
                    String::new(),
                )
            })
            .collect();
        log.push(&mut batch);
        let (newest, dropped) = log.newest(3);
        assert_eq!(dropped, 5);
        let seqs: Vec<u64> = newest.iter().map(|n| n.seq).collect();
        let last = (LOG_CAPACITY + 5) as u64;
        assert_eq!(seqs, [last, last - 1, last - 2]);
        assert_eq!(log.newest(usize::MAX).0.len(), LOG_CAPACITY);
        assert_eq!(log.total(), last);
    }
}
