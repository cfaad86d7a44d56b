//! The OTLP/JSON mapping, decoded into opentelemetry-proto's generated types.
//!
//! Follows the OTLP specification: ids are hex strings (not base64), enums are integers (names
//! are accepted too), field names are lowerCamelCase (the proto names are accepted too),
//! 64-bit integers come as strings or numbers, unknown fields are ignored. A value of the
//! wrong type is an error naming its path: a 200 that silently drops data is worse than a 400.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use serde_json::{Map, Value};

type Result<T> = std::result::Result<T, String>;

pub fn decode_traces(body: &[u8]) -> Result<ExportTraceServiceRequest> {
    let root: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let root = object(&root, "$")?;
    let resource_spans = list(root, &["resourceSpans", "resource_spans"], "$")?
        .iter()
        .enumerate()
        .map(|(i, v)| resource_spans(v, &format!("resourceSpans[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    Ok(ExportTraceServiceRequest { resource_spans })
}

/// Checks that a metrics or logs body is a JSON object (their content is not stored yet).
pub fn check_object(body: &[u8]) -> Result<()> {
    let root: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    object(&root, "$").map(|_| ())
}

fn resource_spans(v: &Value, path: &str) -> Result<ResourceSpans> {
    let o = object(v, path)?;
    let resource = match field(o, &["resource"]) {
        Some(r) => {
            let ro = object(r, &format!("{path}.resource"))?;
            Some(Resource {
                attributes: attributes(ro, &format!("{path}.resource"))?,
                dropped_attributes_count: uint32(
                    ro,
                    &["droppedAttributesCount", "dropped_attributes_count"],
                    &format!("{path}.resource"),
                )?,
                entity_refs: Vec::new(),
            })
        }
        None => None,
    };
    let scope_keys = ["scopeSpans", "scope_spans", "instrumentationLibrarySpans"];
    let scope_spans = list(o, &scope_keys, path)?
        .iter()
        .enumerate()
        .map(|(i, v)| scope_spans(v, &format!("{path}.scopeSpans[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    Ok(ResourceSpans {
        resource,
        scope_spans,
        schema_url: string(o, &["schemaUrl", "schema_url"], path)?,
    })
}

fn scope_spans(v: &Value, path: &str) -> Result<ScopeSpans> {
    let o = object(v, path)?;
    let scope = match field(o, &["scope", "instrumentationLibrary"]) {
        Some(s) => {
            let so = object(s, &format!("{path}.scope"))?;
            Some(InstrumentationScope {
                name: string(so, &["name"], path)?,
                version: string(so, &["version"], path)?,
                attributes: attributes(so, path)?,
                dropped_attributes_count: 0,
            })
        }
        None => None,
    };
    let spans = list(o, &["spans"], path)?
        .iter()
        .enumerate()
        .map(|(i, v)| span(v, &format!("{path}.spans[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    Ok(ScopeSpans {
        scope,
        spans,
        schema_url: string(o, &["schemaUrl", "schema_url"], path)?,
    })
}

fn span(v: &Value, path: &str) -> Result<Span> {
    let o = object(v, path)?;
    let events = list(o, &["events"], path)?
        .iter()
        .enumerate()
        .map(|(i, v)| event(v, &format!("{path}.events[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    let links = list(o, &["links"], path)?
        .iter()
        .enumerate()
        .map(|(i, v)| link(v, &format!("{path}.links[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    let status = match field(o, &["status"]) {
        Some(s) => {
            let so = object(s, &format!("{path}.status"))?;
            Some(Status {
                message: string(so, &["message"], path)?,
                code: enumeration(so, &["code"], STATUS_CODES, &format!("{path}.status"))?,
            })
        }
        None => None,
    };
    Ok(Span {
        trace_id: hex_id(o, &["traceId", "trace_id"], path)?,
        span_id: hex_id(o, &["spanId", "span_id"], path)?,
        trace_state: string(o, &["traceState", "trace_state"], path)?,
        parent_span_id: hex_id(o, &["parentSpanId", "parent_span_id"], path)?,
        flags: uint32(o, &["flags"], path)?,
        name: string(o, &["name"], path)?,
        kind: enumeration(o, &["kind"], SPAN_KINDS, path)?,
        start_time_unix_nano: uint(o, &["startTimeUnixNano", "start_time_unix_nano"], path)?,
        end_time_unix_nano: uint(o, &["endTimeUnixNano", "end_time_unix_nano"], path)?,
        attributes: attributes(o, path)?,
        dropped_attributes_count: uint32(
            o,
            &["droppedAttributesCount", "dropped_attributes_count"],
            path,
        )?,
        events,
        dropped_events_count: uint32(o, &["droppedEventsCount", "dropped_events_count"], path)?,
        links,
        dropped_links_count: uint32(o, &["droppedLinksCount", "dropped_links_count"], path)?,
        status,
    })
}

fn event(v: &Value, path: &str) -> Result<span::Event> {
    let o = object(v, path)?;
    Ok(span::Event {
        time_unix_nano: uint(o, &["timeUnixNano", "time_unix_nano"], path)?,
        name: string(o, &["name"], path)?,
        attributes: attributes(o, path)?,
        dropped_attributes_count: 0,
    })
}

fn link(v: &Value, path: &str) -> Result<span::Link> {
    let o = object(v, path)?;
    Ok(span::Link {
        trace_id: hex_id(o, &["traceId", "trace_id"], path)?,
        span_id: hex_id(o, &["spanId", "span_id"], path)?,
        trace_state: string(o, &["traceState", "trace_state"], path)?,
        attributes: attributes(o, path)?,
        dropped_attributes_count: 0,
        flags: uint32(o, &["flags"], path)?,
    })
}

fn attributes(o: &Map<String, Value>, path: &str) -> Result<Vec<KeyValue>> {
    list(o, &["attributes"], path)?
        .iter()
        .enumerate()
        .map(|(i, v)| key_value(v, &format!("{path}.attributes[{i}]")))
        .collect()
}

fn key_value(v: &Value, path: &str) -> Result<KeyValue> {
    let o = object(v, path)?;
    let value = match field(o, &["value"]) {
        Some(v) => Some(any_value(v, &format!("{path}.value"))?),
        None => None,
    };
    Ok(KeyValue {
        key: string(o, &["key"], path)?,
        value,
        ..Default::default()
    })
}

fn any_value(v: &Value, path: &str) -> Result<AnyValue> {
    let o = object(v, path)?;
    let value = if let Some(x) = field(o, &["stringValue", "string_value"]) {
        any_value::Value::StringValue(as_str(x, &format!("{path}.stringValue"))?.to_string())
    } else if let Some(x) = field(o, &["boolValue", "bool_value"]) {
        any_value::Value::BoolValue(
            x.as_bool()
                .ok_or_else(|| format!("{path}.boolValue is not a boolean"))?,
        )
    } else if let Some(x) = field(o, &["intValue", "int_value"]) {
        any_value::Value::IntValue(int64(x, &format!("{path}.intValue"))?)
    } else if let Some(x) = field(o, &["doubleValue", "double_value"]) {
        any_value::Value::DoubleValue(double(x, &format!("{path}.doubleValue"))?)
    } else if let Some(x) = field(o, &["bytesValue", "bytes_value"]) {
        any_value::Value::BytesValue(base64(as_str(x, path)?, path)?)
    } else if let Some(x) = field(o, &["arrayValue", "array_value"]) {
        let values = list(object(x, path)?, &["values"], path)?
            .iter()
            .enumerate()
            .map(|(i, v)| any_value(v, &format!("{path}.arrayValue.values[{i}]")))
            .collect::<Result<Vec<_>>>()?;
        any_value::Value::ArrayValue(ArrayValue { values })
    } else if let Some(x) = field(o, &["kvlistValue", "kvlist_value"]) {
        let values = list(object(x, path)?, &["values"], path)?
            .iter()
            .enumerate()
            .map(|(i, v)| key_value(v, &format!("{path}.kvlistValue.values[{i}]")))
            .collect::<Result<Vec<_>>>()?;
        any_value::Value::KvlistValue(KeyValueList { values })
    } else {
        // An empty AnyValue is valid OTLP (an unset value); unknown fields are ignored.
        return Ok(AnyValue { value: None });
    };
    Ok(AnyValue { value: Some(value) })
}

const SPAN_KINDS: &[&str] = &[
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];
const STATUS_CODES: &[&str] = &["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

fn field<'a>(o: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().find_map(|k| o.get(*k)).filter(|v| !v.is_null())
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| format!("{path} must be an object"))
}

fn list<'a>(o: &'a Map<String, Value>, keys: &[&str], path: &str) -> Result<&'a [Value]> {
    match field(o, keys) {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(format!("{path}.{} must be an array", keys[0])),
    }
}

fn as_str<'a>(v: &'a Value, path: &str) -> Result<&'a str> {
    v.as_str().ok_or_else(|| format!("{path} must be a string"))
}

fn string(o: &Map<String, Value>, keys: &[&str], path: &str) -> Result<String> {
    match field(o, keys) {
        None => Ok(String::new()),
        Some(v) => Ok(as_str(v, &format!("{path}.{}", keys[0]))?.to_string()),
    }
}

fn hex_id(o: &Map<String, Value>, keys: &[&str], path: &str) -> Result<Vec<u8>> {
    let text = string(o, keys, path)?;
    hex::decode(&text).map_err(|_| format!("{path}.{} is not a hex string: {text:?}", keys[0]))
}

fn uint(o: &Map<String, Value>, keys: &[&str], path: &str) -> Result<u64> {
    let Some(v) = field(o, keys) else {
        return Ok(0);
    };
    let p = format!("{path}.{}", keys[0]);
    match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 1.8e19)
                    .map(|f| f as u64)
            })
            .ok_or_else(|| format!("{p} must be a non-negative integer")),
        Value::String(s) => s
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("{p} must be a non-negative integer, got {s:?}")),
        _ => Err(format!("{p} must be an integer or a string")),
    }
}

