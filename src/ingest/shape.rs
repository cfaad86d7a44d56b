//! What a request body will take once decoded, read from its bytes before anything is
//! decoded: one pass over the protobuf wire format (tags and lengths) or the JSON text, with no
//! allocation, so that a body whose decoded form would be far larger than its bytes (thousands
//! of empty spans, empty attributes, deep values) is refused before it is decoded.
//!
//! The estimate is an upper bound of what prost (or serde_json and the JSON mapping) allocates:
//! every element of a repeated field counts twice its struct size (a `Vec` grows by doubling),
//! every string or byte field its length plus an allocation's overhead.

use opentelemetry_proto::tonic::common::v1::{AnyValue, EntityRef, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span};
use std::mem::size_of;

/// Counts and the estimated decoded size of one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    pub spans: u64,
    /// Key-values at every depth (resource, scope, span, event, link, nested values).
    pub attributes: u64,
    pub events: u64,
    pub links: u64,
    pub decoded_bytes: u64,
}

/// Why a body was refused before decoding.
#[derive(Debug, PartialEq, Eq)]
pub enum ShapeError {
    /// Not valid protobuf (the decoder would refuse it too).
    Malformed(String),
    /// Nested deeper than the decoders allow.
    TooDeep,
}

/// The nesting prost allows (its recursion limit), and the scan with it.
pub const MAX_DEPTH: usize = 100;
/// A heap allocation's bookkeeping, added to every string or byte field.
const ALLOC: u64 = 16;

/// The messages of `ExportTraceServiceRequest`, as far as their sizes differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Request,
    ResourceSpans,
    Resource,
    EntityRef,
    ScopeSpans,
    Scope,
    Span,
    Event,
    Link,
    Status,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
    /// A field the schema does not have: skipped by the decoder, nothing allocated.
    Unknown,
}

/// What a length-delimited field of a message is.
enum Field {
    /// A message; `repeated` ones are pushed into a `Vec`.
    Message(Kind, bool),
    /// A string or bytes, copied into its own allocation.
    Bytes,
    /// A field the decoder skips.
    Skipped,
}

#[inline]
fn field(kind: Kind, number: u64) -> Field {
    use Field::{Bytes, Message, Skipped};
    use Kind::*;
    match (kind, number) {
        (Request, 1) => Message(ResourceSpans, true),
        (Kind::ResourceSpans, 1) => Message(Resource, false),
        (Kind::ResourceSpans, 2) => Message(ScopeSpans, true),
        (Kind::ResourceSpans, 3) => Bytes,
        (Resource, 1) => Message(KeyValue, true),
        (Resource, 3) => Message(EntityRef, true),
        (EntityRef, 1..=4) => Bytes,
        (Kind::ScopeSpans, 1) => Message(Scope, false),
        (Kind::ScopeSpans, 2) => Message(Span, true),
        (Kind::ScopeSpans, 3) => Bytes,
        (Scope, 1 | 2) => Bytes,
        (Scope, 3) => Message(KeyValue, true),
        (Span, 1..=5) => Bytes,
        (Span, 9) => Message(KeyValue, true),
        (Span, 11) => Message(Event, true),
        (Span, 13) => Message(Link, true),
        (Span, 15) => Message(Status, false),
        (Event, 2) => Bytes,
        (Event, 3) => Message(KeyValue, true),
        (Link, 1..=3) => Bytes,
        (Link, 4) => Message(KeyValue, true),
        (Status, 2) => Bytes,
        (KeyValue, 1) => Bytes,
        (KeyValue, 2) => Message(AnyValue, false),
        (AnyValue, 1 | 7) => Bytes,
        (AnyValue, 5) => Message(ArrayValue, false),
        (AnyValue, 6) => Message(KeyValueList, false),
        (ArrayValue, 1) => Message(AnyValue, true),
        (KeyValueList, 1) => Message(KeyValue, true),
        _ => Skipped,
    }
}

/// What one element of a repeated field of `kind` costs in its `Vec` (twice its size).
#[inline]
fn element_bytes(kind: Kind) -> u64 {
    let size = match kind {
        Kind::ResourceSpans => size_of::<ResourceSpans>(),
        Kind::EntityRef => size_of::<EntityRef>(),
        Kind::ScopeSpans => size_of::<ScopeSpans>(),
        Kind::Span => size_of::<Span>(),
        Kind::Event => size_of::<span::Event>(),
        Kind::Link => size_of::<span::Link>(),
        Kind::KeyValue => size_of::<KeyValue>(),
        Kind::AnyValue => size_of::<AnyValue>(),
        // Singular messages live inside their parent.
        _ => 0,
    };
    2 * size as u64
}

