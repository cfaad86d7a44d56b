//! The discovery threads: one per configured broker. Each polls its [`Source`] every interval,
//! writes each good snapshot to the store (background priority, a bounded wait for room), and
//! keeps its [`Status`] in the shared [`Discovery`] handle that `/brokers` reads. While a source
//! fails, its wait doubles up to a cap and resets on success; a failure is logged when it
//! starts and when it changes, not on every poll. Shutdown wakes every thread at once (they
//! wait on a condition variable, not a sleep).

use super::{Kind, Source, Spec, Status};
use crate::model::BrokerSnapshot;
use crate::priority::Priority;
use crate::store::{Pending, Room, Store, WriteBatch};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Longest wait for room in the store's queue: a busy store makes a poll fail, not wait.
const STORE_ROOM: Duration = Duration::from_secs(2);
/// Longest wait at shutdown for threads in the middle of a poll.
const STOP_DEADLINE: Duration = Duration::from_secs(2);
/// The back-off cap, in intervals (and never over `MAX_BACKOFF`).
const BACKOFF_INTERVALS: u32 = 8;
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Shortest `--discover-interval`.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// The sources for `--discover` values, each checked; the errors name the flag and never
/// repeat a credential.
pub fn sources(values: &[String]) -> Result<Vec<Box<dyn Source>>, String> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, value) in joined(values).iter().enumerate() {
        let built = value.parse::<Spec>().and_then(|spec| source(&spec));
        match built {
            Ok(s) => out.push(s),
            Err(e) => errors.push(format!("--discover (value {}): {e}", i + 1)),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors.join("; "))
    }
}

/// The values with each Kafka bootstrap list whole again: the flag's values are split on
/// commas, and a `kafka=` value's further servers come as values that do not start with
/// `KIND=` (the last may end with `?mechanism=...&ca=...`).
fn joined(values: &[String]) -> Vec<String> {
    let starts_spec = |v: &str| {
        v.split_once('=').is_some_and(|(kind, _)| {
            matches!(kind.trim(), "rabbitmq" | "nats" | "nats-monitor" | "kafka")
        })
    };
    let mut out: Vec<String> = Vec::new();
    for v in values {
        match out.last_mut() {
            Some(last) if !starts_spec(v) && last.trim_start().starts_with("kafka=") => {
                last.push(',');
                last.push_str(v);
            }
            _ => out.push(v.clone()),
        }
    }
    out
}

/// The source a spec names.
pub fn source(spec: &Spec) -> Result<Box<dyn Source>, String> {
    match spec.kind {
        Kind::Rabbitmq => {
            let limits = super::rabbitmq::client::Limits::default();
            let s = super::rabbitmq::Rabbitmq::new(&spec.url, limits)?;
            Ok(Box::new(s))
        }
        Kind::Nats | Kind::NatsMonitor => super::nats::open(spec).map_err(|e| e.to_string()),
        Kind::Kafka => {
            let s = super::kafka::KafkaSource::new(&spec.url, super::kafka::Limits::default())?;
            Ok(Box::new(s))
        }
    }
}

/// The running discovery threads and their statuses (cheap to clone).
#[derive(Clone, Default)]
pub struct Discovery {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    // Each status is a small value copied in and out: the lock is never held across a poll.
    statuses: Vec<Mutex<Status>>,
    stopping: Mutex<bool>,
    wake: Condvar,
    /// Dropped by each thread as it ends; shutdown waits for all of them to be gone.
    running: Mutex<Option<crossbeam_channel::Receiver<()>>>,
    interval: Duration,
}