/// A `uint32` field: a larger value is an error, not cut to its low 32 bits.
fn uint32(o: &Map<String, Value>, keys: &[&str], path: &str) -> Result<u32> {
    let n = uint(o, keys, path)?;
    u32::try_from(n).map_err(|_| format!("{path}.{} must fit in 32 bits, got {n}", keys[0]))
}

fn int64(v: &Value, path: &str) -> Result<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                    .map(|f| f as i64)
            })
            .ok_or_else(|| format!("{path} must be an integer")),
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("{path} must be an integer, got {s:?}")),
        _ => Err(format!("{path} must be an integer or a string")),
    }
}

fn double(v: &Value, path: &str) -> Result<f64> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| format!("{path} must be a number")),
        Value::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other => other
                .parse::<f64>()
                .map_err(|_| format!("{path} must be a number, got {other:?}")),
        },
        _ => Err(format!("{path} must be a number")),
    }
}

/// An enum field: one of `names` (its position is the number) or an `int32`; a number out of
/// that range is an error, not cut to its low 32 bits.
fn enumeration(o: &Map<String, Value>, keys: &[&str], names: &[&str], path: &str) -> Result<i32> {
    let p = format!("{path}.{}", keys[0]);
    let n = match field(o, keys) {
        None => return Ok(0),
        Some(Value::String(s)) if names.contains(&s.as_str()) => {
            names.iter().position(|n| n == s).unwrap_or(0) as i64
        }
        Some(v) => int64(v, &p)?,
    };
    i32::try_from(n).map_err(|_| format!("{p} must fit in 32 bits, got {n}"))
}

