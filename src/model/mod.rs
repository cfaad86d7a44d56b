//! Pure domain types: no IO, no protobuf, no SQL.

pub mod ids;
pub mod messaging;
pub mod node;
pub mod span;
pub mod window;

pub use ids::{SpanId, TraceId};
pub use messaging::{Messaging, Operation};
pub use node::{EdgeKind, NodeKey, NodeKind};
pub use span::{AttrValue, Attributes, Event, Link, ServiceRef, Span, SpanKind, StatusCode};
pub use window::TimeWindow;
