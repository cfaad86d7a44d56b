//! The UI and API server on the `--http` address.

pub mod api;
pub mod error;
pub mod routes;

pub use routes::configure;
