//! A blocking Rust client of the broker's HTTP API (used by the tests; usable by any Rust
//! service). Each call is one HTTP request, except [`Client::publish_json`]: concurrent
//! publishes to one topic from the threads sharing a client are coalesced into batched
//! requests (see [`Coalescer`]). Errors keep the server's status and message.

use super::wire::{Answer, Request, Wire};
use super::{
    DeadLetter, Declared, Delivery, GroupInfo, Published, Replied, Settled, StreamBatch,
    StreamInfo, SubscriptionInfo, TopicInfo,
};
use crate::percent::encode;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime};

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
    wire: Arc<Wire>,
    coalescer: Arc<Coalescer>,
    /// HTTP requests made by this client and its clones.
    requests: Arc<AtomicU64>,
}

/// Batched requests one topic may have in flight from one client; publishes made meanwhile
/// queue and go in the next batch.
const BATCHES_IN_FLIGHT: usize = 2;
/// Events one coalesced batch holds at most.
const MAX_COALESCED: usize = 256;

/// Coalesces concurrent publishes (group commit on the client side, as producer clients of
/// other brokers do). Each caller still waits for its own event's acknowledgement: a publish
/// returns only after the broker committed it. A caller queues its event; when its topic has
/// fewer than [`BATCHES_IN_FLIGHT`] batches in flight, it sends everything queued as one
/// request and hands each caller of the batch its result. A sender that finishes while events
/// wait passes the turn to the first waiting caller, so only the callers concerned wake. Async
/// callers ([`Client::publish_json_async`]) cannot send: one that finds room starts a sender on
/// the runtime's blocking pool, which keeps sending while tasks are next in line; a caller's
/// thread that finds a task next starts such a sender instead.
///
/// Invariants: a queued event is taken by exactly one sender, which answers its caller once;
/// while events are queued, a batch is in flight, a sender is starting, or a waiting thread has
/// been passed the turn.
#[derive(Default)]
struct Coalescer {
    lanes: Mutex<HashMap<String, Lane>>,
}

#[derive(Default)]
struct Lane {
    /// Serialized structured events, each with its caller.
    queued: Vec<(String, Caller)>,
    /// Batches in flight.
    sending: usize,
    /// Senders started on the blocking pool for async callers, not yet running.
    starting: usize,
}

/// A sender started for tasks, not yet running. Dropped unrun (its runtime shut down), it
/// leaves its lane's `starting` and fails the tasks left waiting with nothing to send for
/// them, or passes the turn to a waiting thread.
struct Starting {
    client: Client,
    topic: String,
    ran: bool,
}

impl Drop for Starting {
    fn drop(&mut self) {
        if self.ran {
            return;
        }
        let mut lanes = self.client.lanes();
        let Some(lane) = lanes.get_mut(&self.topic) else {
            return;
        };
        lane.starting -= 1;
        if lane.sending + lane.starting > 0 {
            return;
        }
        let mut kept = Vec::new();
        for (event, caller) in lane.queued.drain(..) {
            match caller {
                Caller::Task(tx, _) => {
                    let gone = ClientError::Transport("the task's runtime shut down".into());
                    let _ = tx.send(Err(gone));
                }
                thread => kept.push((event, thread)),
            }
        }
        lane.queued = kept;
        if let Some((_, Caller::Thread(next))) = lane.queued.first() {
            let _ = next.send(Turn::Lead);
        }
    }
}

/// How the caller of a queued event waits for it.
enum Caller {
    /// A thread blocked in [`Client::publish_json`]: it can be passed the turn to send.
    Thread(mpsc::Sender<Turn>),
    /// A task awaiting [`Client::publish_json_async`]: it cannot block, so it is only answered;
    /// senders for it run on its runtime's blocking pool.
    Task(
        tokio::sync::oneshot::Sender<Result<Published, ClientError>>,
        tokio::runtime::Handle,
    ),
}

