//! OTLP (opentelemetry-proto types) -> `model::Span`. No protobuf type leaves this module.

use super::messaging::{first, messaging};
use crate::model::limits::{self, Truncated};
use crate::model::{
    AttrValue, Attributes, Event, Link, ServiceRef, Span, SpanId, SpanKind, StatusCode, TraceId,
};
use crate::semconv;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1 as otlp;

/// The outcome of converting one request: the valid spans, and the rejected ones counted with
/// the first few reasons (for `partial_success`).
#[derive(Debug, Default)]
pub struct Converted {
    pub spans: Vec<Span>,
    pub rejected: u64,
    pub reasons: Vec<String>,
    /// Names and values cut to their limits (`model::limits`).
    pub truncated: Truncated,
}

const MAX_REASONS: usize = 3;
/// How far in the future a span may start or end (clock skew), before it is rejected.
const MAX_FUTURE_NANOS: u64 = 24 * 3600 * 1_000_000_000;

pub fn convert_request(request: ExportTraceServiceRequest) -> Converted {
    let mut out = Converted::default();
    for rs in request.resource_spans {
        let resource_attrs = rs.resource.map(|r| r.attributes).unwrap_or_default();
        let service = service_ref(&resource_attrs);
        let mut resource: Attributes = resource_attrs
            .into_iter()
            .filter(|kv| {
                kv.key != semconv::SERVICE_NAME
                    && kv.key != semconv::SERVICE_NAMESPACE
                    && kv.key != semconv::SERVICE_INSTANCE
            })
            .map(key_value)
            .collect();
        out.truncated += limits::limit_attributes(&mut resource);
        let resource = std::sync::Arc::new(resource);
        for ss in rs.scope_spans {
            let scope = ss.scope.map(|s| s.name).unwrap_or_default();
            for raw in ss.spans {
                let Some(service) = service.clone() else {
                    out.reject("resource has no service.name".to_string());
                    continue;
                };
                match convert_span(raw, service, &resource, &scope) {
                    Ok(mut span) => {
                        out.truncated += limits::limit_span(&mut span);
                        out.spans.push(span);
                    }
                    Err(reason) => out.reject(reason),
                }
            }
        }
    }
    out
}

impl Converted {
    fn reject(&mut self, reason: String) {
        self.rejected += 1;
        if self.reasons.len() < MAX_REASONS && !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
    }

    /// The `partial_success.error_message` text, empty when nothing was rejected.
    pub fn message(&self) -> String {
        if self.rejected == 0 {
            return String::new();
        }
        format!(
            "rejected {} invalid span(s): {}",
            self.rejected,
            self.reasons.join("; ")
        )
    }
}

fn service_ref(attrs: &[KeyValue]) -> Option<ServiceRef> {
    let get = |key: &str| {
        attrs
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| match &v.value {
                Some(any_value::Value::StringValue(s)) if !s.trim().is_empty() => {
                    Some(s.trim().to_string())
                }
                _ => None,
            })
    };
    Some(ServiceRef {
        name: get(semconv::SERVICE_NAME)?,
        namespace: get(semconv::SERVICE_NAMESPACE),
        instance: get(semconv::SERVICE_INSTANCE),
    })
}

