//! # Switchyard
//!
//! Topology discovery and event tracing for publish/subscribe systems.
//!
//! # Layout
//!
//! - [`model`], [`semconv`]: pure domain types and the attribute alias table (no IO).
//! - [`ingest`]: OTLP/HTTP and OTLP/gRPC transports; one `accept()` converts and persists.
//! - [`store`]: the only module that speaks SQL (writer thread, read pool, migrations).
//! - [`topology`]: rows -> petgraph graph with statistics and named patterns (pure).
//! - [`export`]: graph -> DOT and JSON (pure, deterministic).
//! - [`flow`]: one trace's asynchronous hops (publish -> consume, request -> reply) (pure).
//! - [`pathway`]: journeys over several hops aggregated per sequence of nodes (pure).
//! - [`broker`]: the embedded broker (topics, subscriptions; its own SQLite file, spans into
//!   ingest).
//! - [`web`]: the API (and, later, pages) on the `--http` address; [`api`]: the types of its
//!   JSON answers, shared with the clients that read them.
//! - [`app`]: lifecycle and staged shutdown; [`cli`]: flags; [`bench`]: load generators;
//!   [`demo`]: simulated shop traffic through the ingest path (`serve --demo`).
//! - [`priority`]: background threads yield the CPU to the message path.
//! - [`lograte`]: repeated error lines, at most one per key per interval.
//! - [`mailbox`]: the bounded command channel of a state-owning thread (router, writer).
//! - [`discover`]: the brokers themselves as sources (RabbitMQ, NATS), polled into snapshots.
//! - [`guard`]: who may ask: the bearer token, the `Host` check and the cross-site refusal, as
//!   actix middleware and a tonic interceptor.
//! - [`telemetry`]: the collector's own metrics (counters bumped where things happen, edge
//!   series added by the store's writer after each commit), read by `/metrics`.
//! - [`percent`]: the one percent-encoding set (page links, broker paths, `ce-*` headers).
//! - [`changes`]: architecture change notices (a periodic watcher of edge keys, a bounded log,
//!   the `--notify-url` webhook on its own thread).
//!
//! docs/ARCHITECTURE.md has the tasks, channels and where data becomes durable.

pub mod accounting;
pub mod api;
pub mod app;
pub mod bench;
pub mod broker;
pub mod changes;
pub mod cli;
pub mod demo;
pub mod discover;
pub mod error;
pub mod export;
pub mod flow;
pub mod guard;
pub mod ingest;
pub mod lograte;
pub mod mailbox;
pub mod model;
pub mod pathway;
pub mod percent;
pub mod priority;
pub mod semconv;
pub mod store;
pub mod telemetry;
pub mod topology;
pub mod web;
