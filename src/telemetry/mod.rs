//! The collector's own metrics, kept where they happen and read by `/metrics`: counters and
//! histograms bumped with relaxed atomics on the hot paths (ingest, the broker's router, the
//! store's retention), and the edge series ([`graph`]) that the store's writer adds after each
//! commit. Process-wide statics, like the rate limiter of error lines: every part of one process
//! counts into the same place, and nothing here reads back into the data path.
//!
//! Every counter only grows from the start of the process (a restart starts them at zero,
//! which Prometheus's `rate()` and `increase()` handle as a counter reset).

pub mod graph;
pub mod histogram;

use histogram::{AtomicHistogram, DURATION_BOUNDS};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

/// The OTLP receivers, as the `receiver` label names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receiver {
    OtlpHttp,
    OtlpGrpc,
}

impl Receiver {
    pub const ALL: [Receiver; 2] = [Receiver::OtlpHttp, Receiver::OtlpGrpc];

    pub fn as_str(self) -> &'static str {
        match self {
            Receiver::OtlpHttp => "otlp_http",
            Receiver::OtlpGrpc => "otlp_grpc",
        }
    }
}

/// The HTTP statuses a refused OTLP request is counted under (gRPC codes mapped to them).
pub const REFUSAL_CODES: [u16; 7] = [400, 408, 413, 415, 429, 500, 503];

/// Per receiver: request durations and refusals by status.
#[derive(Debug)]
pub struct ReceiverMetrics {
    pub duration: AtomicHistogram,
    refused: [AtomicU64; REFUSAL_CODES.len()],
}

impl ReceiverMetrics {
    fn new() -> ReceiverMetrics {
        ReceiverMetrics {
            duration: AtomicHistogram::new(DURATION_BOUNDS),
            refused: Default::default(),
        }
    }

    /// Counts a refused request under its HTTP status (other statuses under 500).
    pub fn refused(&self, status: u16) {
        let i = REFUSAL_CODES.iter().position(|c| *c == status).unwrap_or(5);
        self.refused[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Refusals per status, in the order of [`REFUSAL_CODES`].
    pub fn refusals(&self) -> [(u16, u64); REFUSAL_CODES.len()] {
        std::array::from_fn(|i| (REFUSAL_CODES[i], self.refused[i].load(Ordering::Relaxed)))
    }
}

/// The embedded broker's operations, counted as the router records them (one per message).
#[derive(Debug, Default)]
pub struct BrokerMetrics {
    pub published: AtomicU64,
    pub delivered: AtomicU64,
    pub acked: AtomicU64,
    pub nacked: AtomicU64,
    pub expired: AtomicU64,
    pub dead_lettered: AtomicU64,
}

impl BrokerMetrics {
    /// Counts one operation by its `messaging.operation.name`.
    pub fn operation(&self, name: &str) {
        let counter = match name {
            "publish" => &self.published,
            "receive" => &self.delivered,
            "ack" => &self.acked,
            "nack" => &self.nacked,
            "expire" => &self.expired,
            "dead_letter" => &self.dead_lettered,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The store's retention: blocks (of spans) deleted by age and by size.
#[derive(Debug, Default)]
pub struct StoreMetrics {
    pub retention_deleted_by_age: AtomicU64,
    pub retention_deleted_by_size: AtomicU64,
}

pub struct Metrics {
    pub otlp_http: ReceiverMetrics,
    pub otlp_grpc: ReceiverMetrics,
    pub broker: BrokerMetrics,
    pub store: StoreMetrics,
    pub graph: graph::Graph,
}

impl Metrics {
    pub fn receiver(&self, r: Receiver) -> &ReceiverMetrics {
        match r {
            Receiver::OtlpHttp => &self.otlp_http,
            Receiver::OtlpGrpc => &self.otlp_grpc,
        }
    }
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    otlp_http: ReceiverMetrics::new(),
    otlp_grpc: ReceiverMetrics::new(),
    broker: BrokerMetrics::default(),
    store: StoreMetrics::default(),
    graph: graph::Graph::default(),
});
