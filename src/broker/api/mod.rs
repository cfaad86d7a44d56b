//! The broker's HTTP API under `/broker/` (docs/BROKER.md): handlers that only extract input,
//! ask the [`Broker`](super::Broker) handle and map errors ([`http`], [`stream_http`], [`sse`]),
//! the CloudEvents bodies they parse ([`event`]) and the wire types of requests and answers
//! ([`types`]), which the Rust client shares.

pub mod event;
pub mod http;
pub mod sse;
pub mod stream_http;
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
