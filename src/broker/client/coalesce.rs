//! Client-side group commit: concurrent [`Client::publish_json`] calls for one topic, from the
//! threads (or tasks) sharing a client, go out as batched requests.

use super::{encode, Client, ClientError, UNKNOWN_SERVICE};
use crate::broker::proto::types::Published;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::SystemTime;

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
pub(super) struct Coalescer {
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
        .map_or(0, crate::model::window::duration_nanos);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{nanos:x}-{:x}-{n:x}", std::process::id())
}

impl Client {
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
            source: self.service.as_deref().unwrap_or(UNKNOWN_SERVICE),
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
}