impl Discovery {
    /// Starts one thread per source.
    pub fn start(sources: Vec<Box<dyn Source>>, interval: Duration, store: Store) -> Discovery {
        let statuses = sources
            .iter()
            .map(|s| {
                Mutex::new(Status {
                    broker: s.label().to_string(),
                    kind: s.label().split(' ').next().unwrap_or_default().to_string(),
                    ..Status::default()
                })
            })
            .collect();
        let (alive, running) = crossbeam_channel::bounded::<()>(0);
        let inner = Arc::new(Inner {
            statuses,
            stopping: Mutex::new(false),
            wake: Condvar::new(),
            running: Mutex::new(Some(running)),
            interval,
        });
        for (i, source) in sources.into_iter().enumerate() {
            let (inner, store, alive) = (inner.clone(), store.clone(), alive.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("discover-{i}"))
                .spawn(move || {
                    Poller::new(inner, i, source, store).run();
                    drop(alive);
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a discovery thread");
            }
        }
        Discovery { inner }
    }

    /// Every configured broker's status, in the order given.
    pub fn statuses(&self) -> Vec<Status> {
        self.inner
            .statuses
            .iter()
            .map(|s| s.lock().map(|s| s.clone()).unwrap_or_default())
            .collect()
    }

    pub fn interval(&self) -> Duration {
        self.inner.interval
    }

    /// Wakes every thread and waits (up to a deadline) for them to end; a thread in the middle
    /// of a poll stores nothing after this returns.
    pub fn shutdown(&self) {
        if let Ok(mut s) = self.inner.stopping.lock() {
            *s = true;
        }
        self.inner.wake.notify_all();
        let running = self.inner.running.lock().ok().and_then(|mut r| r.take());
        if let Some(running) = running {
            // Each thread holds a sender: the channel disconnects when the last one ends.
            if let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                running.recv_timeout(STOP_DEADLINE)
            {
                tracing::warn!("a discovery poll is still running at shutdown; not waiting");
            }
        }
    }
}

impl Inner {
    fn stopping(&self) -> bool {
        self.stopping.lock().map(|s| *s).unwrap_or(true)
    }

    /// Waits `d` or until shutdown; true when shutting down.
    fn wait(&self, d: Duration) -> bool {
        let Ok(guard) = self.stopping.lock() else {
            return true;
        };
        match self.wake.wait_timeout_while(guard, d, |stop| !*stop) {
            Ok((stop, _)) => *stop,
            Err(_) => true,
        }
    }
}

/// One source's loop.
struct Poller {
    inner: Arc<Inner>,
    index: usize,
    source: Box<dyn Source>,
    store: Store,
    /// Consecutive failed polls.
    failures: u32,
    /// The failure last logged (logged again only when it changes).
    logged: Option<String>,
    /// The previous snapshot's commit, checked at the next poll.
    pending: Option<Pending>,
}

impl Poller {
    fn new(inner: Arc<Inner>, index: usize, source: Box<dyn Source>, store: Store) -> Poller {
        Poller {
            inner,
            index,
            source,
            store,
            failures: 0,
            logged: None,
            pending: None,
        }
    }

    fn run(mut self) {
        loop {
            if self.inner.stopping() {
                return;
            }
            self.check_commit();
            let started = Instant::now();
            let polled = self.source.poll();
            let latency = started.elapsed();
            if self.inner.stopping() {
                return;
            }
            let counts = polled.map_err(|e| e.to_string()).and_then(|snap| {
                let counts = (
                    snap.destinations.len(),
                    snap.services.len(),
                    snap.flows.len(),
                );
                self.store(snap).map(|()| counts)
            });
            self.record(latency, counts);
            if self.inner.wait(self.next_wait()) {
                return;
            }
        }
    }

    fn store(&mut self, snapshot: BrokerSnapshot) -> Result<(), String> {
        crate::telemetry::METRICS.graph.record_broker(&snapshot);
        let batch = WriteBatch::BrokerState(Box::new(snapshot));
        let pending = self
            .store
            .write(batch, Room::Within(STORE_ROOM), Priority::Background)
            .map_err(|e| format!("store: {e}"))?;
        self.pending = Some(pending);
        Ok(())
    }

