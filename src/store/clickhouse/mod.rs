//! The ClickHouse store: a second implementation of the storage interface
//! (`store::interface`), for many stateless collectors sharing one store
//! (`switchyard serve --clickhouse URL`). It speaks ClickHouse's HTTP interface (`client.rs`)
//! with SQL that ClickHouse 18.16 (Debian's package) and current releases both accept.
//!
//! - [`url`]: the `--clickhouse` URL (credentials kept apart, never shown).
//! - [`sql`]: the one place values become SQL literals (18.16 has no bound parameters).
//! - [`client`]: HTTP calls with timeouts and a cap on answers; errors by kind.
//! - [`cluster`]: `--clickhouse-cluster NAME`, the servers of a cluster from `system.clusters`.
//! - [`rowbinary`]: insert bodies.
//! - [`retention`]: day partitions older than the retention dropped.
//! - [`schema`]: tables and their migrations (version table, newer refused);
//!   `read_layout.rs`: version 6, the layout large reads need (sketch arrays, small granules),
//!   and version 8's moves of the index and the stored spans' keys into their smaller tables.
//! - `index.rs`: the trace search index (`trace_postings`), written with each group's spans.
//! - `writer.rs`: the writer thread (groups, pairing through `backlog.rs`, one insert per
//!   table), with the reconciliation pass (`reconcile.rs`) that pairs what collectors racing
//!   each other missed; `reader.rs`, `summary.rs` (search results' summaries) and
//!   `stats.rs`: reads; `store.rs`: the `Store` traits.

mod backlog;
pub mod client;
pub mod cluster;
mod index;
mod read_layout;
mod reader;
pub mod retention;
pub mod rowbinary;
pub mod schema;
pub mod sql;
mod stats;
mod store;
mod summary;
#[cfg(test)]
pub mod testing;
pub mod url;
mod writer;

pub use client::{Client, ClientError, Timeouts};
pub use store::{ClickHouseConfig, ClickHouseStore};
pub use url::{ClickHouseUrl, UrlError};
pub use writer::DEFAULT_SETTLE;

#[cfg(test)]
mod cluster_tests;
#[cfg(test)]
mod tests;
