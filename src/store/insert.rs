//! Spans made ready for the writer: JSON columns encoded on the caller's thread.

use crate::model::span::AttrMap;
use crate::model::{Attributes, Span};

/// A span with its JSON columns already encoded, so the writer thread only binds values.
#[derive(Clone)]
pub struct Prepared {
    /// The span without its attribute lists (they are in the JSON columns; dropping them here
    /// keeps that work off the writer thread). Links keep their ids.
    pub span: Span,
    /// `db.system` of a CLIENT span, for the external node it calls.
    pub db_system: Option<String>,
    /// What pairing reads of the attributes and events dropped here.
    pub marks: crate::model::messaging::Marks,
    pub attributes: Option<String>,
    pub events: Option<String>,
    pub links: Option<String>,
    /// Bloom filter entries of the attributes (see `postings`), hashed here, off the writer.
    pub attribute_hashes: Vec<u64>,
}

/// Encodes the JSON columns; runs on the caller's thread, off the single writer.
pub fn prepare(spans: Vec<Span>) -> Vec<Prepared> {
    spans
        .into_iter()
        .map(|mut span| Prepared {
            attributes: attributes_json(&span.attributes),
            marks: crate::model::messaging::Marks::of(&span),
            attribute_hashes: super::sqlite::postings::attribute_hashes(&span.attributes),
            db_system: span
                .attributes
                .iter()
                .find(|(k, _)| k == "db.system.name" || k == "db.system")
                .and_then(|(_, v)| v.as_str().map(str::to_string)),
            events: (!span.events.is_empty())
                .then(|| serde_json::to_string(&span.events).unwrap_or_default()),
            links: (!span.links.is_empty())
                .then(|| serde_json::to_string(&span.links).unwrap_or_default()),
            span: {
                span.attributes = Vec::new();
                span.events = Vec::new();
                for link in &mut span.links {
                    link.attributes = Vec::new();
                }
                span
            },
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

/// The span as stored when pairing found its delivery failed though the span did not say so
/// ([`crate::accounting::facts::FLAG_FAILED`]): an error (status `Error`, its message saying
/// why when it had none) with `error.type` set to the reason (`redelivered`,
/// `dead_lettered`), so the trace
/// view, the trace search's "errors only" and an attribute search find it. `None` when the
/// flags mark no such failure or the span is an error already (its own error says more).
pub fn marked_failed(p: &Prepared, flags: u8) -> Option<Prepared> {
    use crate::model::messaging::ERROR_TYPE;
    let mark = failed_mark(
        p.span.status,
        &p.span.status_message,
        p.attributes.as_deref(),
        flags,
    )?;
    let mut out = p.clone();
    if mark.typed {
        out.attribute_hashes
            .push(super::sqlite::postings::attribute_hash(
                ERROR_TYPE,
                mark.reason,
            ));
    }
    out.attributes = Some(mark.attributes);
    out.span.status = crate::model::StatusCode::Error;
    out.span.status_message = mark.status_message;
    Some(out)
}

/// What [`marked_failed`] changes in a span: status `Error` with these.
pub struct FailedMark {
    pub reason: &'static str,
    pub status_message: String,
    /// The attributes (JSON), with `error.type` set to the reason unless they had one.
    pub attributes: String,
    /// Whether `error.type` was added.
    pub typed: bool,
}

/// The marks of a span of this status, status message and attributes (JSON) found failed
/// (`flags`); `None` when the flags mark no such failure or the span is an error already.
pub fn failed_mark(
    status: crate::model::StatusCode,
    status_message: &str,
    attributes: Option<&str>,
    flags: u8,
) -> Option<FailedMark> {
    use crate::model::messaging::ERROR_TYPE;
    let reason = crate::accounting::facts::failed_reason(flags)?;
    if status == crate::model::StatusCode::Error {
        // The span's own error says more than the inference.
        return None;
    }
    let mut attrs: serde_json::Map<String, serde_json::Value> = match attributes {
        Some(json) => serde_json::from_str(json).ok()?,
        None => serde_json::Map::new(),
    };
    // A span that has an `error.type` of its own keeps it, and is found by it, not by the
    // reason.
    let typed = !attrs.contains_key(ERROR_TYPE);
    if typed {
        attrs.insert(
            ERROR_TYPE.to_string(),
            serde_json::Value::String(reason.to_string()),
        );
    }
    Some(FailedMark {
        reason,
        status_message: if status_message.is_empty() {
            crate::accounting::facts::failed_message(reason).to_string()
        } else {
            status_message.to_string()
        },
        attributes: serde_json::to_string(&attrs).ok()?,
        typed,
    })
}
