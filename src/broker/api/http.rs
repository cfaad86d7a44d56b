//! The broker's HTTP JSON API under `/broker/` (docs/BROKER.md). Handlers only extract input,
//! ask the router and map errors.

use super::{event, HOPS_HEADER, SERVICE_HEADER};
use crate::broker::*;
use crate::error::RETRY_AFTER_SECS;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use futures_util::StreamExt;
use std::time::Duration;

/// Largest control body (declarations, ack and nack lists).
pub(super) const MAX_CONTROL_BODY: usize = 1024 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // The message path first: routes are tried in order.
    cfg.route("/broker/topics/{topic}/events", web::post().to(publish))
        .route("/broker/subscriptions/{sub}/ack", web::post().to(ack))
        .route("/broker/subscriptions/{sub}/pull", web::post().to(pull))
        .configure(super::sse::configure)
        .route("/broker/subscriptions/{sub}/nack", web::post().to(nack))
        .route("/broker/topics/{topic}/request", web::post().to(request))
        .route("/broker/topics", web::get().to(topics))
        .route("/broker/topics/{topic}", web::put().to(declare_topic))
        .route(
            "/broker/topics/{topic}",
            web::delete().to(|p, b| delete(Deletable::Topic, p, b)),
        )
        .route("/broker/subscriptions", web::get().to(subscriptions))
        .route(
            "/broker/subscriptions/{sub}",
            web::put().to(declare_subscription),
        )
        .route(
            "/broker/subscriptions/{sub}",
            web::delete().to(|p, b| delete(Deletable::Subscription, p, b)),
        )
        .route(
            "/broker/subscriptions/{sub}/dead-letters",
            web::get().to(dead_letters),
        )
        .route(
            "/broker/subscriptions/{sub}/dead-letters/redrive",
            web::post().to(redrive),
        )
        .configure(super::stream_http::configure)
        // Anything else under /broker/ (an unknown path, a method a path does not take) is a
        // JSON 404 like every broker error.
        .route("/broker/{tail:.*}", web::route().to(no_endpoint));
}

async fn no_endpoint(req: HttpRequest) -> Answer {
    Err(BrokerError::NotFound(format!(
        "no broker endpoint {} {} (see docs/BROKER.md)",
        req.method(),
        req.path()
    )))
}

impl ResponseError for BrokerError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let code = self.code();
        let mut builder = HttpResponse::build(self.status_code());
        if code.retryable() {
            builder.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()));
        }
        if code == crate::error::ErrorCode::Internal {
            if let Some(suppressed) = crate::lograte::ERRORS.allow("broker.request") {
                tracing::error!(error = %self, suppressed, "broker request failed");
            }
        }
        builder.json(serde_json::json!({"error": code.as_str(), "message": self.to_string()}))
    }
}

pub(super) type Answer = Result<HttpResponse, BrokerError>;

fn header_str<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The caller's service (`Switchyard-Service`) and W3C trace context.
pub(super) fn caller(req: &HttpRequest) -> Caller {
    Caller {
        service: header_str(req, SERVICE_HEADER)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        trace: TraceContext {
            traceparent: header_str(req, "traceparent").map(str::to_string),
            tracestate: header_str(req, "tracestate").map(str::to_string),
        },
    }
}

/// The push hops a publish says its message went through (`Switchyard-Hops`; 0 without).
fn header_hops(req: &HttpRequest) -> u32 {
    let value = header_str(req, HOPS_HEADER).map(|h| serde_json::Value::from(h.trim()));
    event::hops_value(value.as_ref())
}

pub(super) async fn read_body(
    req: &HttpRequest,
    mut body: web::Payload,
    limit: usize,
) -> Result<Vec<u8>, BrokerError> {
    let declared = header_str(req, "content-length").and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(BrokerError::TooLarge { limit });
    }
    let mut out = Vec::with_capacity(declared.unwrap_or(4096).min(limit));
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| BrokerError::BadRequest(format!("could not read the body: {e}")))?;
        if out.len() + chunk.len() > limit {
            return Err(BrokerError::TooLarge { limit });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

pub(super) fn json_body<T: serde::de::DeserializeOwned>(raw: &[u8]) -> Result<T, BrokerError> {
    let raw = if raw.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        raw
    };
    serde_json::from_slice(raw)
        .map_err(|e| BrokerError::BadRequest(format!("invalid JSON body: {e}")))
}

pub(super) fn declared(d: Declared) -> HttpResponse {
    let status = if d.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    HttpResponse::build(status).json(d)
}

async fn declare_topic(path: web::Path<String>, broker: web::Data<Broker>) -> Answer {
    Ok(declared(broker.declare_topic(path.into_inner()).await?))
}

