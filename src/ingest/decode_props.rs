//! Property tests of the decoders (bounded: a few hundred cases of small inputs): arbitrary
//! bytes never panic and either decode or give a clean error, the shape read before decoding
//! agrees with what is decoded, and generated valid requests survive protobuf and the JSON
//! mapping unchanged.

use super::decode::{self, Encoding};
use super::shape::{self, ShapeError};
use super::IngestError;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use proptest::collection::vec;
use proptest::prelude::*;
use prost::Message;
use serde_json::{json, Value};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    }
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z.]{1,12}".prop_map(|s| s),
        any::<String>().prop_map(|s| s.chars().take(8).collect()),
    ]
}

fn any_value_strategy() -> impl Strategy<Value = AnyValue> {
    let leaf = prop_oneof![
        Just(None),
        text().prop_map(|s| Some(any_value::Value::StringValue(s))),
        any::<bool>().prop_map(|b| Some(any_value::Value::BoolValue(b))),
        any::<i64>().prop_map(|i| Some(any_value::Value::IntValue(i))),
        (-1e9f64..1e9).prop_map(|d| Some(any_value::Value::DoubleValue(d))),
        vec(any::<u8>(), 0..6).prop_map(|b| Some(any_value::Value::BytesValue(b))),
    ]
    .prop_map(|value| AnyValue { value });
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(|values| AnyValue {
                value: Some(any_value::Value::ArrayValue(ArrayValue { values })),
            }),
            vec((text(), inner), 0..4).prop_map(|kvs| AnyValue {
                value: Some(any_value::Value::KvlistValue(KeyValueList {
                    values: kvs
                        .into_iter()
                        .map(|(key, v)| KeyValue {
                            key,
                            value: Some(v),
                            ..Default::default()
                        })
                        .collect(),
                })),
            }),
        ]
    })
}

fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    vec((text(), any_value_strategy()), 0..4).prop_map(|kvs| {
        kvs.into_iter()
            .map(|(key, v)| KeyValue {
                key,
                value: Some(v),
                ..Default::default()
            })
            .collect()
    })
}

fn id(len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just(Vec::new()), vec(any::<u8>(), len..=len)]
}

fn span_strategy() -> impl Strategy<Value = Span> {
    (
        (id(16), id(8), id(8), text(), 0i32..6),
        (any::<u64>(), any::<u64>(), attributes()),
        vec((any::<u64>(), text(), attributes()), 0..3),
        vec((id(16), id(8), attributes(), any::<u32>()), 0..3),
        proptest::option::of((text(), 0i32..3)),
    )
        .prop_map(
            |(
                (trace_id, span_id, parent, name, kind),
                (start, end, attributes),
                events,
                links,
                status,
            )| Span {
                trace_id,
                span_id,
                parent_span_id: parent,
                name,
                kind,
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                attributes,
                events: events
                    .into_iter()
                    .map(|(time_unix_nano, name, attributes)| span::Event {
                        time_unix_nano,
                        name,
                        attributes,
                        dropped_attributes_count: 0,
                    })
                    .collect(),
                links: links
                    .into_iter()
                    .map(|(trace_id, span_id, attributes, flags)| span::Link {
                        trace_id,
                        span_id,
                        attributes,
                        flags,
                        ..Default::default()
                    })
                    .collect(),
                status: status.map(|(message, code)| Status { message, code }),
                ..Default::default()
            },
        )
}