impl Shape {
    #[inline]
    fn count(&mut self, kind: Kind) {
        match kind {
            Kind::Span => self.spans += 1,
            Kind::KeyValue => self.attributes += 1,
            Kind::Event => self.events += 1,
            Kind::Link => self.links += 1,
            _ => {}
        }
    }
}

/// Reads the shape of a protobuf `ExportTraceServiceRequest` without decoding it.
pub fn protobuf_traces(body: &[u8]) -> Result<Shape, ShapeError> {
    let mut shape = Shape::default();
    scan_message(body, Kind::Request, 0, &mut shape)?;
    Ok(shape)
}

/// Checks the wire format of a message's own fields (tags, lengths), decoding nothing: how
/// metrics and logs, which are not stored, are validated.
pub fn protobuf_wire(body: &[u8]) -> Result<(), ShapeError> {
    scan_message(body, Kind::Unknown, 0, &mut Shape::default())
}

fn malformed(what: &str) -> ShapeError {
    ShapeError::Malformed(format!("invalid protobuf: {what}"))
}

/// A cursor over wire-format bytes.
struct Wire<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Wire<'a> {
    #[inline]
    fn varint(&mut self) -> Result<u64, ShapeError> {
        // Most tags and lengths fit in one byte.
        if let Some(&byte) = self.buf.get(self.at) {
            if byte < 0x80 {
                self.at += 1;
                return Ok(u64::from(byte));
            }
        }
        let mut value = 0u64;
        for i in 0..10 {
            let byte = *self
                .buf
                .get(self.at)
                .ok_or_else(|| malformed("truncated varint"))?;
            self.at += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                if i == 9 && byte > 1 {
                    return Err(malformed("varint overflow"));
                }
                return Ok(value);
            }
        }
        Err(malformed("varint overflow"))
    }

    #[inline]
    fn take(&mut self, n: u64) -> Result<&'a [u8], ShapeError> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.at.checked_add(n))
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| malformed("field runs past the end of its message"))?;
        let out = &self.buf[self.at..end];
        self.at = end;
        Ok(out)
    }

    #[inline]
    fn done(&self) -> bool {
        self.at >= self.buf.len()
    }
}

/// Scans the fields of one message; `depth` is how many messages enclose it.
fn scan_message(buf: &[u8], kind: Kind, depth: usize, shape: &mut Shape) -> Result<(), ShapeError> {
    if depth > MAX_DEPTH {
        return Err(ShapeError::TooDeep);
    }
    let mut wire = Wire { buf, at: 0 };
    while !wire.done() {
        let (number, wire_type) = tag(&mut wire)?;
        skip_or_scan(&mut wire, kind, number, wire_type, depth, shape)?;
    }
    Ok(())
}

#[inline]
fn tag(wire: &mut Wire) -> Result<(u64, u8), ShapeError> {
    let key = wire.varint()?;
    if key > u64::from(u32::MAX) {
        return Err(malformed("invalid key"));
    }
    let number = key >> 3;
    if number == 0 {
        return Err(malformed("invalid tag value: 0"));
    }
    Ok((number, (key & 7) as u8))
}

fn skip_or_scan(
    wire: &mut Wire,
    kind: Kind,
    number: u64,
    wire_type: u8,
    depth: usize,
    shape: &mut Shape,
) -> Result<(), ShapeError> {
    match wire_type {
        0 => wire.varint().map(drop),
        1 => wire.take(8).map(drop),
        5 => wire.take(4).map(drop),
        2 => {
            let len = wire.varint()?;
            let bytes = wire.take(len)?;
            match field(kind, number) {
                Field::Message(child, repeated) => {
                    if repeated {
                        shape.decoded_bytes += element_bytes(child);
                    }
                    shape.count(child);
                    scan_message(bytes, child, depth + 1, shape)
                }
                Field::Bytes => {
                    if len > 0 {
                        shape.decoded_bytes += len + ALLOC;
                    }
                    Ok(())
                }
                Field::Skipped => Ok(()),
            }
        }
        3 => skip_group(wire, number, depth + 1, shape),
        4 => Err(malformed("unexpected end group")),
        _ => Err(malformed("invalid wire type")),
    }
}

/// Skips a (deprecated) group up to its end tag, as the decoder does for unknown fields.
fn skip_group(
    wire: &mut Wire,
    number: u64,
    depth: usize,
    shape: &mut Shape,
) -> Result<(), ShapeError> {
    if depth > MAX_DEPTH {
        return Err(ShapeError::TooDeep);
    }
    loop {
        if wire.done() {
            return Err(malformed("unterminated group"));
        }
        let (inner, wire_type) = tag(wire)?;
        if wire_type == 4 {
            return if inner == number {
                Ok(())
            } else {
                Err(malformed("unexpected end group tag"))
            };
        }
        skip_or_scan(wire, Kind::Unknown, inner, wire_type, depth, shape)?;
    }
}

