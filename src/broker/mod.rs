//! The embedded broker: topics fan messages out to subscriptions; a subscription is a queue
//! with competing consumers (lease, ack, nack, redelivery, dead-letter); a stream is an
//! append-only log read from offsets, with consumer-group commits.
//!
//! - [`router`]: the single owner of broker state. One thread drains a bounded command
//!   channel, applies each batch of commands in one SQLite transaction (group commit) and
//!   answers after COMMIT. Its commands are in `command`; its operations in `catalogue`
//!   (declarations, listings), `queue` (publish, deliver, settle), `stream`, `reply`
//!   (request/reply) and `waiters` (long-polling pulls and reads).
//! - [`push`]: webhook delivery tasks; [`sse`]: streaming consume.
//! - [`db`], `stream_db`: the broker's SQLite file (`<db>-broker`): schema, migrations,
//!   statements.
//! - [`event`]: CloudEvents 1.0 (structured, binary) and plain JSON bodies -> [`event::Event`].
//! - [`traced`]: spans by construction, exported in-process to the collector's ingest path.
//! - [`http`], [`stream_http`]: the `/broker/` JSON API; [`client`]: a blocking Rust client
//!   (its HTTP/1.1 transport: `wire`).
//!
//! docs/BROKER.md describes the API; docs/ARCHITECTURE.md the delivery state machine.

pub mod acker;
mod catalogue;
pub mod client;
mod command;
pub mod db;
pub mod event;
pub mod http;
pub mod link;
pub mod push;
mod queue;
mod reply;
pub mod router;
pub mod sse;
mod stream;
mod stream_db;
pub mod stream_http;
pub mod traced;
mod waiters;
mod wire;

use crate::error::ErrorCode;
use crate::mailbox::{bounded, Sender, TrySendError};
pub use command::BatchTarget;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

pub use event::{Event, TraceContext};
pub use router::Command;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("message exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Timeout(String),
    #[error("too many waiting pulls; retry later")]
    TooManyWaiters,
    #[error("too many message bytes in flight; retry later")]
    TooManyBytes,
    #[error("the broker queue is full")]
    Busy,
    #[error("the broker is shutting down")]
    Closed,
    #[error("write failed: {0}")]
    Write(String),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl BrokerError {
    pub fn code(&self) -> ErrorCode {
        match self {
            BrokerError::BadRequest(_) => ErrorCode::BadRequest,
            BrokerError::NotFound(_) => ErrorCode::NotFound,
            BrokerError::Conflict(_) => ErrorCode::Conflict,
            BrokerError::TooLarge { .. } => ErrorCode::PayloadTooLarge,
            BrokerError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            BrokerError::TooManyWaiters | BrokerError::TooManyBytes => ErrorCode::TooManyRequests,
            BrokerError::Timeout(_) => ErrorCode::GatewayTimeout,
            // A rolled-back batch is transient: the client should retry it.
            BrokerError::Busy
            | BrokerError::Closed
            | BrokerError::Write(_)
            | BrokerError::Sqlite(_) => ErrorCode::Unavailable,
            BrokerError::Io(_) => ErrorCode::Internal,
        }
    }
}

#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// The broker's own SQLite file (a sibling of the collector's: `<db>-broker`).
    pub path: PathBuf,
    /// `NORMAL` (durable across process crashes) or `FULL` (also power loss).
    pub synchronous: String,
    /// Largest message (event data plus attributes), in bytes.
    pub max_message_bytes: usize,
    /// Commands queued for the router at most; past that, 503.
    pub queue_depth: usize,
    /// Pulls waiting (long-poll) at once; past that, 429.
    pub max_waiters: usize,
}

impl BrokerConfig {
    /// The configuration `serve` runs with.
    pub fn of(args: &crate::cli::ServeArgs) -> BrokerConfig {
        BrokerConfig {
            path: BrokerConfig::sibling_path(&args.db),
            synchronous: crate::app::store_config(args).synchronous,
            max_message_bytes: args.broker_max_message as usize,
            queue_depth: 4_096,
            max_waiters: 1_024,
        }
    }

