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
    /// Not valid protobuf (the decoder would refuse it too): what is wrong with it.
    Malformed(&'static str),
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
    scan(body, Kind::Request, &mut shape)?;
    Ok(shape)
}

/// Checks the wire format of a message's own fields (tags, lengths), decoding nothing: how
/// metrics and logs, which are not stored, are validated.
pub fn protobuf_wire(body: &[u8]) -> Result<(), ShapeError> {
    scan(body, Kind::Unknown, &mut Shape::default())
}

/// Reads a varint at `*at` of `buf`.
#[inline(always)]
fn varint(buf: &[u8], at: &mut usize) -> Result<u64, ShapeError> {
    // Tags, and lengths under 128, take one byte; most others two.
    match buf.get(*at..*at + 2) {
        Some(&[b0, _]) if b0 < 0x80 => {
            *at += 1;
            Ok(u64::from(b0))
        }
        Some(&[b0, b1]) if b1 < 0x80 => {
            *at += 2;
            Ok(u64::from(b0 & 0x7f) | (u64::from(b1) << 7))
        }
        _ => varint_slow(buf, at),
    }
}

#[inline(never)]
fn varint_slow(buf: &[u8], at: &mut usize) -> Result<u64, ShapeError> {
    let mut value = 0u64;
    for i in 0..10 {
        let byte = *buf
            .get(*at)
            .ok_or(ShapeError::Malformed("truncated varint"))?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            if i == 9 && byte > 1 {
                return Err(ShapeError::Malformed("varint overflow"));
            }
            return Ok(value);
        }
    }
    Err(ShapeError::Malformed("varint overflow"))
}

/// The end of a field of `n` bytes starting at `at`, within `buf`.
#[inline(always)]
fn field_end(buf: &[u8], at: usize, n: u64) -> Result<usize, ShapeError> {
    usize::try_from(n)
        .ok()
        .and_then(|n| at.checked_add(n))
        .filter(|&end| end <= buf.len())
        .ok_or(ShapeError::Malformed(
            "field runs past the end of its message",
        ))
}

#[inline(always)]
fn tag(buf: &[u8], at: &mut usize) -> Result<(u64, u8), ShapeError> {
    let key = varint(buf, at)?;
    if key > u64::from(u32::MAX) {
        return Err(ShapeError::Malformed("invalid key"));
    }
    let number = key >> 3;
    if number == 0 {
        return Err(ShapeError::Malformed("invalid tag value: 0"));
    }
    Ok((number, (key & 7) as u8))
}

/// Scans a message of `kind` and every message in it, in one loop: a message field's bytes
/// are entered in place (its end and the enclosing kind kept on a stack as deep as the
/// decoder's recursion limit), so nothing is called per message and nothing is allocated.
fn scan(body: &[u8], kind: Kind, shape: &mut Shape) -> Result<(), ShapeError> {
    // The enclosing messages of the current one: where each ends, and its kind.
    let mut stack = [(0usize, Kind::Unknown); MAX_DEPTH];
    let mut depth = 0;
    // The current message is `buf[at..]`: `buf` ends where it does.
    let mut buf = body;
    let mut kind = kind;
    let mut at = 0;
    loop {
        if at >= buf.len() {
            if depth == 0 {
                return Ok(());
            }
            depth -= 1;
            let (end, parent) = stack[depth];
            buf = &body[..end];
            kind = parent;
            continue;
        }
        let (number, wire_type) = tag(buf, &mut at)?;
        match wire_type {
            2 => {
                let len = varint(buf, &mut at)?;
                let end = field_end(buf, at, len)?;
                match field(kind, number) {
                    Field::Message(child, repeated) => {
                        if repeated {
                            shape.decoded_bytes += element_bytes(child);
                        }
                        shape.count(child);
                        if depth == MAX_DEPTH {
                            return Err(ShapeError::TooDeep);
                        }
                        stack[depth] = (buf.len(), kind);
                        depth += 1;
                        buf = &body[..end];
                        kind = child;
                    }
                    Field::Bytes => {
                        if len > 0 {
                            shape.decoded_bytes += len + ALLOC;
                        }
                        at = end;
                    }
                    Field::Skipped => at = end,
                }
            }
            0 => {
                varint(buf, &mut at)?;
            }
            1 => at = field_end(buf, at, 8)?,
            5 => at = field_end(buf, at, 4)?,
            3 => skip_group(buf, &mut at, number, depth + 1)?,
            4 => return Err(ShapeError::Malformed("unexpected end group")),
            _ => return Err(ShapeError::Malformed("invalid wire type")),
        }
    }
}

/// Skips a (deprecated) group up to its end tag, as the decoder does for unknown fields
/// (nothing in a group is decoded, so only groups in it are entered).
fn skip_group(buf: &[u8], at: &mut usize, number: u64, depth: usize) -> Result<(), ShapeError> {
    if depth > MAX_DEPTH {
        return Err(ShapeError::TooDeep);
    }
    loop {
        if *at >= buf.len() {
            return Err(ShapeError::Malformed("unterminated group"));
        }
        let (inner, wire_type) = tag(buf, at)?;
        match wire_type {
            0 => drop(varint(buf, at)?),
            1 => *at = field_end(buf, *at, 8)?,
            5 => *at = field_end(buf, *at, 4)?,
            2 => {
                let len = varint(buf, at)?;
                *at = field_end(buf, *at, len)?;
            }
            3 => skip_group(buf, at, inner, depth + 1)?,
            4 if inner == number => return Ok(()),
            4 => return Err(ShapeError::Malformed("unexpected end group tag")),
            _ => return Err(ShapeError::Malformed("invalid wire type")),
        }
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