impl Caller {
    fn answer(self, result: Result<Published, ClientError>) {
        match self {
            Caller::Thread(tx) => {
                let _ = tx.send(Turn::Done(result));
            }
            Caller::Task(tx, _) => {
                let _ = tx.send(result);
            }
        }
    }
}

/// The structured CloudEvent [`Client::publish_json`] sends.
#[derive(serde::Serialize)]
struct JsonEvent<'a> {
    specversion: &'static str,
    id: String,
    source: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    datacontenttype: &'static str,
    data: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    traceparent: Option<&'a str>,
}

/// What a waiting caller is told.
enum Turn {
    /// Its event's outcome.
    Done(Result<Published, ClientError>),
    /// Batches may be sent: send what is queued, if nobody else did.
    Lead,
}

/// A CloudEvents id unique across this process's clients and restarts.
fn new_event_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{nanos:x}-{:x}-{n:x}", std::process::id())
}

/// How long a call waits for its answer: the longest wait a call can ask the broker for, and
/// some.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(super::MAX_WAIT.as_secs() + 10);

impl Client {
    /// `addr`: `127.0.0.1:8080` or `http://127.0.0.1:8080`.
    pub fn new(addr: &str) -> Client {
        Client {
            wire: Arc::new(Wire::new(addr)),
            service: None,
            coalescer: Arc::default(),
            requests: Arc::default(),
        }
    }

    /// Names the calling service (`Switchyard-Service`) in the broker's spans.
    pub fn with_service(mut self, service: &str) -> Client {
        self.service = Some(service.to_string());
        self
    }

    /// HTTP requests this client and its clones have made (coalesced publishes share them).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The headers of every request: the body's type, if any, and the calling service.
    fn headers<'a>(&'a self, content_type: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
        let service = self.service.as_deref();
        let service = service.map(|s| (super::traced::SERVICE_HEADER, s));
        content_type
            .map(|ct| ("Content-Type", ct))
            .into_iter()
            .chain(service)
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
        filter: &super::Filter,
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

    /// Publishes a JSON value as the data of a CloudEvent (type `switchyard.message`, source
    /// the client's service), optionally continuing a trace. Returns once the broker committed
    /// it; concurrent calls for one topic share requests (see [`Coalescer`]).
    pub fn publish_json(
        &self,
        topic: &str,
        data: &Value,
        traceparent: Option<&str>,
    ) -> Result<Published, ClientError> {
        let event = self.json_event(data, traceparent)?;
        self.coalesced(topic, event)
    }

    /// The structured CloudEvent of a JSON value, serialized by its caller straight from the
    /// fields: the batch's sender only joins the events.
    fn json_event(&self, data: &Value, traceparent: Option<&str>) -> Result<String, ClientError> {
        serde_json::to_string(&JsonEvent {
            specversion: "1.0",
            id: new_event_id(),
            source: self
                .service
                .as_deref()
                .unwrap_or(super::traced::UNKNOWN_SERVICE),
            kind: "switchyard.message",
            datacontenttype: "application/json",
            data,
            traceparent,
        })
        .map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// [`Client::publish_json`] for async callers: the task awaits its event's commit without
    /// blocking its runtime; batches are sent from the runtime's blocking pool (at most
    /// [`BATCHES_IN_FLIGHT`] per topic, as for threads). Needs a tokio runtime.
    pub async fn publish_json_async(
        &self,
        topic: &str,
        data: &Value,
        traceparent: Option<&str>,
    ) -> Result<Published, ClientError> {
        let event = self.json_event(data, traceparent)?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| ClientError::Transport(format!("no tokio runtime: {e}")))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let start = {
            let mut lanes = self.lanes();
            let lane = lanes.entry(topic.to_string()).or_default();
            lane.queued.push((event, Caller::Task(tx, runtime.clone())));
            let start = lane.sending + lane.starting < BATCHES_IN_FLIGHT;
            lane.starting += usize::from(start);
            start
        };
        if start {
            self.start_sender(&runtime, topic);
        }
        rx.await
            .map_err(|_| ClientError::Transport("publish abandoned".into()))?
    }