fn request_strategy() -> impl Strategy<Value = ExportTraceServiceRequest> {
    vec(
        (
            attributes(),
            vec((text(), attributes(), vec(span_strategy(), 0..4)), 0..3),
        ),
        0..3,
    )
    .prop_map(|rss| ExportTraceServiceRequest {
        resource_spans: rss
            .into_iter()
            .map(|(attributes, scopes)| ResourceSpans {
                resource: Some(Resource {
                    attributes,
                    ..Default::default()
                }),
                scope_spans: scopes
                    .into_iter()
                    .map(|(name, attributes, spans)| ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name,
                            attributes,
                            ..Default::default()
                        }),
                        spans,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
    })
}

/// The OTLP/JSON encoding of a request (hex ids, 64-bit integers as strings, base64 bytes).
fn to_json(req: &ExportTraceServiceRequest) -> Value {
    use base64::Engine;
    fn any(v: &AnyValue) -> Value {
        match &v.value {
            None => json!({}),
            Some(any_value::Value::StringValue(s)) => json!({"stringValue": s}),
            Some(any_value::Value::BoolValue(b)) => json!({"boolValue": b}),
            Some(any_value::Value::IntValue(i)) => json!({"intValue": i.to_string()}),
            Some(any_value::Value::DoubleValue(d)) => json!({"doubleValue": d}),
            Some(any_value::Value::BytesValue(b)) => json!({
                "bytesValue": base64::engine::general_purpose::STANDARD.encode(b)
            }),
            Some(any_value::Value::ArrayValue(a)) => {
                json!({"arrayValue": {"values": a.values.iter().map(any).collect::<Vec<_>>()}})
            }
            Some(any_value::Value::KvlistValue(l)) => {
                json!({"kvlistValue": {"values": attrs(&l.values)}})
            }
            Some(any_value::Value::StringValueStrindex(_)) => json!({}),
        }
    }
    fn attrs(list: &[KeyValue]) -> Value {
        list.iter()
            .map(|kv| json!({"key": kv.key, "value": kv.value.as_ref().map(any)}))
            .collect()
    }
    let span = |s: &Span| {
        json!({
            "traceId": hex::encode(&s.trace_id),
            "spanId": hex::encode(&s.span_id),
            "parentSpanId": hex::encode(&s.parent_span_id),
            "name": s.name,
            "kind": s.kind,
            "startTimeUnixNano": s.start_time_unix_nano.to_string(),
            "endTimeUnixNano": s.end_time_unix_nano.to_string(),
            "attributes": attrs(&s.attributes),
            "events": s.events.iter().map(|e| json!({
                "timeUnixNano": e.time_unix_nano.to_string(), "name": e.name, "attributes": attrs(&e.attributes),
            })).collect::<Vec<_>>(),
            "links": s.links.iter().map(|l| json!({
                "traceId": hex::encode(&l.trace_id), "spanId": hex::encode(&l.span_id),
                "attributes": attrs(&l.attributes), "flags": l.flags,
            })).collect::<Vec<_>>(),
            "status": s.status.as_ref().map(|st| json!({"message": st.message, "code": st.code})),
        })
    };
    json!({"resourceSpans": req.resource_spans.iter().map(|rs| json!({
        "resource": {"attributes": attrs(rs.resource.as_ref().map_or(&[][..], |r| &r.attributes))},
        "scopeSpans": rs.scope_spans.iter().map(|ss| json!({
            "scope": ss.scope.as_ref().map(|sc| json!({"name": sc.name, "attributes": attrs(&sc.attributes)})),
            "spans": ss.spans.iter().map(span).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })).collect::<Vec<_>>()})
}

/// A decode error is a clean refusal, never anything else.
fn clean(result: Result<ExportTraceServiceRequest, IngestError>) {
    if let Err(e) = result {
        assert!(matches!(e, IngestError::Malformed(_)), "{e:?}");
    }
}

/// Counts what a decoded request holds: spans, key-values at every depth, events, links.
fn counts(req: &ExportTraceServiceRequest) -> (u64, u64, u64, u64) {
    fn kvs(list: &[KeyValue]) -> u64 {
        list.iter()
            .map(|kv| 1 + kv.value.as_ref().map_or(0, value_kvs))
            .sum()
    }
    fn value_kvs(v: &AnyValue) -> u64 {
        match &v.value {
            Some(any_value::Value::ArrayValue(a)) => a.values.iter().map(value_kvs).sum(),
            Some(any_value::Value::KvlistValue(l)) => kvs(&l.values),
            _ => 0,
        }
    }
    let mut c = (0, 0, 0, 0);
    for rs in &req.resource_spans {
        c.1 += rs.resource.as_ref().map_or(0, |r| kvs(&r.attributes));
        for ss in &rs.scope_spans {
            c.1 += ss.scope.as_ref().map_or(0, |s| kvs(&s.attributes));
            for s in &ss.spans {
                c.0 += 1;
                c.1 += kvs(&s.attributes);
                c.2 += s.events.len() as u64;
                c.3 += s.links.len() as u64;
                c.1 += s.events.iter().map(|e| kvs(&e.attributes)).sum::<u64>();
                c.1 += s.links.iter().map(|l| kvs(&l.attributes)).sum::<u64>();
            }
        }
    }
    c
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_bytes_never_panic_and_the_scan_agrees_with_prost(body in vec(any::<u8>(), 0..256)) {
        let scanned = shape::protobuf_traces(&body);
        let decoded = decode::traces(&body, Encoding::Protobuf);
        if let Err(ShapeError::Malformed(m)) = &scanned {
            prop_assert!(decoded.is_err(), "the scan refused ({m}) what prost decodes");
        }
        if let (Ok(shape), Ok(req)) = (&scanned, &decoded) {
            let (spans, attributes, events, links) = counts(req);
            prop_assert_eq!((shape.spans, shape.attributes, shape.events, shape.links), (spans, attributes, events, links));
        }
        clean(decoded);
        let _ = shape::protobuf_wire(&body);
        let _ = shape::json_traces(&body);
        clean(decode::traces(&body, Encoding::Json));
    }

    #[test]
    fn json_token_soup_never_panics(tokens in vec(prop_oneof![
        Just("{"), Just("}"), Just("["), Just("]"), Just(","), Just(":"),
        Just("\"resourceSpans\""), Just("\"scopeSpans\""), Just("\"spans\""),
        Just("\"attributes\""), Just("\"key\""), Just("\"value\""), Just("\"values\""),
        Just("\"kvlistValue\""), Just("\"arrayValue\""), Just("\"stringValue\""),
        Just("\"intValue\""), Just("\"traceId\""), Just("\"0a\""), Just("\"sp\\u0061ns\""),
        Just("1"), Just("-1.5e300"), Just("\"18446744073709551616\""), Just("null"), Just("true"),
    ], 0..64)) {
        let body = tokens.concat();
        let _ = shape::json_traces(body.as_bytes());
        clean(decode::traces(body.as_bytes(), Encoding::Json));
    }
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn valid_requests_roundtrip_through_protobuf_with_their_shape(req in request_strategy()) {
        let body = req.encode_to_vec();
        let shape = shape::protobuf_traces(&body).expect("a valid request scans");
        let (spans, attributes, events, links) = counts(&req);
        prop_assert_eq!((shape.spans, shape.attributes, shape.events, shape.links), (spans, attributes, events, links));
        prop_assert!(shape.decoded_bytes >= spans * std::mem::size_of::<Span>() as u64);
        let back = decode::traces(&body, Encoding::Protobuf).expect("decodes");
        prop_assert_eq!(&back, &req);
        let _ = super::convert::convert_request(back);
    }

    #[test]
    fn valid_requests_roundtrip_through_the_json_mapping(req in request_strategy()) {
        let body = to_json(&req).to_string();
        let shape = shape::json_traces(body.as_bytes()).expect("valid JSON scans");
        let (spans, _, events, links) = counts(&req);
        prop_assert_eq!((shape.spans, shape.events, shape.links), (spans, events, links));
        let back = decode::traces(body.as_bytes(), Encoding::Json).expect("the mapping decodes");
        prop_assert_eq!(&back, &req);
    }
}
