//! Input limits on what a span may carry, applied once at ingest (`ingest::convert`).
//!
//! - Names (service, namespace, instance, operation, scope, messaging system, destination,
//!   consumer group, message and conversation ids, peer, event names and attribute keys):
//!   at most [`MAX_NAME_CHARS`] characters. A 100 KB service name once made its node page fail
//!   and `/api/topology` weigh 22 MB, and a name over 16,384 characters broke Graphviz for the
//!   whole window.
//! - Attribute values (every string inside them, nested ones too) and the status message: at
//!   most [`MAX_VALUE_BYTES`] bytes.
//!
//! A cut text ends with [`MARK`] (within the limit) and is cut on a character boundary, so it
//! stays valid UTF-8. Each cut is counted ([`Truncated`]; `/api/stats` shows the totals).

use super::{AttrValue, Attributes, Span};

/// Longest name, in characters (Unicode scalar values).
pub const MAX_NAME_CHARS: usize = 256;
/// Longest attribute value string, in bytes of UTF-8.
pub const MAX_VALUE_BYTES: usize = 4096;
/// What a cut text ends with.
pub const MARK: char = '…';

/// How many names and values were cut.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Truncated {
    pub names: u64,
    pub values: u64,
}

impl std::ops::AddAssign for Truncated {
    fn add_assign(&mut self, o: Truncated) {
        self.names += o.names;
        self.values += o.values;
    }
}

/// Cuts `s` to at most `max` characters (the last one [`MARK`]); true if it was cut.
pub fn cut_chars(s: &mut String, max: usize) -> bool {
    // At most `max` bytes is at most `max` characters: the common case costs no scan.
    if s.len() <= max {
        return false;
    }
    match s.char_indices().nth(max.saturating_sub(1)) {
        // Exactly `max` characters or fewer.
        Some((i, c)) if i + c.len_utf8() == s.len() => false,
        None => false,
        Some((i, _)) => {
            s.truncate(i);
            s.push(MARK);
            true
        }
    }
}

/// Cuts `s` to at most `max` bytes (ending with [`MARK`]) on a character boundary; true if
/// it was cut.
pub fn cut_bytes(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut end = max.saturating_sub(MARK.len_utf8());
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push(MARK);
    true
}

fn name(s: &mut String, t: &mut Truncated) {
    if cut_chars(s, MAX_NAME_CHARS) {
        t.names += 1;
    }
}

fn opt_name(s: &mut Option<String>, t: &mut Truncated) {
    if let Some(s) = s {
        name(s, t);
    }
}

fn value(v: &mut AttrValue, t: &mut Truncated) {
    match v {
        AttrValue::String(s) => t.values += cut_bytes(s, MAX_VALUE_BYTES) as u64,
        AttrValue::Array(items) => items.iter_mut().for_each(|i| value(i, t)),
        AttrValue::Object(map) => {
            // Keys of a map value are names; renaming them means rebuilding the map.
            if map.keys().any(|k| k.len() > MAX_NAME_CHARS) {
                let old = std::mem::take(map);
                for (mut k, v) in old {
                    name(&mut k, t);
                    map.insert(k, v);
                }
            }
            map.values_mut().for_each(|i| value(i, t));
        }
        _ => {}
    }
}

/// Cuts the keys and values of an attribute list to their limits.
pub fn limit_attributes(attrs: &mut Attributes) -> Truncated {
    let mut t = Truncated::default();
    for (k, v) in attrs.iter_mut() {
        name(k, &mut t);
        value(v, &mut t);
    }
    t
}

/// Cuts every name and value of a span to its limits, except the resource attributes (shared
/// by the spans of a resource: cut them once with [`limit_attributes`]).
pub fn limit_span(span: &mut Span) -> Truncated {
    let mut t = Truncated::default();
    name(&mut span.service.name, &mut t);
    opt_name(&mut span.service.namespace, &mut t);
    opt_name(&mut span.service.instance, &mut t);
    name(&mut span.name, &mut t);
    name(&mut span.scope, &mut t);
    opt_name(&mut span.peer, &mut t);
    if cut_bytes(&mut span.status_message, MAX_VALUE_BYTES) {
        t.values += 1;
    }
    if let Some(m) = &mut span.messaging {
        name(&mut m.system, &mut t);
        name(&mut m.destination, &mut t);
        opt_name(&mut m.consumer_group, &mut t);
        opt_name(&mut m.message_id, &mut t);
        opt_name(&mut m.conversation_id, &mut t);
    }
    t += limit_attributes(&mut span.attributes);
    for e in &mut span.events {
        name(&mut e.name, &mut t);
        t += limit_attributes(&mut e.attributes);
    }
    for l in &mut span.links {
        t += limit_attributes(&mut l.attributes);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cut_at_a_character_count_on_a_character_boundary() {
        let mut short = "é".repeat(MAX_NAME_CHARS);
        assert!(
            !cut_chars(&mut short, MAX_NAME_CHARS),
            "exactly the limit stays"
        );
        assert_eq!(short.chars().count(), MAX_NAME_CHARS);
        let mut long = "é".repeat(100_000);
        assert!(cut_chars(&mut long, MAX_NAME_CHARS));
        assert_eq!(long.chars().count(), MAX_NAME_CHARS);
        assert!(long.ends_with(MARK));
        assert!(long.starts_with("éé"));
        let mut ascii = "x".repeat(MAX_NAME_CHARS + 1);
        assert!(cut_chars(&mut ascii, MAX_NAME_CHARS));
        assert_eq!(ascii.chars().count(), MAX_NAME_CHARS);
    }

    #[test]
    fn values_are_cut_at_a_byte_count_on_a_character_boundary() {
        for filler in ["a", "é", "€", "😀"] {
            let mut v = filler.repeat(MAX_VALUE_BYTES + 1);
            assert!(cut_bytes(&mut v, MAX_VALUE_BYTES), "{filler}");
            assert!(v.len() <= MAX_VALUE_BYTES, "{filler}: {}", v.len());
            assert!(v.len() > MAX_VALUE_BYTES - 8, "{filler}: {}", v.len());
            assert!(v.ends_with(MARK));
        }
        let mut fits = "€".repeat(MAX_VALUE_BYTES / 3);
        assert!(!cut_bytes(&mut fits, MAX_VALUE_BYTES));
    }

    #[test]
    fn a_span_has_every_name_and_nested_value_cut_and_counted() {
        let huge = "n".repeat(100_000);
        let mut span =
            super::super::testing::span(1, 1, None, &huge, super::super::SpanKind::Client);
        span.name = huge.clone();
        span.peer = Some(huge.clone());
        span.attributes = vec![
            (huge.clone(), AttrValue::String(huge.clone())),
            (
                "nested".into(),
                serde_json::json!({ huge.clone(): [huge.clone(), 1] }),
            ),
            ("small".into(), AttrValue::String("ok".into())),
        ];
        let t = limit_span(&mut span);
        assert_eq!(
            t,
            Truncated {
                names: 5,
                values: 2
            }
        );
        assert_eq!(span.service.name.chars().count(), MAX_NAME_CHARS);
        assert_eq!(span.name.chars().count(), MAX_NAME_CHARS);
        assert!(span.attributes[0].0.chars().count() == MAX_NAME_CHARS);
        assert!(serde_json::to_string(&span.attributes[1].1).unwrap().len() < 5_000);
        assert_eq!(span.attributes[2].1, AttrValue::String("ok".into()));
        // Within the limits, nothing changes.
        let before = span.clone();
        assert_eq!(limit_span(&mut span), Truncated::default());
        assert_eq!(span, before);
    }
}
