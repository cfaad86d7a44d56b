//! The broker's protocol: the types of its requests and answers ([`types`]), the CloudEvents
//! and plain JSON bodies of messages ([`event`]), and the limits and headers both sides know.
//! The server, its HTTP API and the Rust client all depend on it; it depends on none of them.

pub mod event;
pub mod types;

use std::time::Duration;

/// The header that names the calling service in the broker's spans (else the CloudEvents
/// `source`, else [`UNKNOWN_SERVICE`]).
pub const SERVICE_HEADER: &str = "switchyard-service";
/// The header of a push delivery (and of a publish) that counts the push hops the message went
/// through; the event carries the same count as its [`HOPS_ATTRIBUTE`] extension attribute.
pub const HOPS_HEADER: &str = "switchyard-hops";
/// The CloudEvents extension attribute of the push hop count.
pub const HOPS_ATTRIBUTE: &str = "switchyardhops";
/// Push hops a message may go through (a push subscription that delivers into a topic is one
/// hop): a publish with more is refused, a message whose next push would exceed it is
/// dead-lettered.
pub const MAX_PUSH_HOPS: u32 = 8;
/// The service of a caller that names none.
pub const UNKNOWN_SERVICE: &str = "unknown_service";
/// Defaults for a subscription declared without them.
pub const DEFAULT_VISIBILITY_TIMEOUT_MS: u64 = 30_000;
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Most messages one pull leases.
pub const MAX_PULL: usize = 1_000;
/// Longest long-poll.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// Longest visibility timeout of a subscription (12 hours).
pub const MAX_VISIBILITY_TIMEOUT_MS: u64 = 12 * 3_600_000;
/// Longest delay of a nack (12 hours).
pub const MAX_DELAY_MS: u64 = 12 * 3_600_000;
/// Longest `max_age_ms` of a stream (100 years).
pub const MAX_STREAM_AGE_MS: u64 = 100 * 365 * 86_400_000;
/// Largest `max_bytes` of a stream (what SQLite's integers hold).
pub const MAX_STREAM_BYTES: u64 = i64::MAX as u64;

/// Nanoseconds since the epoch.
pub fn unix_nanos(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map(crate::model::window::duration_nanos)
        .unwrap_or(0)
}