/// Deletes a destination with what it holds (`server::catalogue`) and answers what went.
pub(super) async fn delete(
    what: Deletable,
    path: web::Path<String>,
    broker: web::Data<Broker>,
) -> Answer {
    let name = path.into_inner();
    let deleted = broker
        .ask(|reply| Command::Delete { what, name, reply })
        .await?;
    Ok(HttpResponse::Ok().json(deleted))
}

async fn topics(broker: web::Data<Broker>) -> Answer {
    let topics = broker.ask(|reply| Command::Topics { reply }).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "topics": topics })))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscriptionBody {
    topic: String,
    visibility_timeout_ms: Option<u64>,
    max_attempts: Option<u32>,
    filter: Option<Filter>,
    push: Option<Push>,
}

async fn declare_subscription(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
    broker: web::Data<Broker>,
) -> Answer {
    let b: SubscriptionBody = json_body(&read_body(&req, body, MAX_CONTROL_BODY).await?)?;
    let spec = SubscriptionSpec {
        name: path.into_inner(),
        topic: b.topic,
        visibility_timeout_ms: b
            .visibility_timeout_ms
            .unwrap_or(DEFAULT_VISIBILITY_TIMEOUT_MS),
        max_attempts: b.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS),
        filter: b.filter,
        push: b.push,
    };
    Ok(declared(broker.declare_subscription(spec).await?))
}

async fn subscriptions(broker: web::Data<Broker>) -> Answer {
    let subs = broker.subscriptions().await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "subscriptions": subs })))
}

async fn publish(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
    broker: web::Data<Broker>,
) -> Answer {
    publish_to(BatchTarget::Topic(path.into_inner()), &req, body, &broker).await
}

/// A publish to a topic or a stream, in any body form (a batch answers one entry per event).
pub(super) async fn publish_to(
    target: BatchTarget,
    req: &HttpRequest,
    body: web::Payload,
    broker: &Broker,
) -> Answer {
    let (events, caller, _room) = read_events(req, body, broker).await?;
    let event = match events {
        Events::One(event) => event,
        Events::Batch(events) => {
            let published = broker.publish_batch(target, events, caller).await?;
            return Ok(HttpResponse::Ok().json(serde_json::json!({ "published": published })));
        }
    };
    let published = match target {
        BatchTarget::Topic(topic) => broker.publish(topic, event, caller).await?,
        BatchTarget::Stream(stream) => broker.append(stream, event, caller).await?,
    };
    Ok(HttpResponse::Ok().json(published))
}

#[derive(serde::Deserialize)]
struct RequestQuery {
    reply_to: String,
    timeout: Option<String>,
}

/// Publishes a request and answers with its reply (or 504 after `timeout`, default 10 s).
async fn request(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<RequestQuery>,
    body: web::Payload,
    broker: web::Data<Broker>,
) -> Answer {
    let timeout = match query.timeout.as_deref() {
        Some(t) => parse_wait(Some(t))?,
        None => Duration::from_secs(10),
    };
    let (event, caller, _room) = read_event(&req, body, &broker).await?;
    let (topic, reply_to) = (path.into_inner(), query.into_inner().reply_to);
    let replied = broker
        .request(topic, reply_to, event, caller, timeout)
        .await?;
    Ok(HttpResponse::Ok().json(replied))
}

/// What one publish request carries.
pub(super) enum Events {
    One(Event),
    /// CloudEvents' batched content mode.
    Batch(Vec<Event>),
}

/// A batched publish body may be this many times the message limit (each event within it).
pub const BATCH_BODY_FACTOR: usize = 4;

/// A publish body (CloudEvents structured, binary or batched mode, or plain JSON) within the
/// limits, and its caller.
pub(super) async fn read_events(
    req: &HttpRequest,
    body: web::Payload,
    broker: &Broker,
) -> Result<(Events, Caller, tokio::sync::OwnedSemaphorePermit), BrokerError> {
    if !event::is_batch(header_str(req, "content-type")) {
        let (event, caller, room) = read_event(req, body, broker).await?;
        return Ok((Events::One(event), caller, room));
    }
    let limit = broker.config.max_message_bytes;
    let body_limit = limit.saturating_mul(BATCH_BODY_FACTOR);
    let declared = header_str(req, "content-length").and_then(|v| v.parse::<usize>().ok());
    let room = broker.admit(declared.unwrap_or(body_limit).min(body_limit))?;
    let raw = read_body(req, body, body_limit).await?;
    let mut events = event::parse_batch(&raw)?;
    if events.iter().any(|e| e.size() > limit) {
        return Err(BrokerError::TooLarge { limit });
    }
    let hops = header_hops(req);
    events.iter_mut().for_each(|e| e.raise_hops(hops));
    Ok((Events::Batch(events), caller(req), room))
}

