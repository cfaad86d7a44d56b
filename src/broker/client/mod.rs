//! A blocking Rust client of the broker's HTTP API (used by the tests; usable by any Rust
//! service). Each call is one HTTP request, except [`Client::publish_json`]: concurrent
//! publishes to one topic from the threads sharing a client are coalesced into batched
//! requests (see `coalesce`). Errors keep the server's status and message.

pub mod acker;
mod coalesce;
mod consume;
mod streams;
mod wire;

pub use consume::{Closer, Deliveries};

use crate::broker::proto::types::{
    DeadLetter, DeadLetterPage, Declared, Deleted, Delivery, Filter, Published, Replied, Settled,
    SubscriptionInfo, TopicInfo,
};
use crate::broker::proto::{event::BATCH_MEDIA_TYPE, MAX_WAIT, SERVICE_HEADER, UNKNOWN_SERVICE};
use crate::percent::encode;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wire::{Answer, Request, Wire};

#[derive(Clone, Debug, thiserror::Error)]
pub enum ClientError {
    /// The broker answered with an error status.
    #[error("{status} {error}: {message}")]
    Status {
        status: u16,
        error: String,
        message: String,
    },
    #[error("transport: {0}")]
    Transport(String),
    #[error("unexpected answer: {0}")]
    Decode(String),
}

impl ClientError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A broker client for one `--http` address, calling as one service.
#[derive(Clone)]
pub struct Client {
    service: Option<String>,
    /// `Bearer <token>` for a server started with `--auth-token` (never shown: no `Debug`).
    authorization: Option<String>,
    wire: Arc<Wire>,
    coalescer: Arc<coalesce::Coalescer>,
    /// HTTP requests made by this client and its clones.
    requests: Arc<AtomicU64>,
}

/// How long a call waits for its answer: the longest wait a call can ask the broker for, and
/// some.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(MAX_WAIT.as_secs() + 10);

impl Client {
    /// `addr`: `127.0.0.1:8080` or `http://127.0.0.1:8080`.
    pub fn new(addr: &str) -> Client {
        Client {
            wire: Arc::new(Wire::new(addr)),
            service: None,
            authorization: None,
            coalescer: Arc::default(),
            requests: Arc::default(),
        }
    }

    /// Names the calling service (`Switchyard-Service`) in the broker's spans.
    pub fn with_service(mut self, service: &str) -> Client {
        self.service = Some(service.to_string());
        self
    }

    /// Sends `Authorization: Bearer <token>` with every request, for a server started with
    /// `--auth-token`.
    pub fn with_auth_token(mut self, token: &str) -> Client {
        self.authorization = Some(format!("Bearer {}", token.trim()));
        self
    }

