//! The broker's protocol: the types of its requests and answers ([`types`]), the CloudEvents
//! and plain JSON bodies of messages ([`event`]), and the limits and headers both sides know.
//! The server, its HTTP API and the Rust client all depend on it; it depends on none of them.

pub mod event;
pub mod types;

use std::time::Duration;

/// The header that names the calling service in the broker's spans (else the CloudEvents
/// `source`, else [`UNKNOWN_SERVICE`]).
pub const SERVICE_HEADER: &str = "switchyard-service";
/// The service of a caller that names none.
pub const UNKNOWN_SERVICE: &str = "unknown_service";
/// Defaults for a subscription declared without them.
pub const DEFAULT_VISIBILITY_TIMEOUT_MS: u64 = 30_000;
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Most messages one pull leases.
pub const MAX_PULL: usize = 1_000;
/// Longest long-poll.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// Nanoseconds since the epoch.
pub fn unix_nanos(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map(crate::model::window::duration_nanos)
        .unwrap_or(0)
}
