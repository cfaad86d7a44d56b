//! Bounds of one OTLP request and of all of them in flight: what a body may decode to (checked
//! on its [`Shape`] before decoding), and how fast its bytes must arrive.

use super::shape::{Shape, ShapeError};
use super::IngestError;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Limits {
    /// Spans in one request (`--max-spans-per-request`).
    pub max_spans: u64,
    /// Estimated decoded size of one request (`--max-decoded`).
    pub max_decoded_bytes: u64,
    /// Bodies, inflated copies and decoded requests of every request in flight
    /// (`--ingest-memory`); past it, 429 (or 413 for a request that could never fit).
    pub memory_bytes: u64,
    /// Bodies being received at once (`--max-uploads`); past that, 429.
    pub max_uploads: usize,
    /// Grace before a body must arrive at `body_min_rate` (`--body-timeout`).
    pub body_timeout: Duration,
    /// Bytes a second a body must average after the grace (`--body-min-rate`).
    pub body_min_rate: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_spans: 100_000,
            max_decoded_bytes: 256 << 20,
            memory_bytes: 1 << 30,
            max_uploads: 256,
            body_timeout: Duration::from_secs(10),
            body_min_rate: 64 << 10,
        }
    }
}

/// A request's decoded request plus the spans it is converted into, as a multiple of the
/// decoded estimate: what is reserved from `--ingest-memory` for it.
pub const CONVERTED_FACTOR: u64 = 2;

impl Limits {
    /// Refuses a request whose decoded form would exceed the per-request limits.
    pub fn check(&self, shape: &Shape) -> Result<(), IngestError> {
        if shape.spans > self.max_spans {
            return Err(IngestError::TooBig(format!(
                "{} spans, more than --max-spans-per-request {}",
                shape.spans, self.max_spans
            )));
        }
        if shape.decoded_bytes > self.max_decoded_bytes {
            return Err(IngestError::TooBig(format!(
                "about {} bytes decoded ({} spans, {} attributes, {} events, {} links), more than --max-decoded {}",
                shape.decoded_bytes,
                shape.spans,
                shape.attributes,
                shape.events,
                shape.links,
                self.max_decoded_bytes
            )));
        }
        Ok(())
    }

    /// How long after its start a body may take to deliver `received` bytes and the next
    /// ones: the grace, plus the time the bytes so far take at the minimum rate.
    pub fn body_deadline(&self, received: usize) -> Duration {
        let rate = self.body_min_rate.max(1);
        self.body_timeout
            .saturating_add(Duration::from_secs_f64(received as f64 / rate as f64))
    }
}

impl From<ShapeError> for IngestError {
    fn from(e: ShapeError) -> IngestError {
        match e {
            ShapeError::Malformed(m) => IngestError::Malformed(format!("invalid protobuf: {m}")),
            ShapeError::TooDeep => IngestError::Malformed(format!(
                "values nested deeper than {} levels",
                super::shape::MAX_DEPTH
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_request_limits_name_their_flag() {
        let limits = Limits {
            max_spans: 10,
            max_decoded_bytes: 1000,
            ..Limits::default()
        };
        let ok = Shape {
            spans: 10,
            decoded_bytes: 1000,
            ..Shape::default()
        };
        assert!(limits.check(&ok).is_ok());
        let spans = limits.check(&Shape { spans: 11, ..ok }).unwrap_err();
        assert!(
            spans.to_string().contains("--max-spans-per-request"),
            "{spans}"
        );
        let bytes = limits
            .check(&Shape {
                decoded_bytes: 1001,
                ..ok
            })
            .unwrap_err();
        assert!(bytes.to_string().contains("--max-decoded"), "{bytes}");
        assert_eq!(bytes.code(), crate::error::ErrorCode::PayloadTooLarge);
    }

    #[test]
    fn the_body_deadline_grows_with_the_bytes_received() {
        let limits = Limits {
            body_timeout: Duration::from_secs(2),
            body_min_rate: 1000,
            ..Limits::default()
        };
        assert_eq!(limits.body_deadline(0), Duration::from_secs(2));
        assert_eq!(limits.body_deadline(3000), Duration::from_secs(5));
    }
}