    /// The broker file beside the collector's database: `switchyard.db` -> `switchyard.db-broker`.
    pub fn sibling_path(db: &std::path::Path) -> PathBuf {
        let mut name = db.as_os_str().to_owned();
        name.push("-broker");
        PathBuf::from(name)
    }
}

/// Defaults for a subscription declared without them.
pub const DEFAULT_VISIBILITY_TIMEOUT_MS: u64 = 30_000;
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Most messages one pull leases.
pub const MAX_PULL: usize = 1_000;
/// Longest long-poll.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// A subscription's declaration. Invariant (checked by the router): `max_attempts >= 1`,
/// `visibility_timeout_ms >= 1`, the topic exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionSpec {
    pub name: String,
    pub topic: String,
    pub visibility_timeout_ms: u64,
    pub max_attempts: u32,
    /// Only events that match are queued on this subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
    /// Deliver by POSTing to a webhook instead of waiting for pulls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<push::Push>,
}

/// A subscription filter on CloudEvents attributes: every condition given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// The event's `type` equals this.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The event's `subject` starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_prefix: Option<String>,
}

impl Filter {
    pub fn matches(&self, event: &Event) -> bool {
        self.kind
            .as_deref()
            .is_none_or(|k| event.str_attr("type") == Some(k))
            && self
                .subject_prefix
                .as_deref()
                .is_none_or(|p| event.str_attr("subject").is_some_and(|s| s.starts_with(p)))
    }
}

/// A declaration's outcome: `created` false when it already existed identically.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Declared {
    pub created: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TopicInfo {
    pub name: String,
    pub subscriptions: Vec<String>,
}

/// A subscription and its queue: `ready` (deliverable now or after a nack delay), `leased`
/// (delivered, lease running), `dead` (in the dead-letter queue).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubscriptionInfo {
    #[serde(flatten)]
    pub spec: SubscriptionSpec,
    pub ready: u64,
    pub leased: u64,
    pub dead: u64,
}

/// A stream's declaration: events older than `max_age_ms` are deleted, and the oldest events
/// while the stream holds more than `max_bytes` (none: no such bound).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamSpec {
    pub name: String,
    pub max_age_ms: Option<u64>,
    /// Bytes of events (data and attributes) kept at most, checked once a second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
}

/// A stream: offsets `first_offset..next_offset` are (or were, if retention removed them)
/// readable, and its consumer groups.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StreamInfo {
    #[serde(flatten)]
    pub spec: StreamSpec,
    pub first_offset: u64,
    pub next_offset: u64,
    pub groups: Vec<GroupInfo>,
}

/// A consumer group's committed offset (the next offset it will read) and its lag.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroupInfo {
    pub name: String,
    pub committed: u64,
    pub lag: u64,
}

/// Where a stream read starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadFrom {
    Earliest,
    Latest,
    Offset(u64),
    /// The first event published at or after this time.
    Time(u64),
    /// The group's committed offset (earliest if it never committed).
    Committed,
}

/// One event read from a stream.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StreamEvent {
    pub offset: u64,
    pub event: serde_json::Value,
    pub published_unix_nanos: u64,
    /// The receive span's context.
    pub traceparent: String,
    pub tracestate: Option<String>,
}

/// The answer to a stream read: the events and the offset to read next.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StreamBatch {
    pub events: Vec<StreamEvent>,
    pub next_offset: u64,
}

/// The answer to a publish, sent after COMMIT.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Published {
    pub id: String,
    pub topic: String,
    /// Subscriptions the message was queued on (0: nobody subscribes, the message is dropped).
    pub subscriptions: usize,
    /// The event's offset, for a stream publish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// The publish span's context: deliveries carry it.
    pub traceparent: String,
}

/// The answer to a request (request/reply): the published request and the correlated reply.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Replied {
    pub request: Published,
    /// The reply event in structured form.
    pub reply: serde_json::Value,
    /// The requester's receive span of the reply.
    pub traceparent: String,
}

