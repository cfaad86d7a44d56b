//! The ClickHouse store: a second implementation of the storage interface
//! (`store::interface`), for many stateless collectors sharing one store
//! (`switchyard serve --clickhouse URL`). It speaks ClickHouse's HTTP interface (`client.rs`)
//! with SQL that ClickHouse 18.16 (Debian's package) and current releases both accept.
//!
//! - [`url`]: the `--clickhouse` URL (credentials kept apart, never shown).
//! - [`sql`]: the one place values become SQL literals (18.16 has no bound parameters).
//! - [`client`]: HTTP calls with timeouts and a cap on answers; errors by kind.
//! - [`rowbinary`]: insert bodies.

pub mod client;
pub mod rowbinary;
pub mod sql;
#[cfg(test)]
pub mod testing;
pub mod url;

pub use client::{Client, ClientError, Timeouts};
pub use url::{ClickHouseUrl, UrlError};

#[cfg(test)]
mod tests;
