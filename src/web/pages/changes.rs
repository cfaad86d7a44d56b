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

#[derive(Clone, Debug, Serialize)]
pub struct NotifyJson {
    /// The URL without user info and query.
    pub url: String,
    pub queued: u64,
    pub sent: u64,
    pub failed: u64,
    pub attempts_failed: u64,
    pub dropped: u64,
}

fn notify_json(state: &AppState) -> Option<NotifyJson> {
    let n = state.changes.notify.as_ref()?;
    let c = &n.counters;
    Some(NotifyJson {
        url: n.url.redacted().to_string(),
        queued: c.queued.load(Ordering::Relaxed),
        sent: c.sent.load(Ordering::Relaxed),
        failed: c.failed.load(Ordering::Relaxed),
        attempts_failed: c.attempts_failed.load(Ordering::Relaxed),
        dropped: c.dropped.load(Ordering::Relaxed),
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
