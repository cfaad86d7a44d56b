//! The broker server: everything that owns or drives broker state.
//!
//! - [`router`]: the single owner of broker state. One thread drains a bounded command
//!   channel, applies each batch of commands in one SQLite transaction (group commit) and
//!   answers after COMMIT. Its commands are in `command`; its operations in `catalogue`
//!   (declarations, listings), `queue` (publish, deliver, settle), `stream`, `reply`
//!   (request/reply) and `waiters` (long-polling pulls and reads).
//! - [`Broker`]: the handle on the router (a cheap clone of its command sender).
//! - [`push`]: webhook delivery tasks; [`link`]: in-process clients (the demo shop).
//! - [`db`], `stream_db`: the broker's SQLite file (`<db>-broker`): schema, migrations,
//!   statements.
//! - [`traced`]: spans by construction, exported in-process to the collector's ingest path.

mod apply;
mod catalogue;
pub mod clock;
pub mod command;
pub mod db;
pub mod link;
pub mod observed;
pub mod push;
mod queue;
pub mod reader;
mod reply;
pub mod router;
mod stream;
mod stream_db;
pub mod traced;
mod waiters;

pub use super::error::BrokerError;
pub use super::proto::types::*;
pub use super::proto::{
    event, DEFAULT_MAX_ATTEMPTS, DEFAULT_VISIBILITY_TIMEOUT_MS, MAX_DELAY_MS, MAX_PULL,
    MAX_PUSH_HOPS, MAX_STREAM_AGE_MS, MAX_STREAM_BYTES, MAX_VISIBILITY_TIMEOUT_MS, MAX_WAIT,
};
pub use super::unix_nanos;

use crate::mailbox::{bounded, Sender, TrySendError};
pub use command::{BatchTarget, Deletable};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

pub use event::{Event, TraceContext};
pub use router::Command;

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
    /// Pulls (or stream reads) waiting on one subscription (or stream) at once; past that,
    /// 429 for that subscription only.
    pub max_waiters_per_destination: usize,
    /// Push subscriptions may deliver to the server's own addresses (else refused).
    pub allow_push_to_self: bool,
}

impl BrokerConfig {
    /// The broker file beside the collector's database: `switchyard.db` -> `switchyard.db-broker`.
    pub fn sibling_path(db: &std::path::Path) -> PathBuf {
        let mut name = db.as_os_str().to_owned();
        name.push("-broker");
        PathBuf::from(name)
    }
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

/// Longest wait for a reply.
pub const MAX_REPLY_WAIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    Ack,
    /// Redeliver after the delay (0: at once).
    Nack {
        delay_ms: u64,
    },
    /// Move to the dead-letter queue at once (a push past its hop bound).
    DeadLetter,
}

/// What the broker holds of one destination, read directly from the router (the web's
/// destination pages): the subscriptions of a topic of that name with their queues, and the
/// stream of that name with its offsets and groups.
#[derive(Clone, Debug)]
pub struct DestinationState {
    /// A topic or a stream of this name is declared.
    pub declared: bool,
    /// The topic's subscriptions, by name (ready, leased, dead; push and filter in the spec).
    pub subscriptions: Vec<SubscriptionInfo>,
    /// The stream: offsets and consumer groups with their lag.
    pub stream: Option<StreamInfo>,
    /// The subscription of this name, when `name` is one (its topic in `spec.topic`).
    pub subscription: Option<SubscriptionInfo>,
    /// Per subscription shown (or the stream), the services that pulled or read lately.
    pub consumers: std::collections::BTreeMap<String, Vec<Consumer>>,
}

/// A service (as its client names itself, `name@instance` included) that pulled from a
/// subscription or read a stream within the last minute ([`observed::CONSUMER_TTL_MS`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consumer {
    pub service: String,
    pub last_seen_unix_ms: u64,
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
    /// The router's clock (the system's, but in tests).
    clock: clock::Clock,
    /// Connections that read listings beside the router.
    readers: Arc<reader::Readers>,
    /// The server's listening addresses, which push subscriptions may not target.
    own: push::OwnAddrs,
}

