//! OTLP ingest: transports decode and map errors; [`Ingest::accept`] is the one path that
//! converts, counts and persists, and answers only after the spans are committed.

pub mod convert;
pub mod decode;
pub mod grpc;
pub mod http;
pub mod json;
mod messaging;
pub mod status;

use crate::error::ErrorCode;
use crate::priority::Priority;
use crate::store::{Room, Store, StoreError, WriteBatch};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    Malformed(String),
    #[error("request body exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("unsupported content type {0:?}: use application/x-protobuf or application/json")]
    UnsupportedMediaType(String),
    #[error("unsupported content encoding {0:?}: use gzip or identity")]
    UnsupportedEncoding(String),
    #[error("too many requests in flight; retry later")]
    Overloaded,
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl IngestError {
    pub fn code(&self) -> ErrorCode {
        match self {
            IngestError::Malformed(_) => ErrorCode::BadRequest,
            IngestError::TooLarge { .. } => ErrorCode::PayloadTooLarge,
            IngestError::UnsupportedMediaType(_) | IngestError::UnsupportedEncoding(_) => {
                ErrorCode::UnsupportedMediaType
            }
            IngestError::Overloaded => ErrorCode::TooManyRequests,
            IngestError::Store(e) => e.code(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// Largest request body, before and after decompression.
    pub max_body_bytes: usize,
    /// Requests decoded or waiting for their commit at once; past that, 429.
    pub max_in_flight: usize,
}

/// Counters shown by `/api/stats`.
#[derive(Debug, Default)]
pub struct IngestCounters {
    pub requests: AtomicU64,
    pub spans_stored: AtomicU64,
    pub spans_duplicate: AtomicU64,
    pub spans_rejected: AtomicU64,
    pub requests_refused: AtomicU64,
    /// Spans older than the retention, refused (also counted in `spans_rejected`).
    pub spans_expired: AtomicU64,
    /// Names and attribute values cut to their limits (`crate::model::limits`).
    pub names_truncated: AtomicU64,
    pub values_truncated: AtomicU64,
}

/// What an accepted request reports back (`partial_success`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Accepted {
    pub rejected_spans: i64,
    pub error_message: String,
}

/// A request converted and ready for the store.
pub struct Batch {
    pub spans: Vec<crate::store::Prepared>,
    pub rejected: u64,
    pub message: String,
    /// Names and values cut to their limits.
    pub truncated: crate::model::limits::Truncated,
}

/// The CPU part of ingest (convert, encode JSON columns): call it off the async runtime.
pub fn prepare(request: ExportTraceServiceRequest) -> Batch {
    let converted = convert::convert_request(request);
    let message = converted.message();
    Batch {
        rejected: converted.rejected,
        message,
        truncated: converted.truncated,
        spans: crate::store::prepare(converted.spans),
    }
}

#[derive(Clone)]
pub struct Ingest {
    pub store: Store,
    pub config: IngestConfig,
    pub counters: Arc<IngestCounters>,
    shield: Arc<Semaphore>,
    /// In-flight memory budget in KiB: raw bodies plus their inflated size.
    budget: Arc<Semaphore>,
}

/// The in-flight memory budget, in maximal request bodies (`--max-body` each).
const BUDGET_BODIES: usize = 4;

impl Ingest {
    pub fn new(store: Store, config: IngestConfig) -> Ingest {
        let shield = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
        // Room for a few maximal requests at once, whatever --max-in-flight says.
        let budget_kib = (config.max_body_bytes.saturating_mul(BUDGET_BODIES) / 1024)
            .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        let budget = Arc::new(Semaphore::new(budget_kib));
        Ingest {
            store,
            config,
            counters: Arc::default(),
            shield,
            budget,
        }
    }

    /// Reserves `bytes` of the in-flight memory budget (bodies read, inflated and decoded),
    /// adding to what `held` already holds; refuses with 429 when the budget is spent.
    pub fn reserve(
        &self,
        held: &mut Option<tokio::sync::OwnedSemaphorePermit>,
        bytes: usize,
    ) -> Result<(), IngestError> {
        let kib = bytes.div_ceil(1024).min(u32::MAX as usize) as u32;
        if kib == 0 {
            return Ok(());
        }
        let more = self
            .budget
            .clone()
            .try_acquire_many_owned(kib)
            .map_err(|_| {
                self.counters
                    .requests_refused
                    .fetch_add(1, Ordering::Relaxed);
                IngestError::Overloaded
            })?;
        match held {
            Some(p) => p.merge(more),
            None => *held = Some(more),
        }
        Ok(())
    }

    /// Holds one in-flight slot for the life of a request, or refuses with 429.
    pub fn admit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, IngestError> {
        self.shield.clone().try_acquire_owned().map_err(|_| {
            self.counters
                .requests_refused
                .fetch_add(1, Ordering::Relaxed);
            IngestError::Overloaded
        })
    }

    /// Spans the store refused as older than the retention: rejected in `partial_success`,
    /// counted, and logged at most once a minute.
    fn expired(&self, n: u64, accepted: &mut Accepted) {
        let c = &self.counters;
        c.spans_rejected.fetch_add(n, Ordering::Relaxed);
        c.spans_expired.fetch_add(n, Ordering::Relaxed);
        accepted.rejected_spans += n as i64;
        let why = format!("rejected {n} span(s) that started before the retention period (--retention): they would be deleted at once");
        accepted.error_message = match accepted.error_message.is_empty() {
            true => why,
            false => format!("{}; {why}", accepted.error_message),
        };
        if let Some(suppressed) = crate::lograte::ERRORS.allow("ingest.expired") {
            let total = c.spans_expired.load(Ordering::Relaxed);
            tracing::warn!(
                spans = n,
                total,
                suppressed,
                "spans older than the retention refused"
            );
        }
    }

    /// Persists a converted batch and waits for the commit. Invalid spans were counted by
    /// [`prepare`]; they are reported, not fatal.
    pub async fn accept(&self, batch: Batch) -> Result<Accepted, IngestError> {
        self.accept_within(batch, Duration::ZERO, Priority::Normal)
            .await
    }

    /// As [`Ingest::accept`], but waits up to `wait` for room in the writer's queue instead of
    /// refusing at once. Waiting blocks the thread: only for the broker's span exporter, which
    /// runs on a thread of its own, so its batches need no copy kept for a retry. A batch of
    /// `Background` priority may be committed in the background (see `crate::priority`).
    pub async fn accept_within(
        &self,
        batch: Batch,
        wait: Duration,
        priority: Priority,
    ) -> Result<Accepted, IngestError> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        self.counters
            .spans_rejected
            .fetch_add(batch.rejected, Ordering::Relaxed);
        if batch.truncated != Default::default() {
            let c = &self.counters;
            c.names_truncated
                .fetch_add(batch.truncated.names, Ordering::Relaxed);
            c.values_truncated
                .fetch_add(batch.truncated.values, Ordering::Relaxed);
        }
        let mut accepted = Accepted {
            rejected_spans: batch.rejected as i64,
            error_message: batch.message,
        };
        if batch.spans.is_empty() {
            return Ok(accepted);
        }
        let room = if wait.is_zero() {
            Room::Now
        } else {
            Room::Within(wait)
        };
        let queued = self
            .store
            .write(WriteBatch::Spans(batch.spans), room, priority);
        let committed = queued.inspect_err(|_| {
            self.counters
                .requests_refused
                .fetch_add(1, Ordering::Relaxed);
        })?;
        let outcome = committed.await.map_err(|_| StoreError::Closed)??;
        self.counters
            .spans_stored
            .fetch_add(outcome.stored, Ordering::Relaxed);
        self.counters
            .spans_duplicate
            .fetch_add(outcome.duplicates, Ordering::Relaxed);
        if outcome.expired > 0 {
            self.expired(outcome.expired, &mut accepted);
        }
        Ok(accepted)
    }
}
