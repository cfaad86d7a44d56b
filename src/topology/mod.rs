//! The topology: services, destinations and external peers with their edges over a window,
//! built as a petgraph graph, plus the named patterns found in it. Pure: no SQL, no async.

pub mod brokers;
pub mod build;
pub mod declared;
pub mod detect;
pub mod diff;
pub mod groups;
pub mod json;
pub mod partitions;
pub mod reach;
pub mod routing;
pub mod subjects;

pub use build::{build, Dependency, Edge, Node, SeenIn, Topology};
pub use detect::Finding;
