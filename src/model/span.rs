//! The flattened span every analysis works on.

use super::{Messaging, SpanId, TraceId};
use serde::Serialize;

/// An attribute value as JSON: strings, booleans, integers (exact i64), doubles, arrays and
/// maps; bytes are carried as a lowercase hex string.
pub type AttrValue = serde_json::Value;

/// Attributes in the order they arrived; keys are unique (the last value wins on decode).
pub type Attributes = Vec<(String, AttrValue)>;

/// Serializes attributes as one JSON object (keys in arrival order), without copying them.
pub fn serialize_attrs<S: serde::Serializer>(attrs: &Attributes, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(attrs.len()))?;
    for (k, v) in attrs {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

/// A borrowed attribute list that serializes as a JSON object.
pub struct AttrMap<'a>(pub &'a Attributes);

impl Serialize for AttrMap<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_attrs(self.0, s)
    }
}

/// Looks up a string-ish attribute (strings as they are, numbers and booleans printed).
pub fn attr_str<'a>(attrs: &'a Attributes, key: &str) -> Option<std::borrow::Cow<'a, str>> {
    attrs
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| match v {
            serde_json::Value::String(s) => Some(std::borrow::Cow::Borrowed(s.as_str())),
            serde_json::Value::Number(n) => Some(std::borrow::Cow::Owned(n.to_string())),
            serde_json::Value::Bool(b) => Some(std::borrow::Cow::Owned(b.to_string())),
            _ => None,
        })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanKind {
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    pub fn from_i32(value: i32) -> Self {
        match value {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }

    pub fn as_i32(self) -> i32 {
        match self {
            SpanKind::Unspecified => 0,
            SpanKind::Internal => 1,
            SpanKind::Server => 2,
            SpanKind::Client => 3,
            SpanKind::Producer => 4,
            SpanKind::Consumer => 5,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusCode {
    Unset,
    Ok,
    Error,
}

impl StatusCode {
    pub fn from_i32(value: i32) -> Self {
        match value {
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => StatusCode::Unset,
        }
    }

    pub fn as_i32(self) -> i32 {
        match self {
            StatusCode::Unset => 0,
            StatusCode::Ok => 1,
            StatusCode::Error => 2,
        }
    }
}

/// Who emitted a span: resource `service.name`, `service.namespace`, `service.instance.id`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct ServiceRef {
    pub name: String,
    pub namespace: Option<String>,
    pub instance: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    pub time_unix_nanos: u64,
    pub name: String,
    #[serde(serialize_with = "serialize_attrs")]
    pub attributes: Attributes,
}

/// A span link: batch receivers link one span to many producers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Link {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    #[serde(serialize_with = "serialize_attrs")]
    pub attributes: Attributes,
}

/// A span after conversion. Invariants: ids are valid, `service.name` is non-empty,
/// `end_unix_nanos >= start_unix_nanos` (a reversed pair is clamped on conversion).
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub service: ServiceRef,
    pub kind: SpanKind,
    pub name: String,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub status: StatusCode,
    pub status_message: String,
    pub attributes: Attributes,
    /// Resource attributes other than the service identity.
    pub resource: std::sync::Arc<Attributes>,
    pub scope: String,
    pub events: Vec<Event>,
    pub links: Vec<Link>,
    /// The messaging role, when the span is a produce, consume or settle operation.
    pub messaging: Option<Messaging>,
    /// For a CLIENT span that is not messaging: the peer it calls (service, host or database).
    pub peer: Option<String>,
}

impl Span {
    pub fn duration_micros(&self) -> u64 {
        self.end_unix_nanos.saturating_sub(self.start_unix_nanos) / 1_000
    }

    pub fn is_error(&self) -> bool {
        self.status == StatusCode::Error
    }
}
