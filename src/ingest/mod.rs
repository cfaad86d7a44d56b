//! OTLP ingest: transports decode and map errors; [`Ingest::accept`] is the one path that
//! converts, counts and persists, and answers only after the spans are committed.

pub mod conn;
pub mod convert;
pub mod decode;
#[cfg(test)]
mod decode_props;
pub mod grpc;
pub mod http;
pub mod json;
pub mod limits;
mod messaging;
pub mod operations;
pub mod shape;
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
    /// Decoded, the request would exceed a per-request limit (`what` names it and its flag).
    #[error("request refused before decoding: {0}")]
    TooBig(String),
    #[error(
        "request body not received in time (slower than --body-min-rate after --body-timeout)"
    )]
    BodyTimeout,
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
            IngestError::TooLarge { .. } | IngestError::TooBig(_) => ErrorCode::PayloadTooLarge,
            IngestError::BodyTimeout => ErrorCode::RequestTimeout,
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
    /// Requests decoded or waiting for their commit at once (taken once the body has
    /// arrived); past that, 429.
    pub max_in_flight: usize,
    /// Per-request and in-flight bounds on decoded size, and on receiving bodies.
    pub limits: limits::Limits,
}

/// Counters shown by `/api/stats`.
#[derive(Debug, Default)]
pub struct IngestCounters {
    pub requests: AtomicU64,
    /// Spans in accepted requests (stored, duplicate or rejected).
    pub spans_received: AtomicU64,
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
    /// Services and operations seen since start (Jaeger's lists).
    pub operations: Arc<operations::Operations>,
    shield: Arc<Semaphore>,
    /// Bodies being received (`--max-uploads`), apart from the in-flight slots.
    uploads: Arc<Semaphore>,
    /// In-flight memory budget in KiB: raw bodies, their inflated copies and decoded requests.
    budget: Arc<Semaphore>,
    budget_kib: usize,
}

/// A share of the in-flight memory budget, given back when dropped.
pub type Reserved = Option<tokio::sync::OwnedSemaphorePermit>;

impl Ingest {
    pub fn new(store: Store, config: IngestConfig) -> Ingest {
        let shield = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
        let uploads = Arc::new(Semaphore::new(config.limits.max_uploads.max(1)));
        let budget_kib = usize::try_from(config.limits.memory_bytes / 1024)
            .unwrap_or(usize::MAX)
            .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        let budget = Arc::new(Semaphore::new(budget_kib));
        Ingest {
            store,
            config,
            counters: Arc::default(),
            operations: Arc::default(),
            shield,
            uploads,
            budget,
            budget_kib,
        }
    }

    fn refused(&self) -> IngestError {
        self.counters
            .requests_refused
            .fetch_add(1, Ordering::Relaxed);
        IngestError::Overloaded
    }

    /// Reserves `bytes` of the in-flight memory budget (bodies read, inflated and decoded),
    /// adding to what `held` already holds; refuses with 429 when the budget is spent, and
    /// with 413 when the request alone could never fit in it.
    pub fn reserve(&self, held: &mut Reserved, bytes: usize) -> Result<(), IngestError> {
        let kib = bytes.div_ceil(1024);
        if kib == 0 {
            return Ok(());
        }
        let mine = held.as_ref().map_or(0, |p| p.num_permits());
        if mine.saturating_add(kib) > self.budget_kib {
            return Err(IngestError::TooBig(format!(
                "it needs more than --ingest-memory {} bytes",
                self.config.limits.memory_bytes
            )));
        }
        let more = self
            .budget
            .clone()
            .try_acquire_many_owned(kib as u32)
            .map_err(|_| self.refused())?;
        match held {
            Some(p) => p.merge(more),
            None => *held = Some(more),
        }
        Ok(())
    }

    /// Decodes a body (already inflated) after reading its shape: a body that would decode
    /// past the per-request limits is refused before anything is allocated for it, and the
    /// decoded size is reserved in the in-flight budget (`held`) for the life of the request.
    /// Blocking (a pass over the body, then prost or serde): call it off the async runtime.
    pub fn decode(
        &self,
        body: &[u8],
        encoding: decode::Encoding,
        held: &mut Reserved,
    ) -> Result<Batch, IngestError> {
        let shape = match encoding {
            decode::Encoding::Protobuf => shape::protobuf_traces(body)?,
            decode::Encoding::Json => shape::json_traces(body)?,
        };
        self.config.limits.check(&shape)?;
        let decoded = usize::try_from(shape.decoded_bytes.saturating_mul(limits::CONVERTED_FACTOR))
            .unwrap_or(usize::MAX);
        self.reserve(held, decoded)?;
        let request = decode::traces(body, encoding)?;
        Ok(self.prepare(request))
    }

    /// [`prepare`], noting the services and operations the spans name. Blocking (CPU work):
    /// call it off the async runtime.
    pub fn prepare(&self, request: ExportTraceServiceRequest) -> Batch {
        let batch = prepare(request);
        self.operations.note(batch.spans.iter().map(|p| &p.span));
        batch
    }

    /// Counts a body being received, apart from the in-flight slots (taken once it has
    /// arrived), or refuses with 429 past `--max-uploads`.
    pub fn receiving(&self) -> Result<tokio::sync::OwnedSemaphorePermit, IngestError> {
        self.uploads
            .clone()
            .try_acquire_owned()
            .map_err(|_| self.refused())
    }

    /// Holds one in-flight slot for the life of a request, or refuses with 429.
    pub fn admit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, IngestError> {
        self.shield
            .clone()
            .try_acquire_owned()
            .map_err(|_| self.refused())
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
            .spans_received
            .fetch_add(batch.spans.len() as u64 + batch.rejected, Ordering::Relaxed);
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