impl Broker {
    /// Opens (or creates) the broker file, migrates it and starts the router thread.
    pub fn open(config: BrokerConfig, tracer: traced::Tracer) -> Result<Broker, BrokerError> {
        Broker::open_with_clock(config, tracer, clock::Clock::system())
    }

    /// [`Broker::open`] with the router on `clock` (tests move a manual one).
    pub fn open_with_clock(
        config: BrokerConfig,
        tracer: traced::Tracer,
        clock: clock::Clock,
    ) -> Result<Broker, BrokerError> {
        if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let conn = db::open(&config.path, &config.synchronous)?;
        let checkpointer = crate::store::start_checkpointer(
            "broker-checkpoint",
            &config.path,
            &config.synchronous,
            crate::priority::Lift::default(),
        )
        .map_err(|e| BrokerError::Write(e.to_string()))?;
        let (_, subs) = db::load(&conn)?;
        let (tx, rx) = bounded(config.queue_depth.max(1));
        let router = router::Router::new(
            conn,
            rx,
            tracer,
            (config.max_waiters, config.max_waiters_per_destination),
            clock.clone(),
        )?;
        let handle = std::thread::Builder::new()
            .name("broker-router".into())
            .spawn(move || router.run())?;
        let in_flight = in_flight_kib(&config);
        let (config_path, allow_push_to_self) = (config.path.clone(), config.allow_push_to_self);
        let broker = Broker {
            tx,
            config: Arc::new(config),
            router: Arc::new(Mutex::new(Some(handle))),
            checkpointer: Arc::new(Mutex::new(Some(checkpointer))),
            draining: Arc::default(),
            in_flight: Arc::new(tokio::sync::Semaphore::new(in_flight)),
            clock,
            readers: Arc::new(reader::Readers::new(&config_path)),
            own: push::OwnAddrs::new(allow_push_to_self),
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
        if let Some(p) = &spec.push {
            p.validate()?;
            self.own.check(p)?;
        }
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
        let started = self.clock.now();
        self.ask(|reply| {
            Command::Publish(command::Publish {
                topic,
                event,
                caller,
                started,
                reply,
            })
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
        let started = self.clock.now();
        self.ask(|reply| {
            Command::Request(command::Request {
                topic,
                reply_to,
                event,
                caller,
                started,
                timeout,
                reply,
            })
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
        let started = self.clock.now();
        self.ask(|reply| {
            Command::StreamPublish(command::StreamPublish {
                stream,
                event,
                caller,
                started,
                reply,
            })
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
        let started = self.clock.now();
        self.ask(|reply| {
            Command::PublishBatch(command::PublishBatch {
                target,
                events,
                caller,
                started,
                reply,
            })
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
        let started = self.clock.now();
        self.ask(|reply| {
            Command::Pull(command::Pull {
                subscription,
                max: max.clamp(1, MAX_PULL),
                wait: wait.min(MAX_WAIT),
                caller,
                started,
                reply,
            })
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
        let started = self.clock.now();
        self.ask(|reply| {
            Command::Settle(command::Settlement {
                subscription,
                lease_ids,
                action,
                caller,
                started,
                reply,
            })
        })
        .await
    }

    /// What the broker holds of destination `name` (a topic's queues, a stream's offsets).
    pub async fn destination(&self, name: String) -> Result<DestinationState, BrokerError> {
        self.ask(|reply| Command::Destination { name, reply }).await
    }

    /// The broker's topics, subscriptions and streams with their figures and flows now, as a
    /// discovered broker's poll reports them ([`observed`]).
    pub async fn snapshot(&self) -> Result<crate::model::BrokerSnapshot, BrokerError> {
        self.ask(|reply| Command::Snapshot { reply }).await
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

#[cfg(test)]
mod tests;
