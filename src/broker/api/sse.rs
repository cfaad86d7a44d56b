//! Streaming consume over Server-Sent Events: a subscription's deliveries (leased as for a
//! pull; settle them with ack/nack) or a stream's events (resumable with `Last-Event-ID`),
//! pushed as they arrive. Each step asks the router for the next batch only once the previous
//! one was written out, so a slow client slows the leasing instead of buffering in memory.

use super::http::{caller, parse_wait, Answer};
use crate::broker::server::command;
use crate::broker::*;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::stream;
use std::time::Duration;

/// Longest wait of one step; a comment line keeps the connection alive between steps.
const STEP_WAIT: Duration = Duration::from_secs(15);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/broker/subscriptions/{sub}/events",
        web::get().to(subscription_events),
    )
    .route("/broker/streams/{stream}/sse", web::get().to(stream_events));
}

#[derive(serde::Deserialize)]
struct SseQuery {
    max: Option<usize>,
    from: Option<String>,
    group: Option<String>,
    /// Step wait (tests use short ones); default 15 s.
    wait: Option<String>,
}

/// One SSE frame: `id`, `event` and one JSON `data` line.
fn frame(id: &str, kind: &str, data: &impl serde::Serialize) -> Bytes {
    let json = serde_json::to_string(data).unwrap_or_default();
    Bytes::from(format!("id: {id}\nevent: {kind}\ndata: {json}\n\n"))
}

fn sse(
    body: impl futures_util::Stream<Item = Result<Bytes, BrokerError>> + 'static,
) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .streaming(body)
}

fn step_wait(q: &SseQuery) -> Result<Duration, BrokerError> {
    Ok(match q.wait.as_deref() {
        Some(w) => parse_wait(Some(w))?.max(Duration::from_millis(10)),
        None => STEP_WAIT,
    })
}

async fn subscription_events(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<SseQuery>,
    broker: web::Data<Broker>,
) -> Answer {
    let sub = path.into_inner();
    let max = query.max.unwrap_or(10).clamp(1, MAX_PULL);
    let wait = step_wait(&query)?;
    let caller = caller(&req);
    let broker = broker.into_inner();
    // The first step runs before the answer, so an unknown subscription is a plain 404.
    let first = broker
        .pull(sub.clone(), max, Duration::ZERO, caller.clone())
        .await?;
    let body = stream::unfold(Some(first), move |first| {
        let (broker, sub, caller) = (broker.clone(), sub.clone(), caller.clone());
        async move {
            let batch = match first {
                Some(b) => b,
                // Shutdown: end the stream so the server can stop (the client reconnects).
                None if broker.is_draining() => return None,
                None => match broker.pull(sub, max, wait, caller).await {
                    Ok(b) => b,
                    // The broker stops: end the stream (the client reconnects).
                    Err(_) => return None,
                },
            };
            let mut out = Vec::new();
            if batch.is_empty() {
                out.extend_from_slice(b": waiting\n\n");
            }
            for d in &batch {
                out.extend_from_slice(&frame(&d.lease_id, "delivery", d));
            }
            Some((Ok(Bytes::from(out)), None))
        }
    });
    Ok(sse(body))
}

async fn stream_events(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<SseQuery>,
    broker: web::Data<Broker>,
) -> Answer {
    let name = path.into_inner();
    let max = query.max.unwrap_or(100).clamp(1, MAX_PULL);
    let wait = step_wait(&query)?;
    let caller = caller(&req);
    // A reconnecting client resumes after the last event it saw.
    let resume = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let from = match resume {
        Some(last) => ReadFrom::Offset(last + 1),
        None => super::stream_http::parse_from(query.from.as_deref(), query.group.is_some())?,
    };
    let group = query.group.clone();
    let broker = broker.into_inner();
    let draining = broker.clone();
    let read = move |from: ReadFrom, wait: Duration| {
        let (broker, name, group, caller) =
            (broker.clone(), name.clone(), group.clone(), caller.clone());
        async move {
            broker
                .ask(|reply| {
                    Command::StreamRead(command::StreamRead {
                        stream: name,
                        from,
                        group,
                        max,
                        wait,
                        caller,
                        reply,
                    })
                })
                .await
        }
    };
    let first = read(from, Duration::ZERO).await?;
    let body = stream::unfold((Some(first), 0u64), move |(first, next)| {
        let (read, draining) = (read.clone(), draining.clone());
        async move {
            let batch = match first {
                Some(b) => b,
                None if draining.is_draining() => return None,
                None => read(ReadFrom::Offset(next), wait).await.ok()?,
            };
            let mut out = Vec::new();
            if batch.events.is_empty() {
                out.extend_from_slice(b": waiting\n\n");
            }
            for e in &batch.events {
                out.extend_from_slice(&frame(&e.offset.to_string(), "event", e));
            }
            Some((Ok(Bytes::from(out)), (None, batch.next_offset)))
        }
    });
    Ok(sse(body))
}
