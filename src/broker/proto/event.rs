//! CloudEvents 1.0 over HTTP (structured and binary content modes) and plain JSON bodies,
//! parsed into one [`Event`]; and the structured JSON form deliveries carry.

use crate::broker::error::BrokerError;
use base64::Engine;
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};

/// A message as the broker stores it. Invariant: `attributes` holds the CloudEvents context
/// attributes (`specversion` "1.0", non-empty string `id`, `source` and `type`, optional
/// others and extensions) and never `data` or `data_base64`.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub attributes: Map<String, Value>,
    pub data: Option<Vec<u8>>,
    /// `data` is JSON text (embedded as JSON, not base64, in the structured form).
    pub data_is_json: bool,
}

/// W3C trace context as received (validated when the span is made; an invalid one is ignored).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceContext {
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

/// A hop count attribute: a non-negative integer, as a number or a string (binary mode); 0
/// when absent or anything else.
pub fn hops_value(value: Option<&Value>) -> u32 {
    let n = match value {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    n.map_or(0, |n| n.min(u32::MAX as u64) as u32)
}

impl Event {
    pub fn id(&self) -> &str {
        self.str_attr("id").unwrap_or("")
    }

    pub fn source(&self) -> Option<&str> {
        self.str_attr("source")
    }

    pub fn str_attr(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).and_then(Value::as_str)
    }

    /// The push hops this event went through (see [`super::MAX_PUSH_HOPS`]).
    pub fn hops(&self) -> u32 {
        hops_value(self.attributes.get(super::HOPS_ATTRIBUTE))
    }

    /// Raises the event's hop count to `hops` (a `Switchyard-Hops` header beside the body).
    pub fn raise_hops(&mut self, hops: u32) {
        if hops > self.hops() {
            self.attributes
                .insert(super::HOPS_ATTRIBUTE.into(), Value::from(hops));
        }
    }

    /// Bytes counted against the message limit: data plus the attributes' JSON.
    pub fn size(&self) -> usize {
        self.data.as_ref().map_or(0, Vec::len)
            + Value::Object(self.attributes.clone()).to_string().len()
    }

    /// The structured-mode JSON object (`data` for JSON data or UTF-8 text, else `data_base64`).
    pub fn to_structured(&self) -> Value {
        let mut obj = self.attributes.clone();
        if let Some(data) = &self.data {
            let json = self
                .data_is_json
                .then(|| serde_json::from_slice::<Value>(data).ok())
                .flatten();
            match (json, std::str::from_utf8(data)) {
                (Some(v), _) => obj.insert("data".into(), v),
                (None, Ok(text)) if is_text(self.str_attr("datacontenttype")) => {
                    obj.insert("data".into(), Value::String(text.into()))
                }
                _ => obj.insert(
                    "data_base64".into(),
                    Value::String(base64::engine::general_purpose::STANDARD.encode(data)),
                ),
            };
        }
        Value::Object(obj)
    }
}

fn is_text(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|t| essence(t).starts_with("text/"))
}

/// The media type without parameters, lowercase.
pub fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn is_json(content_type: &str) -> bool {
    let e = essence(content_type);
    e == "application/json" || e.ends_with("+json") || e == "text/json"
}

/// Parses an HTTP publish. `headers` are (lowercase name, value) pairs; `fallback_source` (the
/// caller's service) is the `source` of plain JSON bodies, else `unknown_service`.
pub fn parse(
    content_type: Option<&str>,
    headers: &[(String, String)],
    body: &[u8],
    fallback_source: Option<&str>,
) -> Result<Event, BrokerError> {
    let ct = content_type.unwrap_or("");
    if essence(ct) == "application/cloudevents+json" {
        return structured(body);
    }
    if headers.iter().any(|(k, _)| k == "ce-specversion") {
        return binary(content_type, headers, body);
    }
    if content_type.is_none() || is_json(ct) {
        serde_json::from_slice::<Value>(body)
            .map_err(|e| BrokerError::BadRequest(format!("the body is not JSON: {e}")))?;
        let mut attributes = Map::new();
        attributes.insert("specversion".into(), "1.0".into());
        attributes.insert("id".into(), generated_id().into());
        attributes.insert(
            "source".into(),
            fallback_source.unwrap_or(super::UNKNOWN_SERVICE).into(),
        );
        attributes.insert("type".into(), "switchyard.message".into());
        attributes.insert("datacontenttype".into(), "application/json".into());
        return Ok(Event {
            attributes,
            data: Some(body.to_vec()),
            data_is_json: true,
        });
    }
    Err(BrokerError::UnsupportedMediaType(format!(
        "unsupported content type {ct:?}: use application/cloudevents+json, ce-* headers (binary mode) or application/json"
    )))
}

