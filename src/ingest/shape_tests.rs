use super::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue, KeyValueList};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span};
use prost::Message;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "orders")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn full_span() -> Span {
    Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "orders send".into(),
        attributes: vec![kv("messaging.system", "kafka"), kv("a", "b")],
        events: vec![span::Event {
            name: "e".into(),
            attributes: vec![kv("x", "y")],
            ..Default::default()
        }],
        links: vec![span::Link {
            trace_id: vec![3; 16],
            span_id: vec![4; 8],
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn counts_match_the_request() {
    let body = request(vec![full_span(), full_span(), Span::default()]).encode_to_vec();
    let shape = protobuf_traces(&body).unwrap();
    assert_eq!(shape.spans, 3);
    // service.name, 2 x (2 span attributes + 1 event attribute).
    assert_eq!(shape.attributes, 7);
    assert_eq!(shape.events, 2);
    assert_eq!(shape.links, 2);
    assert!(
        shape.decoded_bytes >= 3 * size_of::<Span>() as u64,
        "{shape:?}"
    );
}

#[test]
fn empty_spans_cost_their_decoded_size_not_their_bytes() {
    let body = request(vec![Span::default(); 10_000]).encode_to_vec();
    let shape = protobuf_traces(&body).unwrap();
    assert_eq!(shape.spans, 10_000);
    assert!(
        shape.decoded_bytes >= 10_000 * size_of::<Span>() as u64,
        "{shape:?}"
    );
    assert!(shape.decoded_bytes > 50 * body.len() as u64, "{shape:?}");
}

/// A key-value whose value is a kvlist `depth` levels deep.
fn nested(depth: usize) -> KeyValue {
    let mut value = AnyValue::default();
    for _ in 0..depth {
        value = AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![KeyValue {
                    key: "k".into(),
                    value: Some(value),
                    ..Default::default()
                }],
            })),
        };
    }
    KeyValue {
        key: "deep".into(),
        value: Some(value),
        ..Default::default()
    }
}

#[test]
fn nesting_is_bounded_like_the_decoder() {
    let legal = request(vec![Span {
        attributes: vec![nested(25)],
        ..Default::default()
    }])
    .encode_to_vec();
    assert!(ExportTraceServiceRequest::decode(&legal[..]).is_ok());
    assert_eq!(protobuf_traces(&legal).unwrap().attributes, 26 + 1);
    let deep = request(vec![Span {
        attributes: vec![nested(40)],
        ..Default::default()
    }])
    .encode_to_vec();
    assert!(ExportTraceServiceRequest::decode(&deep[..]).is_err());
    assert_eq!(protobuf_traces(&deep), Err(ShapeError::TooDeep));
}

#[test]
fn broken_framing_is_malformed() {
    let body = request(vec![full_span()]).encode_to_vec();
    for cut in [1, body.len() / 2, body.len() - 1] {
        let truncated = &body[..cut];
        if ExportTraceServiceRequest::decode(truncated).is_err() {
            assert!(
                matches!(protobuf_traces(truncated), Err(ShapeError::Malformed(_))),
                "cut at {cut}"
            );
        }
    }
    assert!(protobuf_traces(&[0x00]).is_err());
    assert!(protobuf_traces(&[0x0f]).is_err());
    assert!(protobuf_traces(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
    assert!(protobuf_wire(&[0x0a, 0x05, 1]).is_err());
    assert_eq!(protobuf_traces(&[]), Ok(Shape::default()));
}

#[test]
fn json_counts_spans_attributes_events_and_links() {
    let body = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"a"}}]},
        "scopeSpans":[{"spans":[{"name":"x","attributes":[{"key":"k","value":{"intValue":"1"}}],
        "events":[{"name":"e"}],"links":[{"traceId":"00"}]},{"name":"y"}]}]}]}"#;
    let shape = json_traces(body).unwrap();
    assert_eq!(shape.spans, 2);
    assert_eq!(shape.attributes, 2);
    assert_eq!(shape.events, 1);
    assert_eq!(shape.links, 1);
}

#[test]
fn json_empty_objects_under_any_key_cost_a_span() {
    let spans = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
        vec!["{}"; 1000].join(",")
    );
    let shape = json_traces(spans.as_bytes()).unwrap();
    assert_eq!(shape.spans, 1000);
    assert!(shape.decoded_bytes >= 1000 * 2 * size_of::<Span>() as u64);
    // The same objects under an escaped key ("spans" spelled with an escape) cost as much.
    let escaped = spans.replace(r#""spans""#, r#""sp\u0061ns""#);
    let other = json_traces(escaped.as_bytes()).unwrap();
    assert!(other.decoded_bytes >= shape.decoded_bytes, "{other:?}");
}

#[test]
fn json_nesting_is_bounded() {
    let deep = "[".repeat(MAX_JSON_DEPTH + 1);
    assert_eq!(json_traces(deep.as_bytes()), Err(ShapeError::TooDeep));
    let fine = format!("{}{}", "[".repeat(10), "]".repeat(10));
    assert!(json_traces(fine.as_bytes()).is_ok());
    // Brackets in strings are text.
    let quoted = format!(r#"{{"a":"{}"}}"#, "[".repeat(1000));
    assert!(json_traces(quoted.as_bytes()).is_ok());
}