fn convert_span(
    raw: otlp::Span,
    service: ServiceRef,
    resource: &std::sync::Arc<Attributes>,
    scope: &str,
) -> Result<Span, String> {
    let trace_id = TraceId::from_bytes(&raw.trace_id).map_err(|e| e.to_string())?;
    let span_id = SpanId::from_bytes(&raw.span_id).map_err(|e| e.to_string())?;
    let parent_span_id = match raw.parent_span_id.len() {
        0 => None,
        _ => Some(SpanId::from_bytes(&raw.parent_span_id).map_err(|e| format!("parent {e}"))?),
    };
    if raw.start_time_unix_nano == 0 {
        return Err("span has no start time".to_string());
    }
    let horizon = crate::model::window::now_unix_nanos().saturating_add(MAX_FUTURE_NANOS);
    if raw.start_time_unix_nano > horizon || raw.end_time_unix_nano > horizon {
        return Err("span times are more than a day in the future".to_string());
    }
    let links = raw
        .links
        .into_iter()
        .map(|l| {
            Ok(Link {
                trace_id: TraceId::from_bytes(&l.trace_id).map_err(|e| format!("link {e}"))?,
                span_id: SpanId::from_bytes(&l.span_id).map_err(|e| format!("link {e}"))?,
                attributes: l.attributes.into_iter().map(key_value).collect(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let events = raw
        .events
        .into_iter()
        .map(|e| Event {
            time_unix_nanos: e.time_unix_nano,
            name: e.name,
            attributes: e.attributes.into_iter().map(key_value).collect(),
        })
        .collect();
    let mut attributes: Attributes = dedupe(raw.attributes.into_iter().map(key_value).collect());
    let kind = SpanKind::from_i32(raw.kind);
    let (status, status_message) = raw
        .status
        .map(|s| (StatusCode::from_i32(s.code), s.message))
        .unwrap_or((StatusCode::Unset, String::new()));
    let messaging = messaging(&attributes, kind, &raw.name, scope).map(|read| {
        // Facts Switchyard read from elsewhere replace any span attribute of the same name.
        attributes.retain(|(k, _)| !read.learned.iter().any(|(l, _)| l == k));
        attributes.extend(read.learned);
        read.messaging
    });
    let peer = if messaging.is_none() && kind == SpanKind::Client {
        peer(&attributes)
    } else {
        None
    };
    Ok(Span {
        trace_id,
        span_id,
        parent_span_id,
        service,
        kind,
        name: raw.name,
        start_unix_nanos: raw.start_time_unix_nano,
        end_unix_nanos: raw.end_time_unix_nano.max(raw.start_time_unix_nano),
        status,
        status_message,
        attributes,
        resource: resource.clone(),
        scope: scope.to_string(),
        events,
        links,
        messaging,
        peer,
    })
}

/// Keeps the last value of a repeated key, in first-seen order.
fn dedupe(attrs: Attributes) -> Attributes {
    // Spans carry a handful of attributes, nearly always distinct: comparing keys is cheaper
    // than hashing them, and the list is kept as it is when nothing repeats.
    if attrs.len() <= SMALL_ATTRIBUTES {
        let repeats = attrs
            .iter()
            .enumerate()
            .any(|(i, (k, _))| attrs[..i].iter().any(|(seen, _)| seen == k));
        if !repeats {
            return attrs;
        }
        let mut out: Attributes = Vec::with_capacity(attrs.len());
        for (k, v) in attrs {
            match out.iter().position(|(seen, _)| *seen == k) {
                Some(i) => out[i].1 = v,
                None => out.push((k, v)),
            }
        }
        return out;
    }
    let mut seen = foldhash::HashMap::with_capacity_and_hasher(attrs.len(), Default::default());
    let mut out: Attributes = Vec::with_capacity(attrs.len());
    for (k, v) in attrs {
        match seen.get(&k) {
            Some(&i) => out[i] = (k, v),
            None => {
                seen.insert(k.clone(), out.len());
                out.push((k, v));
            }
        }
    }
    out
}

/// Up to this many attributes, repeated keys are found by comparing keys, not hashing them.
const SMALL_ATTRIBUTES: usize = 24;

fn key_value(kv: KeyValue) -> (String, AttrValue) {
    (
        kv.key,
        kv.value.map(any_value_json).unwrap_or(AttrValue::Null),
    )
}

fn any_value_json(v: AnyValue) -> AttrValue {
    match v.value {
        // String-table indexes only mean something inside profiles, which are not ingested.
        None | Some(any_value::Value::StringValueStrindex(_)) => AttrValue::Null,
        Some(any_value::Value::StringValue(s)) => AttrValue::String(s),
        Some(any_value::Value::BoolValue(b)) => AttrValue::Bool(b),
        Some(any_value::Value::IntValue(i)) => AttrValue::from(i),
        Some(any_value::Value::DoubleValue(d)) => serde_json::Number::from_f64(d)
            .map(AttrValue::Number)
            .unwrap_or_else(|| AttrValue::String(d.to_string())),
        Some(any_value::Value::BytesValue(b)) => AttrValue::String(hex::encode(b)),
        Some(any_value::Value::ArrayValue(a)) => {
            AttrValue::Array(a.values.into_iter().map(any_value_json).collect())
        }
        Some(any_value::Value::KvlistValue(kv)) => {
            AttrValue::Object(kv.values.into_iter().map(key_value).collect())
        }
    }
}

/// The peer a CLIENT span calls: `peer.service`, else the database system (with its name),
/// else the server address.
fn peer(attrs: &Attributes) -> Option<String> {
    if let Some(p) = first(attrs, &semconv::PEER_SERVICE) {
        return Some(p.into_owned());
    }
    if let Some(db) = first(attrs, &semconv::DB_SYSTEM) {
        return Some(match first(attrs, &semconv::DB_NAMESPACE) {
            Some(name) => format!("{db}/{name}"),
            None => db.into_owned(),
        });
    }
    first(attrs, &semconv::SERVER_ADDRESS).map(|a| a.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> Attributes {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), AttrValue::String(v.to_string())))
            .collect()
    }

    #[test]
    fn a_repeated_key_keeps_its_first_place_and_its_last_value() {
        let keys = |a: &Attributes| a.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        for n in [3, SMALL_ATTRIBUTES, SMALL_ATTRIBUTES + 10] {
            let mut pairs: Vec<(String, String)> =
                (0..n).map(|i| (format!("k{i}"), format!("v{i}"))).collect();
            let distinct = attrs(
                &pairs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect::<Vec<_>>(),
            );
            assert_eq!(dedupe(distinct.clone()), distinct, "n = {n}");
            pairs.push(("k1".into(), "again".into()));
            pairs.push(("k0".into(), "last".into()));
            let out = dedupe(attrs(
                &pairs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect::<Vec<_>>(),
            ));
            assert_eq!(keys(&out), keys(&distinct), "n = {n}");
            assert_eq!(out[0].1, AttrValue::String("last".into()));
            assert_eq!(out[1].1, AttrValue::String("again".into()));
            assert_eq!(out[2].1, AttrValue::String("v2".into()));
        }
    }

    #[test]
    fn peers_prefer_peer_service_then_database() {
        assert_eq!(
            peer(&attrs(&[
                ("peer.service", "catalog"),
                ("server.address", "10.0.0.1")
            ]))
            .as_deref(),
            Some("catalog")
        );
        assert_eq!(
            peer(&attrs(&[("db.system", "postgresql"), ("db.name", "shop")])).as_deref(),
            Some("postgresql/shop")
        );
        assert_eq!(
            peer(&attrs(&[("net.peer.name", "api.example")])).as_deref(),
            Some("api.example")
        );
    }

    #[test]
    fn spans_from_the_far_future_are_rejected() {
        let now = crate::model::window::now_unix_nanos();
        let span = |start: u64| otlp::Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            start_time_unix_nano: start,
            end_time_unix_nano: start + 1,
            ..Default::default()
        };
        let req = ExportTraceServiceRequest {
            resource_spans: vec![otlp::ResourceSpans {
                resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("a".into())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![otlp::ScopeSpans {
                    scope: None,
                    spans: vec![
                        span(now),
                        span(now + 3 * MAX_FUTURE_NANOS),
                        span(u64::MAX - 10),
                    ],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        let out = convert_request(req);
        assert_eq!((out.spans.len(), out.rejected), (1, 2));
        assert!(out.message().contains("future"), "{}", out.message());
    }

    #[test]
    fn invalid_spans_are_rejected_not_panicked() {
        let req = ExportTraceServiceRequest {
            resource_spans: vec![otlp::ResourceSpans {
                resource: None,
                scope_spans: vec![otlp::ScopeSpans {
                    scope: None,
                    spans: vec![otlp::Span::default()],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        let out = convert_request(req);
        assert_eq!(out.rejected, 1);
        assert!(out.message().contains("service.name"));
    }
}