/// The media type of CloudEvents' batched content mode: a JSON array of structured events.
pub const BATCH_MEDIA_TYPE: &str = "application/cloudevents-batch+json";

/// Events one batch may hold.
pub const MAX_BATCH_EVENTS: usize = 1000;

/// Whether a publish's content type is the batched content mode.
pub fn is_batch(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| essence(ct) == BATCH_MEDIA_TYPE)
}

/// Parses a batched-mode body: 1 to [`MAX_BATCH_EVENTS`] structured events. A malformed event
/// fails the whole batch, naming its index.
pub fn parse_batch(body: &[u8]) -> Result<Vec<Event>, BrokerError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| BrokerError::BadRequest(format!("the batch is not JSON: {e}")))?;
    let Value::Array(items) = value else {
        return Err(BrokerError::BadRequest(
            "a batch is a JSON array of structured events".into(),
        ));
    };
    if items.is_empty() || items.len() > MAX_BATCH_EVENTS {
        return Err(BrokerError::BadRequest(format!(
            "a batch holds 1 to {MAX_BATCH_EVENTS} events, not {}",
            items.len()
        )));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            structured_value(item).map_err(|e| match e {
                BrokerError::BadRequest(m) => BrokerError::BadRequest(format!("event {i}: {m}")),
                other => other,
            })
        })
        .collect()
}

fn structured(body: &[u8]) -> Result<Event, BrokerError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| BrokerError::BadRequest(format!("the event is not JSON: {e}")))?;
    structured_value(value)
}

fn structured_value(value: Value) -> Result<Event, BrokerError> {
    let Value::Object(mut attributes) = value else {
        return Err(BrokerError::BadRequest(
            "the event is not a JSON object".into(),
        ));
    };
    let data = attributes.remove("data");
    let data_base64 = attributes.remove("data_base64");
    let (data, data_is_json) = match (data, data_base64) {
        (Some(_), Some(_)) => {
            return Err(BrokerError::BadRequest(
                "an event has data or data_base64, not both".into(),
            ))
        }
        (Some(Value::String(s)), None)
            if !attributes
                .get("datacontenttype")
                .and_then(Value::as_str)
                .is_none_or(is_json) =>
        {
            (Some(s.into_bytes()), false)
        }
        (Some(v), None) => (Some(v.to_string().into_bytes()), true),
        (None, Some(Value::String(b))) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b.as_bytes())
                .map_err(|e| BrokerError::BadRequest(format!("invalid data_base64: {e}")))?;
            (Some(bytes), false)
        }
        (None, Some(_)) => {
            return Err(BrokerError::BadRequest(
                "data_base64 must be a string".into(),
            ))
        }
        (None, None) => (None, false),
    };
    let event = Event {
        attributes,
        data,
        data_is_json,
    };
    validate(&event)?;
    Ok(event)
}