    fn coalesced(&self, topic: &str, event: String) -> Result<Published, ClientError> {
        let (tx, rx) = mpsc::channel();
        self.lanes()
            .entry(topic.to_string())
            .or_default()
            .queued
            .push((event, Caller::Thread(tx)));
        self.send_queued(topic, false);
        loop {
            match rx.recv() {
                Ok(Turn::Done(result)) => return result,
                Ok(Turn::Lead) => self.send_queued(topic, false),
                Err(_) => return Err(ClientError::Transport("publish abandoned".into())),
            }
        }
    }

    fn lanes(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lane>> {
        self.coalescer
            .lanes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Runs [`Client::send_queued`] for tasks on `runtime`'s blocking pool; the caller counted
    /// it in its lane's `starting`, which it leaves once it runs (or is dropped unrun, when the
    /// runtime shuts down).
    fn start_sender(&self, runtime: &tokio::runtime::Handle, topic: &str) {
        let starting = Starting {
            client: self.clone(),
            topic: topic.to_string(),
            ran: false,
        };
        runtime.spawn_blocking(move || {
            let mut starting = starting;
            starting.ran = true;
            starting.client.started(&starting.topic);
            starting.client.send_queued(&starting.topic, true);
        });
    }

    fn started(&self, topic: &str) {
        if let Some(lane) = self.lanes().get_mut(topic) {
            lane.starting -= 1;
        }
    }

    /// Sends batches of what `topic` has queued while it has room for another batch in flight;
    /// then, if events still wait, passes the turn to the first of their callers. A sender on
    /// the blocking pool (`for_tasks`) goes on sending for tasks; a caller's own thread starts
    /// such a sender for them instead, and returns with its answer.
    fn send_queued(&self, topic: &str, for_tasks: bool) {
        loop {
            let mut lanes = self.lanes();
            let Some(lane) = lanes.get_mut(topic) else {
                return;
            };
            if lane.queued.is_empty() {
                if lane.sending == 0 && lane.starting == 0 {
                    lanes.remove(topic);
                }
                return;
            }
            if lane.sending >= BATCHES_IN_FLIGHT {
                return;
            }
            let take = lane.queued.len().min(MAX_COALESCED);
            let (events, callers): (Vec<String>, Vec<Caller>) = lane.queued.drain(..take).unzip();
            lane.sending += 1;
            drop(lanes);
            let outcome = self.publish_isolated(topic, &events);
            for (caller, result) in callers.into_iter().zip(outcome) {
                caller.answer(result);
            }
            let mut lanes = self.lanes();
            let Some(lane) = lanes.get_mut(topic) else {
                return;
            };
            lane.sending -= 1;
            // Hand the next batch to a waiting thread: this one has its answer (or is answered
            // by a later batch) and should not wait for others' requests. Tasks cannot take
            // it: for them a sender on the blocking pool goes on.
            match lane.queued.first() {
                Some((_, Caller::Thread(next))) if next.send(Turn::Lead).is_ok() => return,
                Some((_, Caller::Task(_, runtime))) if !for_tasks => {
                    if lane.sending + lane.starting < BATCHES_IN_FLIGHT {
                        let runtime = runtime.clone();
                        lane.starting += 1;
                        drop(lanes);
                        self.start_sender(&runtime, topic);
                    }
                    return;
                }
                _ => {}
            }
        }
    }

    /// Publishes events of several callers: one request; if the broker refuses the batch for
    /// an event's content (400 malformed, 413 too large), each event alone, so one bad event
    /// fails only its own caller; any other error is every caller's. One result per event, in
    /// order.
    fn publish_isolated(
        &self,
        topic: &str,
        events: &[String],
    ) -> Vec<Result<Published, ClientError>> {
        if let [event] = events {
            return vec![self.publish_serialized(topic, event)];
        }
        match self.send_serialized(
            &format!("/broker/topics/{topic}/events", topic = encode(topic)),
            events,
        ) {
            Ok(published) if published.len() == events.len() => {
                published.into_iter().map(Ok).collect()
            }
            Ok(published) => {
                let e = ClientError::Decode(format!(
                    "{} results for {} events",
                    published.len(),
                    events.len()
                ));
                vec![Err(e); events.len()]
            }
            Err(e) if matches!(e.status(), Some(400 | 413)) => events
                .iter()
                .map(|event| self.publish_serialized(topic, event))
                .collect(),
            Err(e) => vec![Err(e); events.len()],
        }
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

    /// Appends structured CloudEvents to a stream in one request, at consecutive offsets: all
    /// of them, or none.
    pub fn append_events(
        &self,
        stream: &str,
        events: &[Value],
    ) -> Result<Vec<Published>, ClientError> {
        self.send_batch(
            &format!("/broker/streams/{stream}/events", stream = encode(stream)),
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
        let answer: Answer = self.send("POST", path, super::event::BATCH_MEDIA_TYPE, &body)?;
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

    /// A streaming pull (Server-Sent Events): deliveries pushed as they are published, up to
    /// `max` leased per step. Settle them with [`Client::ack`]/[`Client::nack`] as usual. The
    /// iterator ends when the server ends the stream (at shutdown; reconnect to go on) or when
    /// its [`Closer`] closes it; dropping it closes the connection.
    pub fn consume(&self, sub: &str, max: usize) -> Result<Deliveries, ClientError> {
        let path = format!("/broker/subscriptions/{}/events?max={max}", encode(sub));
        self.requests.fetch_add(1, Ordering::Relaxed);
        let (status, mut body, conn) = self.wire.open(&Request {
            method: "GET",
            path: &path,
            headers: &self.headers(None),
            body: b"",
            timeout: ANSWER_TIMEOUT,
        })?;
        if !(200..300).contains(&status) {
            let mut text = Vec::new();
            let _ = std::io::Read::read_to_end(&mut body, &mut text);
            return Err(status_error(status, &text));
        }
        Ok(Deliveries {
            lines: std::io::BufReader::new(Box::new(body)),
            data: String::new(),
            closer: Closer(Arc::new(Shut {
                conn,
                closed: AtomicBool::new(false),
            })),
        })
    }

    /// An [`Acker`](super::acker::Acker) for `sub`: acks handed over without waiting, sent from
    /// a background thread in batches that wait up to 1 ms for company.
    pub fn acker(&self, sub: &str) -> std::io::Result<super::acker::Acker> {
        super::acker::Acker::start(self, sub, super::acker::Acker::LINGER)
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

    pub fn dead_letters(&self, sub: &str, max: usize) -> Result<Vec<DeadLetter>, ClientError> {
        let path = format!(
            "/broker/subscriptions/{sub}/dead-letters?max={max}",
            sub = encode(sub)
        );
        let v: Value = self.get(&path)?;
        from_value(v["dead_letters"].clone())
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
            "source": self.service.as_deref().unwrap_or(super::traced::UNKNOWN_SERVICE),
            "type": format!("{}.reply", request["type"].as_str().unwrap_or("switchyard.message")),
            "correlationid": correlation,
            "data": data,
        });
        self.publish_event(reply_to, &event)
    }

    /// Declares a stream; `max_age_ms` bounds how long its events are kept.
    pub fn declare_stream(
        &self,
        name: &str,
        max_age_ms: Option<u64>,
    ) -> Result<Declared, ClientError> {
        let body = json!({ "max_age_ms": max_age_ms });
        self.send(
            "PUT",
            &format!("/broker/streams/{name}", name = encode(name)),
            "application/json",
            body.to_string().as_bytes(),
        )
    }

    /// Declares a stream bounded by age and/or size (bytes of events' data and attributes).
    pub fn declare_stream_bounded(
        &self,
        name: &str,
        max_age_ms: Option<u64>,
        max_bytes: Option<u64>,
    ) -> Result<Declared, ClientError> {
        let body = json!({ "max_age_ms": max_age_ms, "max_bytes": max_bytes });
        self.send(
            "PUT",
            &format!("/broker/streams/{name}", name = encode(name)),
            "application/json",
            body.to_string().as_bytes(),
        )
    }

    pub fn streams(&self) -> Result<Vec<StreamInfo>, ClientError> {
        let v: Value = self.get("/broker/streams")?;
        from_value(v["streams"].clone())
    }

    /// Appends a plain JSON event to a stream; the answer has its offset.
    pub fn append_json(&self, stream: &str, data: &Value) -> Result<Published, ClientError> {
        self.send(
            "POST",
            &format!("/broker/streams/{stream}/events", stream = encode(stream)),
            "application/json",
            data.to_string().as_bytes(),
        )
    }

    /// Reads from `from` (`earliest`, `latest`, `committed`, an offset or an RFC 3339 time).
    pub fn read(
        &self,
        stream: &str,
        from: &str,
        group: Option<&str>,
        max: usize,
        wait: Duration,
    ) -> Result<StreamBatch, ClientError> {
        let mut path = format!(
            "/broker/streams/{stream}/events?from={}&max={max}&wait={}ms",
            encode(from),
            wait.as_millis(),
            stream = encode(stream)
        );
        if let Some(g) = group {
            path.push_str(&format!("&group={}", encode(g)));
        }
        self.get(&path)
    }

    /// Commits a group's offset: the next offset it will read.
    pub fn commit(&self, stream: &str, group: &str, offset: u64) -> Result<GroupInfo, ClientError> {
        let body = json!({ "offset": offset });
        self.send(
            "POST",
            &format!(
                "/broker/streams/{stream}/groups/{group}/commit",
                stream = encode(stream),
                group = encode(group)
            ),
            "application/json",
            body.to_string().as_bytes(),
        )
    }
}

/// The deliveries of a [`Client::consume`] stream, in order.
pub struct Deliveries {
    lines: std::io::BufReader<Box<dyn std::io::Read + Send + Sync + 'static>>,
    /// The `data` of the frame being read.
    data: String,
    closer: Closer,
}

impl Deliveries {
    /// A handle that ends this stream from another thread.
    pub fn closer(&self) -> Closer {
        self.closer.clone()
    }
}

impl Drop for Deliveries {
    /// A closer may outlive the stream: the connection goes with the stream all the same, so
    /// the broker stops leasing to it.
    fn drop(&mut self) {
        self.closer.close();
    }
}

/// Ends a [`Deliveries`] stream from any thread: its connection is shut, so a reader blocked
/// on it sees the end of the stream (`None`, then `None` again). Deliveries leased but not yet
/// read come again once their leases expire.
#[derive(Clone)]
pub struct Closer(Arc<Shut>);

/// A stream's connection, and whether it was closed on purpose (a read that fails after that
/// is the end of the stream, not an error).
struct Shut {
    conn: std::net::TcpStream,
    closed: AtomicBool,
}

impl Closer {
    pub fn close(&self) {
        self.0.closed.store(true, Ordering::Release);
        let _ = self.0.conn.shutdown(std::net::Shutdown::Both);
    }

    fn closed(&self) -> bool {
        self.0.closed.load(Ordering::Acquire)
    }
}

impl Iterator for Deliveries {
    type Item = Result<Delivery, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        use std::io::BufRead;
        let mut line = String::new();
        loop {
            line.clear();
            if self.closer.closed() {
                return None;
            }
            match self.lines.read_line(&mut line) {
                Ok(0) => return None,
                Ok(_) => {}
                // Closed meanwhile: the error is the shutdown, not a failure.
                Err(_) if self.closer.closed() => return None,
                Err(e) => return Some(Err(ClientError::Transport(e.to_string()))),
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if self.data.is_empty() {
                    continue;
                }
                let data = std::mem::take(&mut self.data);
                return Some(
                    serde_json::from_str(&data)
                        .map_err(|e| ClientError::Decode(format!("{e}: {data}"))),
                );
            }
            // `id:` and `event:` lines repeat what the data holds; comments keep the line warm.
            if let Some(d) = line.strip_prefix("data:") {
                self.data.push_str(d.strip_prefix(' ').unwrap_or(d));
            }
        }
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
