//! Spans made ready for the writer: JSON columns encoded on the caller's thread.

use crate::model::span::AttrMap;
use crate::model::{Attributes, Span};

/// A span with its JSON columns already encoded, so the writer thread only binds values.
pub struct Prepared {
    pub span: Span,
    pub attributes: Option<String>,
    pub events: Option<String>,
    pub links: Option<String>,
}

/// Encodes the JSON columns; runs on the caller's thread, off the single writer.
pub fn prepare(spans: Vec<Span>) -> Vec<Prepared> {
    spans
        .into_iter()
        .map(|span| Prepared {
            attributes: attributes_json(&span.attributes),
            events: (!span.events.is_empty())
                .then(|| serde_json::to_string(&span.events).unwrap_or_default()),
            links: (!span.links.is_empty())
                .then(|| serde_json::to_string(&span.links).unwrap_or_default()),
            span,
        })
        .collect()
}

/// Attributes as one JSON object (`null` when there are none).
pub fn attributes_json(attrs: &Attributes) -> Option<String> {
    if attrs.is_empty() {
        return None;
    }
    serde_json::to_string(&AttrMap(attrs)).ok()
}
