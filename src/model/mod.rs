//! Pure domain types: no IO, no protobuf, no SQL.

pub mod broker;
pub mod ids;
pub mod limits;
pub mod messaging;
pub mod node;
pub mod rows;
pub mod sketch;
pub mod span;
pub mod stored;
#[cfg(test)]
pub mod testing;
pub mod window;
pub mod window_pair;

pub use broker::{BrokerSnapshot, Entity, Figures};
pub use ids::{SpanId, TraceId};
pub use messaging::{Messaging, Operation};
pub use node::{EdgeKind, NodeKey, NodeKind};
pub use rows::{EdgeRow, MinuteRow, NodeRow, PartitionTraffic, TopologyRows};
pub use span::{AttrValue, Attributes, Event, Link, ServiceRef, Span, SpanKind, StatusCode};
pub use stored::{
    LinkingSpan, StoredMessaging, StoredSpan, TraceQuery, TraceSearch, TraceSet, TraceSummary,
};
pub use window::TimeWindow;
