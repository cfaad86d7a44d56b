//! The UI and API server on the `--http` address.

pub mod api;
pub mod assets;
pub mod error;
pub mod live;
pub mod pages;
pub mod render;
pub mod routes;
pub mod state;
pub mod trace_search;

pub use routes::configure;
pub use state::AppState;
