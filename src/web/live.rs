//! `GET /api/live`: server-sent events for watches (the map refreshes itself when spans
//! arrive). The stream reads the ingest counters once a second (atomics: no SQL, nothing
//! shared to lock) and sends `stored` with the count of stored spans whenever it changes.
//! Each stream ends after [`STREAM_LIFETIME_TICKS`] seconds and the browser's EventSource
//! reconnects (`retry`), so an open page never holds a staged shutdown for long.

use crate::api::Stored;
use crate::web::state::AppState;
use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Seconds one stream stays open.
pub const STREAM_LIFETIME_TICKS: u32 = 8;
const TICK: Duration = Duration::from_secs(1);

/// One SSE message, or a comment that keeps the connection warm.
fn message(stored: Option<u64>, first: bool) -> Bytes {
    let Some(spans_stored) = stored else {
        return Bytes::from_static(b": idle\n\n");
    };
    let data = serde_json::to_string(&Stored { spans_stored }).unwrap_or_default();
    let retry = if first { "retry: 1000\n" } else { "" };
    Bytes::from(format!("{retry}event: stored\ndata: {data}\n\n"))
}

pub async fn live(state: web::Data<AppState>) -> HttpResponse {
    let counters = state.counters.clone();
    let stream = futures_util::stream::unfold((0u32, None::<u64>), move |(tick, last)| {
        let counters = counters.clone();
        async move {
            if tick > STREAM_LIFETIME_TICKS {
                return None;
            }
            if tick > 0 {
                tokio::time::sleep(TICK).await;
            }
            let now = counters.spans_stored.load(Ordering::Relaxed);
            let changed = (last != Some(now)).then_some(now);
            let bytes = message(changed, tick == 0);
            Some((Ok::<_, actix_web::Error>(bytes), (tick + 1, Some(now))))
        }
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .streaming(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_sse_frames() {
        assert_eq!(
            message(Some(3), true),
            Bytes::from_static(b"retry: 1000\nevent: stored\ndata: {\"spans_stored\":3}\n\n")
        );
        assert_eq!(
            message(Some(4), false),
            Bytes::from_static(b"event: stored\ndata: {\"spans_stored\":4}\n\n")
        );
        assert_eq!(message(None, false), Bytes::from_static(b": idle\n\n"));
    }
}
