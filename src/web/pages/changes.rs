//! `/changes` and `GET /api/changes`: the architecture change notices, newest first, from
//! the in-memory log (the last [`crate::changes::LOG_CAPACITY`]; none survive a restart), and
//! the `--notify-url` webhook's counters.

use crate::changes::{Notice, LOG_CAPACITY};
use crate::web::render::{render, PageError};
use crate::web::state::AppState;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;

#[derive(Template)]
#[template(path = "changes.html")]
pub struct ChangesPage {
    pub notices: Vec<Notice>,
    pub dropped: u64,
    pub capacity: usize,
    /// The webhook's URL without secrets, and its counters.
    pub notify: Option<NotifyJson>,
}

/// A webhook's counters.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    pub queued: u64,
    pub sent: u64,
    pub failed: u64,
    pub attempts_failed: u64,
    pub dropped: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.queued += o.queued;
        self.sent += o.sent;
        self.failed += o.failed;
        self.attempts_failed += o.attempts_failed;
        self.dropped += o.dropped;
    }
}

/// One `--notify-url` receiver: its URL without user info and query, and its counters.
#[derive(Clone, Debug, Serialize)]
pub struct ReceiverJson {
    pub url: String,
    #[serde(flatten)]
    pub counts: Counts,
}

/// The webhook: the counters summed over every receiver (`url`: the first receiver's), and
/// each receiver's own.
#[derive(Clone, Debug, Serialize)]
pub struct NotifyJson {
    pub url: String,
    #[serde(flatten)]
    pub counts: Counts,
    pub receivers: Vec<ReceiverJson>,
}

fn notify_json(state: &AppState) -> Option<NotifyJson> {
    let receivers: Vec<ReceiverJson> = state
        .changes
        .notify
        .iter()
        .map(|n| {
            let c = &n.counters;
            ReceiverJson {
                url: n.url.redacted().to_string(),
                counts: Counts {
                    queued: c.queued.load(Ordering::Relaxed),
                    sent: c.sent.load(Ordering::Relaxed),
                    failed: c.failed.load(Ordering::Relaxed),
                    attempts_failed: c.attempts_failed.load(Ordering::Relaxed),
                    dropped: c.dropped.load(Ordering::Relaxed),
                },
            }
        })
        .collect();
    let url = receivers.first()?.url.clone();
    let mut counts = Counts::default();
    for r in &receivers {
        counts.add(&r.counts);
    }
    Some(NotifyJson {
        url,
        counts,
        receivers,
    })
}

pub async fn page(state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let (notices, dropped) = state.changes.log.newest(LOG_CAPACITY);
    render(ChangesPage {
        notices,
        dropped,
        capacity: LOG_CAPACITY,
        notify: notify_json(&state),
    })
    .await
}

#[derive(Debug, Deserialize)]
pub struct ChangesParams {
    /// Notices at most (1 to the log's capacity; 100 by default).
    pub limit: Option<usize>,
}

#[derive(Serialize)]
struct ChangesJson {
    /// Newest first.
    changes: Vec<Notice>,
    /// Notices detected since the start.
    total: u64,
    /// Older notices no longer kept.
    dropped: u64,
    capacity: usize,
    notify: Option<NotifyJson>,
}

pub async fn api(q: web::Query<ChangesParams>, state: web::Data<AppState>) -> HttpResponse {
    let limit = q.limit.unwrap_or(100).clamp(1, LOG_CAPACITY);
    let (changes, dropped) = state.changes.log.newest(limit);
    HttpResponse::Ok().json(ChangesJson {
        changes,
        total: state.changes.log.total(),
        dropped,
        capacity: LOG_CAPACITY,
        notify: notify_json(&state),
    })
}
