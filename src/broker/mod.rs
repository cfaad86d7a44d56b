//! The embedded broker: topics fan messages out to subscriptions; a subscription is a queue
//! with competing consumers (lease, ack, nack, redelivery, dead-letter); a stream is an
//! append-only log read from offsets, with consumer-group commits.
//!
//! The folders show the roles:
//!
//! - [`server`]: everything that owns or drives broker state. The [`Broker`] handle sends
//!   commands to the router (`server::router`), the single owner of that state, which applies
//!   each batch of commands in one SQLite transaction and answers after COMMIT; the SQLite file
//!   (`server::db`, `server::stream_db`), push delivery, in-process links and the spans.
//! - [`api`]: the `/broker/` JSON API over HTTP (handlers, SSE).
//! - [`proto`]: what goes over the wire: the API's request and answer types
//!   ([`proto::types`]), the CloudEvents body format, limits and headers. It depends on no
//!   other broker folder.
//! - [`client`]: a blocking Rust client of that API (its HTTP/1.1 transport, the acker). It
//!   depends on the API's wire types (`proto`) only, never on the server.
//!
//! docs/BROKER.md describes the API; docs/ARCHITECTURE.md the delivery state machine.

pub mod api;
pub mod client;
pub mod error;
pub mod proto;
pub mod server;

pub use api::http;
pub use error::BrokerError;
pub use proto::event::{self, Event, TraceContext};
pub use proto::types::*;
pub use proto::{
    DEFAULT_MAX_ATTEMPTS, DEFAULT_VISIBILITY_TIMEOUT_MS, MAX_DELAY_MS, MAX_PULL, MAX_STREAM_AGE_MS,
    MAX_STREAM_BYTES, MAX_VISIBILITY_TIMEOUT_MS, MAX_WAIT,
};
pub use server::reader::Cursor;
pub use server::{link, observed, traced};
pub use server::{
    BatchTarget, Broker, BrokerConfig, Caller, Command, Deletable, DestinationState, ReadFrom,
    Settle,
};

pub use proto::unix_nanos;