fn binary(
    content_type: Option<&str>,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Event, BrokerError> {
    let mut attributes = Map::new();
    for (name, value) in headers {
        if let Some(attr) = name.strip_prefix("ce-") {
            // Header values are percent-encoded (CloudEvents HTTP binding 3.1.3.2).
            let decoded = crate::percent::decode(value);
            attributes.insert(attr.to_string(), Value::String(decoded));
        }
    }
    if let Some(ct) = content_type {
        attributes.insert("datacontenttype".into(), ct.into());
    }
    let event = Event {
        data_is_json: content_type.is_some_and(is_json),
        data: (!body.is_empty()).then(|| body.to_vec()),
        attributes,
    };
    if event.data_is_json {
        if let Some(d) = &event.data {
            serde_json::from_slice::<Value>(d)
                .map_err(|e| BrokerError::BadRequest(format!("the data is not JSON: {e}")))?;
        }
    }
    validate(&event)?;
    Ok(event)
}

/// CloudEvents requires `specversion` 1.0 and non-empty `id`, `source` and `type`.
fn validate(event: &Event) -> Result<(), BrokerError> {
    match event.attributes.get("specversion") {
        Some(Value::String(v)) if v == "1.0" => {}
        Some(v) => {
            return Err(BrokerError::BadRequest(format!(
                "unsupported specversion {v}: use \"1.0\""
            )))
        }
        None => {
            return Err(BrokerError::BadRequest(
                "the event has no specversion".into(),
            ))
        }
    }
    for name in ["id", "source", "type"] {
        match event.attributes.get(name) {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(_) => {
                return Err(BrokerError::BadRequest(format!(
                    "the event's {name} must be a non-empty string"
                )))
            }
            None => return Err(BrokerError::BadRequest(format!("the event has no {name}"))),
        }
    }
    for name in event.attributes.keys() {
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !valid {
            return Err(BrokerError::BadRequest(format!(
                "invalid attribute name {name:?}: lowercase letters and digits only"
            )));
        }
    }
    Ok(())
}

/// A unique id for events published without one: time and a process-wide counter.
pub(crate) fn generated_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:x}-{n:x}",
        super::unix_nanos(std::time::SystemTime::now())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn structured_events_round_trip_json_text_and_binary_data() {
        let body = br#"{"specversion":"1.0","id":"1","source":"/shop","type":"order.created","data":{"n":1}}"#;
        let e = parse(
            Some("application/cloudevents+json; charset=utf-8"),
            &[],
            body,
            None,
        )
        .unwrap();
        assert_eq!(e.id(), "1");
        assert_eq!(e.to_structured()["data"]["n"], 1);
        let b64 = br#"{"specversion":"1.0","id":"2","source":"s","type":"t","data_base64":"AAE="}"#;
        let e = parse(Some("application/cloudevents+json"), &[], b64, None).unwrap();
        assert_eq!(e.data.as_deref(), Some(&[0u8, 1][..]));
        assert_eq!(e.to_structured()["data_base64"], "AAE=");
        let text = br#"{"specversion":"1.0","id":"3","source":"s","type":"t","datacontenttype":"text/plain","data":"hi"}"#;
        let e = parse(Some("application/cloudevents+json"), &[], text, None).unwrap();
        assert_eq!(e.to_structured()["data"], "hi");
    }

    #[test]
    fn malformed_events_are_refused_with_a_reason() {
        let ct = Some("application/cloudevents+json");
        for body in [
            &br#"{"specversion":"0.3","id":"1","source":"s","type":"t"}"#[..],
            br#"{"specversion":"1.0","source":"s","type":"t"}"#,
            br#"{"specversion":"1.0","id":"","source":"s","type":"t"}"#,
            br#"{"specversion":"1.0","id":"1","source":"s","type":"t","data":1,"data_base64":"AA=="}"#,
            br#"{"specversion":"1.0","id":"1","source":"s","type":"t","Bad":1}"#,
            br#"[1]"#,
            b"not json",
        ] {
            let err = parse(ct, &[], body, None).unwrap_err();
            assert!(matches!(err, BrokerError::BadRequest(_)), "{err}");
        }
        assert!(matches!(
            parse(Some("text/plain"), &[], b"x", None),
            Err(BrokerError::UnsupportedMediaType(_))
        ));
    }

    #[test]
    fn binary_mode_reads_ce_headers_and_percent_decodes() {
        let headers = h(&[
            ("ce-specversion", "1.0"),
            ("ce-id", "42"),
            ("ce-source", "/a%20b"),
            ("ce-type", "t"),
        ]);
        let e = parse(Some("application/json"), &headers, br#"{"x":1}"#, None).unwrap();
        assert_eq!(e.source(), Some("/a b"));
        assert_eq!(e.to_structured()["data"]["x"], 1);
        assert_eq!(e.to_structured()["datacontenttype"], "application/json");
        let missing = h(&[("ce-specversion", "1.0"), ("ce-id", "1")]);
        assert!(parse(None, &missing, b"", None).is_err());
    }

    #[test]
    fn plain_json_gets_an_id_and_the_caller_as_source() {
        let e = parse(
            Some("application/json"),
            &[],
            br#"{"a":1}"#,
            Some("billing"),
        )
        .unwrap();
        assert!(!e.id().is_empty());
        assert_eq!(e.source(), Some("billing"));
        assert!(parse(None, &[], b"{", None).is_err());
    }
}