    /// HTTP requests this client and its clones have made (coalesced publishes share them).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The headers of every request: the body's type, if any, the calling service and the
    /// token.
    fn headers<'a>(&'a self, content_type: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
        let service = self.service.as_deref();
        let service = service.map(|s| (SERVICE_HEADER, s));
        let authorization = self.authorization.as_deref();
        content_type
            .map(|ct| ("Content-Type", ct))
            .into_iter()
            .chain(service)
            .chain(authorization.map(|a| ("Authorization", a)))
            .collect()
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Answer, ClientError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.wire.call(&Request {
            method,
            path,
            headers: &self.headers(content_type),
            body,
            timeout: ANSWER_TIMEOUT,
        })
    }

    fn send<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<T, ClientError> {
        decode(self.call(method, path, Some(content_type), body))
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        decode(self.call("GET", path, None, b""))
    }

    pub fn declare_topic(&self, name: &str) -> Result<Declared, ClientError> {
        self.send(
            "PUT",
            &format!("/broker/topics/{name}", name = encode(name)),
            "application/json",
            b"{}",
        )
    }

    pub fn declare_subscription(
        &self,
        name: &str,
        topic: &str,
        visibility_timeout_ms: u64,
        max_attempts: u32,
    ) -> Result<Declared, ClientError> {
        let body = json!({"topic": topic, "visibility_timeout_ms": visibility_timeout_ms, "max_attempts": max_attempts});
        self.send(
            "PUT",
            &format!("/broker/subscriptions/{name}", name = encode(name)),
            "application/json",
            body.to_string().as_bytes(),
        )
    }

    /// Declares a subscription that only queues events matching `filter`.
    pub fn declare_filtered_subscription(
        &self,
        name: &str,
        topic: &str,
        filter: &Filter,
    ) -> Result<Declared, ClientError> {
        let body = json!({"topic": topic, "filter": filter});
        self.send(
            "PUT",
            &format!("/broker/subscriptions/{name}", name = encode(name)),
            "application/json",
            body.to_string().as_bytes(),
        )
    }

    pub fn topics(&self) -> Result<Vec<TopicInfo>, ClientError> {
        let v: Value = self.get("/broker/topics")?;
        from_value(v["topics"].clone())
    }

    pub fn subscriptions(&self) -> Result<Vec<SubscriptionInfo>, ClientError> {
        let v: Value = self.get("/broker/subscriptions")?;
        from_value(v["subscriptions"].clone())
    }

    /// Publishes structured CloudEvents in one request (batched content mode): all of them are
    /// committed, or none.
    pub fn publish_events(
        &self,
        topic: &str,
        events: &[Value],
    ) -> Result<Vec<Published>, ClientError> {
        self.send_batch(
            &format!("/broker/topics/{topic}/events", topic = encode(topic)),
            events,
        )
    }

    fn send_batch(&self, path: &str, events: &[Value]) -> Result<Vec<Published>, ClientError> {
        let serialized: Vec<String> = events.iter().map(Value::to_string).collect();
        self.send_serialized(path, &serialized)
    }

    /// Sends serialized structured events as one batch (a JSON array of them).
    fn send_serialized(
        &self,
        path: &str,
        events: &[String],
    ) -> Result<Vec<Published>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            published: Vec<Published>,
        }
        let mut body = Vec::with_capacity(2 + events.iter().map(|e| e.len() + 1).sum::<usize>());
        body.push(b'[');
        for (i, e) in events.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(e.as_bytes());
        }
        body.push(b']');
        let answer: Answer = self.send("POST", path, BATCH_MEDIA_TYPE, &body)?;
        Ok(answer.published)
    }

    /// Publishes a CloudEvent in structured mode.
    pub fn publish_event(&self, topic: &str, event: &Value) -> Result<Published, ClientError> {
        self.publish_serialized(topic, &event.to_string())
    }

    fn publish_serialized(&self, topic: &str, event: &str) -> Result<Published, ClientError> {
        self.send(
            "POST",
            &format!("/broker/topics/{topic}/events", topic = encode(topic)),
            "application/cloudevents+json",
            event.as_bytes(),
        )
    }

    /// Leases up to `max` messages, waiting up to `wait` for the first.
    pub fn pull(
        &self,
        sub: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, ClientError> {
        let path = format!(
            "/broker/subscriptions/{sub}/pull?max={max}&wait={}ms",
            wait.as_millis(),
            sub = encode(sub)
        );
        let v: Value = self.send("POST", &path, "application/json", b"")?;
        from_value(v["messages"].clone())
    }

    /// An [`Acker`](acker::Acker) for `sub`: acks handed over without waiting, sent from
    /// a background thread in batches that wait up to 1 ms for company.
    pub fn acker(&self, sub: &str) -> std::io::Result<acker::Acker> {
        acker::Acker::start(self, sub, acker::Acker::LINGER)
    }

    pub fn ack(&self, sub: &str, lease_ids: &[String]) -> Result<Settled, ClientError> {
        let body = json!({ "lease_ids": lease_ids });
        self.send(
            "POST",
            &format!("/broker/subscriptions/{sub}/ack", sub = encode(sub)),
            "application/json",
            body.to_string().as_bytes(),
        )
    }

    pub fn nack(
        &self,
        sub: &str,
        lease_ids: &[String],
        delay_ms: u64,
    ) -> Result<Settled, ClientError> {
        let body = json!({ "lease_ids": lease_ids, "delay_ms": delay_ms });
        self.send(
            "POST",
            &format!("/broker/subscriptions/{sub}/nack", sub = encode(sub)),
            "application/json",
            body.to_string().as_bytes(),
        )
    }

    /// Deletes a topic (with its subscriptions), a subscription or a stream, by its path
    /// under `/broker/`: `topics/NAME`, `subscriptions/NAME` or `streams/NAME`.
    pub fn delete(&self, kind: &str, name: &str) -> Result<Deleted, ClientError> {
        let path = format!("/broker/{kind}/{name}", name = encode(name));
        decode(self.call("DELETE", &path, None, b""))
    }

    /// Moves every dead letter back to the subscription's queue; returns how many.
    pub fn redrive(&self, sub: &str) -> Result<u64, ClientError> {
        let path = format!(
            "/broker/subscriptions/{sub}/dead-letters/redrive",
            sub = encode(sub)
        );
        let v: Value = self.send("POST", &path, "application/json", b"")?;
        v["redriven"]
            .as_u64()
            .ok_or_else(|| ClientError::Decode(v.to_string()))
    }

    /// The first page of a subscription's dead letters (see [`Client::dead_letter_page`]).
    pub fn dead_letters(&self, sub: &str, max: usize) -> Result<Vec<DeadLetter>, ClientError> {
        Ok(self.dead_letter_page(sub, max, None)?.dead_letters)
    }

    /// A page of dead letters after `after` (the `next` of the previous page): at most `max`
    /// and about 4 MiB.
    pub fn dead_letter_page(
        &self,
        sub: &str,
        max: usize,
        after: Option<&str>,
    ) -> Result<DeadLetterPage, ClientError> {
        let after = after.map(|a| format!("&after={}", encode(a)));
        let path = format!(
            "/broker/subscriptions/{sub}/dead-letters?max={max}{after}",
            sub = encode(sub),
            after = after.unwrap_or_default()
        );
        self.get(&path)
    }

    /// Publishes a plain JSON request to `topic` and waits up to `timeout` for the reply
    /// published to `reply_to` with the same `correlationid` (504 after the timeout).
    pub fn request(
        &self,
        topic: &str,
        reply_to: &str,
        data: &Value,
        timeout: Duration,
    ) -> Result<Replied, ClientError> {
        let path = format!(
            "/broker/topics/{topic}/request?reply_to={}&timeout={}ms",
            encode(reply_to),
            timeout.as_millis(),
            topic = encode(topic)
        );
        self.send(
            "POST",
            &path,
            "application/json",
            data.to_string().as_bytes(),
        )
    }

    /// Answers a request delivery: publishes `data` to its `replyto` with its `correlationid`.
    pub fn reply(&self, request: &Value, data: &Value) -> Result<Published, ClientError> {
        let missing = |what: &str| ClientError::Decode(format!("the request has no {what}"));
        let reply_to = request["replyto"]
            .as_str()
            .ok_or_else(|| missing("replyto"))?;
        let correlation = request["correlationid"]
            .as_str()
            .ok_or_else(|| missing("correlationid"))?;
        let event = json!({
            "specversion": "1.0",
            "id": format!("reply-{correlation}"),
            "source": self.service.as_deref().unwrap_or(UNKNOWN_SERVICE),
            "type": format!("{}.reply", request["type"].as_str().unwrap_or("switchyard.message")),
            "correlationid": correlation,
            "data": data,
        });
        self.publish_event(reply_to, &event)
    }
}

fn decode<T: DeserializeOwned>(answer: Result<Answer, ClientError>) -> Result<T, ClientError> {
    let answer = answer?;
    if !(200..300).contains(&answer.status) {
        return Err(status_error(answer.status, &answer.body));
    }
    serde_json::from_slice(&answer.body)
        .map_err(|e| ClientError::Decode(format!("{e}: {}", String::from_utf8_lossy(&answer.body))))
}

/// The broker's JSON error (`error`, `message`) with its status.
fn status_error(status: u16, body: &[u8]) -> ClientError {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    ClientError::Status {
        status,
        error: v["error"].as_str().unwrap_or("").to_string(),
        message: v["message"].as_str().unwrap_or("").to_string(),
    }
}

fn from_value<T: DeserializeOwned>(v: Value) -> Result<T, ClientError> {
    serde_json::from_value(v).map_err(|e| ClientError::Decode(e.to_string()))
}