/// What serde_json's `Value` spends per value (the enum), per object member (key, value and
/// map node share) and per array element (a `Vec` slot, grown by doubling).
const JSON_VALUE: u64 = size_of::<serde_json::Value>() as u64;
const JSON_MEMBER: u64 = 112;
const JSON_ELEMENT: u64 = 2 * JSON_VALUE;
/// The nesting serde_json allows (its recursion limit).
pub const MAX_JSON_DEPTH: usize = 128;

/// What an object becomes in the mapping, by the key of the array holding it.
fn json_element(key: &[u8], escaped: bool) -> Option<Kind> {
    if escaped {
        return None;
    }
    Some(match key {
        b"resourceSpans" | b"resource_spans" => Kind::ResourceSpans,
        b"scopeSpans" | b"scope_spans" | b"instrumentationLibrarySpans" => Kind::ScopeSpans,
        b"spans" => Kind::Span,
        b"events" => Kind::Event,
        b"links" => Kind::Link,
        b"attributes" | b"values" => Kind::KeyValue,
        b"entityRefs" | b"entity_refs" => Kind::EntityRef,
        _ => return None,
    })
}

#[derive(Clone, Copy)]
enum Container {
    /// An object; `key` is whether a member's key is expected next.
    Object { key: bool },
    /// An array, with what its object elements become.
    Array { element: Option<Kind> },
}

/// Reads the shape of an OTLP/JSON body without parsing it: the `serde_json::Value` tree it
/// becomes, plus the OTLP messages the mapping builds from it. Objects in an array under an
/// unknown or escaped key are counted as spans' size (the largest message), so that no key
/// spelling makes a body look smaller than it decodes. Malformed JSON is left to the parser.
pub fn json_traces(body: &[u8]) -> Result<Shape, ShapeError> {
    let mut shape = Shape::default();
    let mut stack: Vec<Container> = Vec::new();
    // The last key read, as a range of `body`, and whether it had escapes.
    let mut last_key = (0usize, 0usize, false);
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => {
                let start = i + 1;
                let (end, escaped) = json_string_end(body, start);
                shape.decoded_bytes += (end - start) as u64 + ALLOC;
                if let Some(Container::Object { key: key @ true }) = stack.last_mut() {
                    *key = false;
                    last_key = (start, end, escaped);
                }
                i = end + 1;
                continue;
            }
            b'{' | b'[' => {
                if stack.len() >= MAX_JSON_DEPTH {
                    return Err(ShapeError::TooDeep);
                }
                shape.decoded_bytes += JSON_VALUE;
                let parent = stack.last().copied();
                if let Some(Container::Array { element }) = parent {
                    shape.decoded_bytes += JSON_ELEMENT;
                    if body[i] == b'{' {
                        let kind = element.unwrap_or(Kind::Span);
                        shape.decoded_bytes += element_bytes(kind);
                        if element.is_some() {
                            shape.count(kind);
                        }
                    }
                }
                stack.push(if body[i] == b'{' {
                    Container::Object { key: true }
                } else {
                    let (s, e, escaped) = last_key;
                    let element = match parent {
                        Some(Container::Object { .. }) => json_element(&body[s..e], escaped),
                        // Arrays in arrays map to nothing the mapping knows.
                        _ => None,
                    };
                    Container::Array { element }
                });
            }
            b'}' | b']' => {
                stack.pop();
            }
            b':' => shape.decoded_bytes += JSON_MEMBER,
            b',' => match stack.last_mut() {
                Some(Container::Object { key }) => *key = true,
                Some(Container::Array { .. }) => shape.decoded_bytes += JSON_ELEMENT,
                None => {}
            },
            _ => {}
        }
        i += 1;
    }
    Ok(shape)
}

/// The index of the quote closing a string that starts at `start`, and whether it has
/// escapes; the body's length when it is not closed.
fn json_string_end(body: &[u8], start: usize) -> (usize, bool) {
    let mut escaped = false;
    let mut i = start;
    while i < body.len() {
        match memchr::memchr2(b'"', b'\\', &body[i..]) {
            Some(off) if body[i + off] == b'\\' => {
                escaped = true;
                i += off + 2;
            }
            Some(off) => return (i + off, escaped),
            None => break,
        }
    }
    (body.len(), escaped)
}

#[cfg(test)]
#[path = "shape_tests.rs"]
mod tests;
