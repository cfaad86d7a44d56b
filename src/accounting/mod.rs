//! The messaging rules that are not storage, as code over `model` values that does no IO of
//! its own: pairing a consume with its publish (parent or link, in any arrival order),
//! per-message accounting (nested spans of one message count once; a client call moves to
//! its server's service), and the per-minute statistics they produce. Every store runs them in its writer and
//! persists their results; what they keep beyond the writer's memory (older spans, spans
//! waiting for one not stored yet, flag changes) goes through [`pairing::Backlog`], which
//! each store implements.
//!
//! - [`facts`]: what pairing knows of a span.
//! - [`pairing`]: the rules, span by span ([`pairing::Pairing::analyse`]).
//! - [`memory`]: the writer's bounded memory of recent spans (duplicates, pairing facts,
//!   interned node keys).
//! - [`minutes`]: per-minute edge and service statistics with latency sketches.

pub mod facts;
pub mod memory;
pub mod minutes;
pub mod pairing;

pub use pairing::{pairable, Backlog, Facts, Pairing};
