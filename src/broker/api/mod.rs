//! The broker's HTTP API under `/broker/` (docs/BROKER.md): handlers that only extract input,
//! ask the [`Broker`](super::Broker) handle and map errors ([`http`], [`stream_http`], [`sse`]).
//! What goes over the wire (request and answer types, CloudEvents bodies, limits) is in
//! [`super::proto`], which the server and the Rust client share.

pub mod http;
pub mod sse;
pub mod stream_http;

pub use super::proto::{event, types};
pub use super::proto::{
    DEFAULT_MAX_ATTEMPTS, DEFAULT_VISIBILITY_TIMEOUT_MS, HOPS_HEADER, MAX_PULL, MAX_WAIT,
    SERVICE_HEADER, UNKNOWN_SERVICE,
};