    /// Logs a failed commit of the previous snapshot (known by now, or soon after).
    fn check_commit(&mut self) {
        if let Some(mut p) = self.pending.take() {
            match p.try_recv() {
                Ok(Err(e)) => {
                    tracing::warn!(broker = %self.source.label(), error = %e, "broker snapshot not stored")
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => self.pending = Some(p),
                _ => {}
            }
        }
    }

    fn record(&mut self, latency: Duration, result: Result<(usize, usize, usize), String>) {
        let now = crate::model::window::now_unix_nanos();
        let label = self.source.label().to_string();
        let Some(slot) = self.inner.statuses.get(self.index) else {
            return;
        };
        let Ok(mut status) = slot.lock() else {
            return;
        };
        status.polls += 1;
        status.last_poll_unix_nanos = Some(now);
        status.last_latency_micros = Some(latency.as_micros() as u64);
        match result {
            Ok((destinations, services, flows)) => {
                let first = status.last_ok_unix_nanos.is_none();
                status.last_ok_unix_nanos = Some(now);
                status.last_error = None;
                (status.destinations, status.services, status.flows) =
                    (destinations, services, flows);
                drop(status);
                if self.logged.take().is_some() || first {
                    tracing::info!(broker = %label, destinations, services, flows, "broker discovered");
                }
                self.failures = 0;
            }
            Err(error) => {
                status.errors += 1;
                status.last_error = Some(error.clone());
                drop(status);
                self.failures = self.failures.saturating_add(1);
                if self.logged.as_deref() != Some(error.as_str()) {
                    tracing::warn!(broker = %label, error = %error, "broker discovery failing; backing off");
                    self.logged = Some(error);
                }
            }
        }
    }

    /// The interval, or while failing the interval doubled per failure up to the cap.
    fn next_wait(&self) -> Duration {
        backoff(self.inner.interval, self.failures)
    }
}

/// `interval` after a success; after `failures` failures in a row, `interval * 2^failures`,
/// capped at `BACKOFF_INTERVALS` intervals (and `MAX_BACKOFF`), never under the interval.
pub fn backoff(interval: Duration, failures: u32) -> Duration {
    let cap = (interval * BACKOFF_INTERVALS)
        .min(MAX_BACKOFF)
        .max(interval);
    interval
        .checked_mul(1u32 << failures.min(16))
        .unwrap_or(cap)
        .min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap_and_resets() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(15), 0), s(15));
        assert_eq!(backoff(s(15), 1), s(30));
        assert_eq!(backoff(s(15), 2), s(60));
        assert_eq!(backoff(s(15), 3), s(120));
        assert_eq!(backoff(s(15), 30), s(120));
        assert_eq!(backoff(s(60), 30), s(300));
        assert_eq!(backoff(s(1), 2), s(4));
    }

    #[test]
    fn bad_values_name_the_flag_and_hide_credentials() {
        let err = sources(&["rabbitmq=ftp://u:hunter2@h".into(), "kafka=x".into()])
            .err()
            .unwrap();
        assert!(err.contains("--discover (value 1)"), "{err}");
        assert!(err.contains("--discover (value 2)"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let ok = sources(&["rabbitmq=http://u:hunter2@127.0.0.1:15672/v%2F1".into()]).unwrap();
        assert_eq!(ok[0].label(), "rabbitmq 127.0.0.1:15672/v%2F1");
        let nats = sources(&["nats=nats://a:b@127.0.0.1:4222".into()]).unwrap();
        assert_eq!(nats[0].label(), "nats 127.0.0.1:4222");
        // `kafka=a:1,b:2` arrives split on its comma.
        let kafka = sources(&[
            "kafka=a:9092".into(),
            "b:9093".into(),
            "nats=nats://h:4222".into(),
        ])
        .unwrap();
        assert_eq!(kafka.len(), 2);
        assert_eq!(kafka[0].label(), "kafka a:9092,b:9093");
        assert!(sources(&["b:9093".into()]).is_err());
        // A URL's last server carries its parameters (with '='); its password never shows.
        let sasl = sources(&[
            "kafka=sasl_ssl://u:hunter2@a:9093".into(),
            "b:9093?mechanism=SCRAM-SHA-512".into(),
        ])
        .unwrap();
        assert_eq!(sasl.len(), 1);
        assert_eq!(sasl[0].label(), "kafka sasl_ssl://a:9093,b:9093");
        let err = sources(&["kafka=sasl_ssl://u:hunter2@a:9093?mechanism=GSSAPI".into()])
            .err()
            .unwrap();
        assert!(err.contains("GSSAPI") && !err.contains("hunter2"), "{err}");
    }
}