/// A publish body (CloudEvents structured or binary mode, or plain JSON) within the message
/// limit, and its caller.
pub(super) async fn read_event(
    req: &HttpRequest,
    body: web::Payload,
    broker: &Broker,
) -> Result<(Event, Caller, tokio::sync::OwnedSemaphorePermit), BrokerError> {
    let limit = broker.config.max_message_bytes;
    let declared = header_str(req, "content-length").and_then(|v| v.parse::<usize>().ok());
    let room = broker.admit(declared.unwrap_or(limit).min(limit))?;
    let raw = read_body(req, body, limit).await?;
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("ce-"))
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let caller = caller(req);
    let mut event = event::parse(
        header_str(req, "content-type"),
        &headers,
        &raw,
        caller.service.as_deref(),
    )?;
    if event.size() > limit {
        return Err(BrokerError::TooLarge { limit });
    }
    event.raise_hops(header_hops(req));
    Ok((event, caller, room))
}

#[derive(serde::Deserialize)]
struct PullQuery {
    max: Option<usize>,
    wait: Option<String>,
}

/// `wait` as a duration (`5s`, `250ms`) or a number of seconds.
pub(super) fn parse_wait(text: Option<&str>) -> Result<Duration, BrokerError> {
    let Some(t) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(Duration::ZERO);
    };
    if let Ok(secs) = t.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(Duration::from_secs_f64(secs.min(MAX_WAIT.as_secs_f64())));
        }
    }
    humantime::parse_duration(t)
        .map(|d| d.min(MAX_WAIT))
        .map_err(|_| BrokerError::BadRequest(format!("invalid wait {t:?}: use e.g. 5s or 250ms")))
}

async fn pull(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<PullQuery>,
    broker: web::Data<Broker>,
) -> Answer {
    let wait = parse_wait(query.wait.as_deref())?;
    let max = query.max.unwrap_or(1);
    if max == 0 || max > MAX_PULL {
        return Err(BrokerError::BadRequest(format!(
            "max must be 1 to {MAX_PULL}"
        )));
    }
    let messages = broker
        .pull(path.into_inner(), max, wait, caller(&req))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "messages": messages })))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SettleBody {
    lease_ids: Vec<String>,
    #[serde(default)]
    delay_ms: u64,
}

async fn settle(
    req: HttpRequest,
    sub: String,
    body: web::Payload,
    broker: web::Data<Broker>,
    ack: bool,
) -> Answer {
    let b: SettleBody = json_body(&read_body(&req, body, MAX_CONTROL_BODY).await?)?;
    let action = if ack {
        Settle::Ack
    } else {
        Settle::Nack {
            delay_ms: b.delay_ms,
        }
    };
    let settled = broker
        .settle(sub, b.lease_ids, action, caller(&req))
        .await?;
    Ok(HttpResponse::Ok().json(settled))
}

async fn ack(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
    broker: web::Data<Broker>,
) -> Answer {
    settle(req, path.into_inner(), body, broker, true).await
}

async fn nack(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
    broker: web::Data<Broker>,
) -> Answer {
    settle(req, path.into_inner(), body, broker, false).await
}

#[derive(serde::Deserialize)]
struct DeadQuery {
    max: Option<usize>,
    after: Option<String>,
}

/// A page of dead letters, streamed as it is read (see `server::reader`).
async fn dead_letters(
    path: web::Path<String>,
    query: web::Query<DeadQuery>,
    broker: web::Data<Broker>,
) -> Answer {
    let q = query.into_inner();
    let after = q.after.as_deref().map(Cursor::parse).transpose()?;
    let page = broker
        .dead_letters(path.into_inner(), after, q.max.unwrap_or(100))
        .await?;
    let body = futures_util::stream::unfold(page, |mut page| async move {
        let part = page.next().await?;
        Some((part.map(web::Bytes::from), page))
    });
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .streaming(body))
}

async fn redrive(path: web::Path<String>, broker: web::Data<Broker>) -> Answer {
    let subscription = path.into_inner();
    let n = broker
        .ask(|reply| Command::Redrive {
            subscription,
            reply,
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "redriven": n })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_accepts_seconds_and_durations() {
        assert_eq!(parse_wait(None).unwrap(), Duration::ZERO);
        assert_eq!(parse_wait(Some("2")).unwrap(), Duration::from_secs(2));
        assert_eq!(
            parse_wait(Some("250ms")).unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(parse_wait(Some("1e9")).unwrap(), MAX_WAIT);
        assert!(parse_wait(Some("soon")).is_err());
    }
}