/// Longest wait for a reply.
pub const MAX_REPLY_WAIT: Duration = Duration::from_secs(60);

/// One leased delivery.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Delivery {
    /// Settles this delivery (ack or nack) while it is the message's current lease.
    pub lease_id: String,
    /// The event in CloudEvents structured JSON (`data` or `data_base64`).
    pub event: serde_json::Value,
    /// 1 for the first delivery.
    pub attempt: u32,
    /// The receive span's context: continue the trace from it.
    pub traceparent: String,
    pub tracestate: Option<String>,
    pub lease_expires_unix_nanos: u64,
}

/// A message in a dead-letter queue.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeadLetter {
    pub event: serde_json::Value,
    pub attempts: u32,
    pub dead_unix_nanos: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    Ack,
    /// Redeliver after the delay (0: at once).
    Nack {
        delay_ms: u64,
    },
}

/// The outcome of settling leases: ids that were current, and those that were not (expired
/// and redelivered, already settled, or unknown).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Settled {
    pub settled: Vec<String>,
    pub unknown: Vec<String>,
}

/// Who asks, for the spans: the client's service and trace context.
#[derive(Clone, Debug, Default)]
pub struct Caller {
    pub service: Option<String>,
    pub trace: TraceContext,
}

type Reply<T> = tokio::sync::oneshot::Sender<Result<T, BrokerError>>;

/// A handle on the broker: a cheap clone of the router's command sender.
#[derive(Clone)]
pub struct Broker {
    tx: Sender<Command>,
    pub config: Arc<BrokerConfig>,
    router: Arc<Mutex<Option<JoinHandle<()>>>>,
    /// Copies the WAL into the file beside the router (taken and stopped at shutdown).
    checkpointer: Arc<Mutex<Option<crate::store::Checkpointer>>>,
    /// Set by [`Broker::drain`]: streaming consumers end.
    draining: Arc<std::sync::atomic::AtomicBool>,
    /// Message bytes (in KiB) read or queued for the router at once: publishes past it get 429.
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl Broker {
    /// Opens (or creates) the broker file, migrates it and starts the router thread.
    pub fn open(config: BrokerConfig, tracer: traced::Tracer) -> Result<Broker, BrokerError> {
        if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let conn = db::open(&config.path, &config.synchronous)?;
        let checkpointer = crate::store::start_checkpointer(
            "broker-checkpoint",
            &config.path,
            &config.synchronous,
        )
        .map_err(|e| BrokerError::Write(e.to_string()))?;
        let (_, subs) = db::load(&conn)?;
        let (tx, rx) = bounded(config.queue_depth.max(1));
        let router = router::Router::new(conn, rx, tracer, config.max_waiters)?;
        let handle = std::thread::Builder::new()
            .name("broker-router".into())
            .spawn(move || router.run())?;
        let in_flight = in_flight_kib(&config);
        let broker = Broker {
            tx,
            config: Arc::new(config),
            router: Arc::new(Mutex::new(Some(handle))),
            checkpointer: Arc::new(Mutex::new(Some(checkpointer))),
            draining: Arc::default(),
            in_flight: Arc::new(tokio::sync::Semaphore::new(in_flight)),
        };
        for sub in &subs {
            push::start(&broker, &sub.spec);
        }
        Ok(broker)
    }

    /// Sends a command and waits for its answer (sent after COMMIT for writes).
    pub async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, BrokerError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        match self.tx.try_send(make(reply)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(BrokerError::Busy),
            Err(TrySendError::Disconnected(_)) => return Err(BrokerError::Closed),
        }
        rx.await.map_err(|_| BrokerError::Closed)?
    }

    pub async fn declare_topic(&self, name: String) -> Result<Declared, BrokerError> {
        self.ask(|reply| Command::DeclareTopic { name, reply })
            .await
    }