fn base64(text: &str, path: &str) -> Result<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text.trim()))
        .map_err(|_| format!("{path}.bytesValue is not base64"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_spec_example_shapes() {
        let body = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"orders"}}]},
          "scopeSpans":[{"scope":{"name":"pika"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c",
          "spanId":"eee19b7ec3c1b174","parentSpanId":"","name":"orders send","kind":4,
          "startTimeUnixNano":"1544712660000000000","endTimeUnixNano":1544712661000000000,
          "attributes":[{"key":"n","value":{"aUnknownField":1,"intValue":"42"}},{"key":"m","value":{"intValue":7}},
          {"key":"d","value":{"doubleValue":"NaN"}},{"key":"b","value":{"bytesValue":"AQI="}}],
          "status":{"code":"STATUS_CODE_ERROR"},"unknownField":{"x":1}}]}]}]}"#;
        let req = decode_traces(body).unwrap();
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.trace_id.len(), 16);
        assert!(span.parent_span_id.is_empty());
        assert_eq!(span.kind, 4);
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
        assert_eq!(span.status.as_ref().unwrap().code, 2);
        let ints: Vec<_> = span
            .attributes
            .iter()
            .take(2)
            .map(|kv| kv.value.clone().unwrap().value.unwrap())
            .collect();
        assert_eq!(
            ints,
            vec![
                any_value::Value::IntValue(42),
                any_value::Value::IntValue(7)
            ]
        );
        assert_eq!(
            span.attributes[3].value.clone().unwrap().value.unwrap(),
            any_value::Value::BytesValue(vec![1, 2])
        );
    }

    #[test]
    fn wrong_types_are_errors_with_a_path() {
        let err =
            decode_traces(br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}"#)
                .unwrap_err();
        assert!(
            err.contains("resourceSpans[0].scopeSpans[0].spans[0].traceId"),
            "{err}"
        );
        let err = decode_traces(br#"{"resourceSpans":{}}"#).unwrap_err();
        assert!(err.contains("must be an array"), "{err}");
        assert!(decode_traces(b"{not json")
            .unwrap_err()
            .starts_with("invalid JSON"));
        let err = decode_traces(
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"soon"}]}]}]}"#,
        )
        .unwrap_err();
        assert!(err.contains("startTimeUnixNano"), "{err}");
    }

    fn one_span(fields: &str) -> Result<ExportTraceServiceRequest> {
        decode_traces(
            format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{{fields}}}]}}]}}]}}"#)
                .as_bytes(),
        )
    }

    #[test]
    fn numbers_beyond_32_bits_are_errors_not_cut() {
        let path = "resourceSpans[0].scopeSpans[0].spans[0]";
        for (fields, name) in [
            (
                r#""droppedAttributesCount":1099511627776"#,
                "droppedAttributesCount",
            ),
            (r#""droppedEventsCount":"4294967296""#, "droppedEventsCount"),
            (r#""droppedLinksCount":4294967296"#, "droppedLinksCount"),
            (r#""flags":"8589934592""#, "flags"),
            (r#""kind":8589934592"#, "kind"),
            (r#""kind":"-2147483649""#, "kind"),
            (r#""status":{"code":4294967298}"#, "status.code"),
            (r#""links":[{"flags":4294967296}]"#, "links[0].flags"),
        ] {
            let err = one_span(fields).unwrap_err();
            assert!(
                err.contains(&format!("{path}.{name} must fit in 32 bits")),
                "{fields}: {err}"
            );
        }
        let err = decode_traces(
            br#"{"resourceSpans":[{"resource":{"droppedAttributesCount":1099511627776}}]}"#,
        )
        .unwrap_err();
        assert!(
            err.contains("resourceSpans[0].resource.droppedAttributesCount must fit in 32 bits"),
            "{err}"
        );
        let edge = one_span(r#""droppedAttributesCount":4294967295,"kind":-2147483648"#).unwrap();
        let span = &edge.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(
            (span.dropped_attributes_count, span.kind),
            (u32::MAX, i32::MIN)
        );
    }
}