    pub async fn declare_subscription(
        &self,
        spec: SubscriptionSpec,
    ) -> Result<Declared, BrokerError> {
        let declared = self
            .ask(|reply| Command::DeclareSubscription {
                spec: spec.clone(),
                reply,
            })
            .await?;
        if declared.created {
            push::start(self, &spec);
        }
        Ok(declared)
    }

    pub async fn publish(
        &self,
        topic: String,
        event: Event,
        caller: Caller,
    ) -> Result<Published, BrokerError> {
        let started = SystemTime::now();
        self.ask(|reply| Command::Publish {
            topic,
            event,
            caller,
            started,
            reply,
        })
        .await
    }

    /// Publishes a request and waits for its correlated reply (or a timeout).
    pub async fn request(
        &self,
        topic: String,
        reply_to: String,
        event: Event,
        caller: Caller,
        timeout: Duration,
    ) -> Result<Replied, BrokerError> {
        let started = SystemTime::now();
        self.ask(|reply| Command::Request {
            topic,
            reply_to,
            event,
            caller,
            started,
            timeout,
            reply,
        })
        .await
    }

    /// Appends one event to a stream.
    pub async fn append(
        &self,
        stream: String,
        event: Event,
        caller: Caller,
    ) -> Result<Published, BrokerError> {
        let started = SystemTime::now();
        self.ask(|reply| Command::StreamPublish {
            stream,
            event,
            caller,
            started,
            reply,
        })
        .await
    }

    /// Publishes a batch to a topic or stream in one savepoint: all of it, or none.
    pub async fn publish_batch(
        &self,
        target: command::BatchTarget,
        events: Vec<Event>,
        caller: Caller,
    ) -> Result<Vec<Published>, BrokerError> {
        let started = SystemTime::now();
        self.ask(|reply| Command::PublishBatch {
            target,
            events,
            caller,
            started,
            reply,
        })
        .await
    }

    pub async fn pull(
        &self,
        subscription: String,
        max: usize,
        wait: Duration,
        caller: Caller,
    ) -> Result<Vec<Delivery>, BrokerError> {
        let started = SystemTime::now();
        self.ask(|reply| Command::Pull {
            subscription,
            max: max.clamp(1, MAX_PULL),
            wait: wait.min(MAX_WAIT),
            caller,
            started,
            reply,
        })
        .await
    }

    pub async fn settle(
        &self,
        subscription: String,
        lease_ids: Vec<String>,
        action: Settle,
        caller: Caller,
    ) -> Result<Settled, BrokerError> {
        let started = SystemTime::now();
        self.ask(|reply| Command::Settle {
            subscription,
            lease_ids,
            action,
            caller,
            started,
            reply,
        })
        .await
    }

    /// First stage of shutdown: waiting pulls are answered now, new ones do not wait.
    pub fn drain(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.tx.try_send(Command::Drain);
    }

    /// Reserves room for a message of up to `bytes` until the permit drops, or refuses (429):
    /// message bodies in memory stay bounded however many publishers there are.
    pub fn admit(&self, bytes: usize) -> Result<tokio::sync::OwnedSemaphorePermit, BrokerError> {
        let kib = (bytes / 1024 + 1).min(u32::MAX as usize) as u32;
        self.in_flight
            .clone()
            .try_acquire_many_owned(kib)
            .map_err(|_| BrokerError::TooManyBytes)
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Commits what is queued, answers waiting pulls with nothing, stops the router and waits
    /// for it (blocking).
    pub fn shutdown(&self) {
        let _ = self.tx.send(Command::Shutdown);
        let handle = self.router.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
        if let Some(c) = self.checkpointer.lock().ok().and_then(|mut c| c.take()) {
            c.stop();
        }
    }
}

/// Message bytes in flight at most (in KiB): 64 MiB, or four of the largest messages.
fn in_flight_kib(config: &BrokerConfig) -> usize {
    (64 * 1024).max(4 * (config.max_message_bytes / 1024 + 1))
}

/// Nanoseconds since the epoch.
pub fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
