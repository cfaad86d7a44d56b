//! The search index of each span block (schema v2), written with the block in the same
//! transaction and deleted with it (a trigger on `blocks`).
//!
//! `block_postings (block_id, term, entries)`: per search term, the traces of the block that
//! carry a span matching it. Terms: `''` (the block's trace table: every trace), `s:<service>`,
//! `d:<destination>`, `o:<operation>` (span name), `e` (spans with status error) and
//! `e:<service>` (the service's spans with status error).
//!
//! Blobs (varints are LEB128; starts are nanoseconds after the block's `min_start`):
//! - trace table: per trace, in first-seen order, `trace_id[16] | varint first | varint last - first`
//!   (the earliest and latest span start of the trace in the block); a trace's position is
//!   its index.
//! - term: per matching trace, ascending index, `varint index delta | varint first |
//!   varint last - first` (the earliest and latest start of the spans matching the term).
//!
//! `block_blooms (block_id, bloom)`: a Bloom filter of attribute `key=value` pairs (string,
//! number and boolean values up to [`MAX_VALUE_BYTES`], compared as text as search does);
//! a key with a value it cannot hold (array, map, longer text) adds an "unindexed key"
//! entry instead, so a search for that key decodes the block. Operations beyond
//! [`MAX_OPERATIONS`] per block (or longer than [`MAX_VALUE_BYTES`]) go to the filter too,
//! with the `OPERATIONS_OVERFLOW` flag set. Hashes are our own (`hash_parts`): stable across
//! builds, so files stay readable.

use crate::model::{AttrValue, Attributes, Span, StatusCode, TraceId};
use foldhash::HashMap;
use prost::encoding::{decode_varint, encode_varint};

/// Longest attribute value or operation name indexed (longer ones are "unindexed").
pub const MAX_VALUE_BYTES: usize = 256;
/// Distinct operations with their own postings per block; more go to the Bloom filter.
pub const MAX_OPERATIONS: usize = 256;
/// Bloom filter flag: some operations of the block are in the filter, not in postings.
pub const OPERATIONS_OVERFLOW: u8 = 1;
/// About one false positive in 2,000 lookups.
const BLOOM_HASHES: u32 = 10;
const BLOOM_BITS_PER_ENTRY: usize = 16;

/// A stable 64-bit hash of the parts, eight bytes at a time; each part's length ends it, so
/// ("ab", "c") and ("a", "bc") differ. Murmur3's finaliser spreads the bits.
fn hash_parts(parts: &[&[u8]]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h: u64 = 0x243F_6A88_85A3_08D3;
    for part in parts {
        let mut chunks = part.chunks_exact(8);
        for c in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(c);
            h = (h ^ u64::from_le_bytes(word))
                .wrapping_mul(K)
                .rotate_left(29);
        }
        let rest = chunks.remainder();
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        let tail = u64::from_le_bytes(last) ^ ((part.len() as u64) << 56);
        h = (h ^ tail).wrapping_mul(K).rotate_left(29);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The filter entry of an attribute `key` with the value `value` (as search compares it).
pub fn attribute_hash(key: &str, value: &str) -> u64 {
    hash_parts(&[b"a", key.as_bytes(), value.as_bytes()])
}

/// The filter entry of a key that has a value the filter does not hold.
pub fn unindexed_key_hash(key: &str) -> u64 {
    hash_parts(&[b"u", key.as_bytes()])
}

/// The filter entry of an operation without postings of its own.
pub fn operation_hash(name: &str) -> u64 {
    hash_parts(&[b"o", name.as_bytes()])
}

/// Filter entries of a span's attributes (computed off the writer thread).
pub fn attribute_hashes(attrs: &Attributes) -> Vec<u64> {
    attrs
        .iter()
        .map(|(k, v)| {
            let text = match v {
                AttrValue::String(s) => Some(std::borrow::Cow::Borrowed(s.as_str())),
                AttrValue::Number(_) | AttrValue::Bool(_) | AttrValue::Null => {
                    Some(std::borrow::Cow::Owned(v.to_string()))
                }
                _ => None,
            };
            match text.filter(|t| t.len() <= MAX_VALUE_BYTES) {
                Some(t) => attribute_hash(k, &t),
                None => unindexed_key_hash(k),
            }
        })
        .collect()
}

/// The varint at `b[*at..]`, moving `at` past it; `None` when it is truncated or too long.
fn read_varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut rest = b.get(*at..)?;
    let v = decode_varint(&mut rest).ok()?;
    *at = b.len() - rest.len();
    Some(v)
}

/// Earliest and latest start of a trace's spans matching one term in one block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub first: u64,
    pub last: u64,
}

impl Extent {
    fn widen(&mut self, start: u64) {
        self.first = self.first.min(start);
        self.last = self.last.max(start);
    }
}

/// What one block's spans add to the index, gathered as the block is built.
#[derive(Default)]
pub struct Collector {
    index: HashMap<TraceId, u32>,
    traces: Vec<(TraceId, Extent)>,
    services: HashMap<String, Vec<(u32, u64)>>,
    destinations: HashMap<String, Vec<(u32, u64)>>,
    operations: HashMap<String, Vec<(u32, u64)>>,
    errors: Vec<(u32, u64)>,
    service_errors: HashMap<String, Vec<(u32, u64)>>,
    filter: Vec<u64>,
    overflow: bool,
}

fn note(map: &mut HashMap<String, Vec<(u32, u64)>>, term: &str, idx: u32, start: u64) {
    match map.get_mut(term) {
        Some(list) => list.push((idx, start)),
        None => {
            map.insert(term.to_string(), vec![(idx, start)]);
        }
    }
}

impl Collector {
    pub fn push(&mut self, s: &Span, attribute_hashes: &[u64]) {
        let start = s.start_unix_nanos;
        let next = self.traces.len() as u32;
        let idx = *self.index.entry(s.trace_id).or_insert(next);
        if idx == next {
            self.traces.push((
                s.trace_id,
                Extent {
                    first: start,
                    last: start,
                },
            ));
        } else {
            self.traces[idx as usize].1.widen(start);
        }
        note(&mut self.services, &s.service.name, idx, start);
        if let Some(m) = &s.messaging {
            note(&mut self.destinations, &m.destination, idx, start);
        }
        let fits = s.name.len() <= MAX_VALUE_BYTES
            && (self.operations.len() < MAX_OPERATIONS
                || self.operations.contains_key(s.name.as_str()));
        if fits {
            note(&mut self.operations, &s.name, idx, start);
        } else {
            self.overflow = true;
            self.filter.push(operation_hash(&s.name));
        }
        if s.status == StatusCode::Error {
            self.errors.push((idx, start));
            note(&mut self.service_errors, &s.service.name, idx, start);
        }
        self.filter.extend_from_slice(attribute_hashes);
    }

    /// The rows of the block's index, sorted by term, and the Bloom filter.
    pub fn finish(&mut self, min_start: u64) -> (Vec<(String, Vec<u8>)>, Vec<u8>) {
        let mut rows = Vec::with_capacity(
            2 + self.services.len() + self.destinations.len() + self.operations.len(),
        );
        let mut table = Vec::with_capacity(self.traces.len() * 20);
        for (id, e) in &self.traces {
            table.extend_from_slice(id.as_bytes());
            encode_varint(e.first - min_start, &mut table);
            encode_varint(e.last - e.first, &mut table);
        }
        rows.push((String::new(), table));
        let groups = [
            ("s:", std::mem::take(&mut self.services)),
            ("d:", std::mem::take(&mut self.destinations)),
            ("o:", std::mem::take(&mut self.operations)),
            ("e:", std::mem::take(&mut self.service_errors)),
        ];
        for (prefix, map) in groups {
            for (name, list) in map {
                rows.push((format!("{prefix}{name}"), encode_list(list, min_start)));
            }
        }
        if !self.errors.is_empty() {
            rows.push((
                "e".to_string(),
                encode_list(std::mem::take(&mut self.errors), min_start),
            ));
        }
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let flags = if self.overflow {
            OPERATIONS_OVERFLOW
        } else {
            0
        };
        (rows, bloom(&mut self.filter, flags))
    }
}

/// A term's entries: ascending trace index, each with the extent of its matching spans.
fn encode_list(mut list: Vec<(u32, u64)>, min_start: u64) -> Vec<u8> {
    list.sort_unstable();
    let mut out = Vec::with_capacity(list.len() * 5);
    let mut i = 0;
    let mut prev: u32 = 0;
    while i < list.len() {
        let (idx, first) = list[i];
        let mut last = first;
        while i < list.len() && list[i].0 == idx {
            last = list[i].1;
            i += 1;
        }
        encode_varint((idx - prev) as u64, &mut out);
        encode_varint(first - min_start, &mut out);
        encode_varint(last - first, &mut out);
        prev = idx;
    }
    out
}

/// Decodes a term's entries: (trace index, extent). Stops at damage.
pub fn decode_list(b: &[u8], min_start: u64) -> Vec<(u32, Extent)> {
    let mut out = Vec::new();
    let (mut at, mut idx) = (0usize, 0u64);
    while at < b.len() {
        let (Some(d), Some(first), Some(span)) = (
            read_varint(b, &mut at),
            read_varint(b, &mut at),
            read_varint(b, &mut at),
        ) else {
            break;
        };
        idx += d;
        let first = min_start.saturating_add(first);
        out.push((
            idx as u32,
            Extent {
                first,
                last: first.saturating_add(span),
            },
        ));
    }
    out
}

/// Decodes a block's trace table: (trace id, extent of all its spans in the block).
pub fn decode_table(b: &[u8], min_start: u64) -> Vec<(TraceId, Extent)> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 16 <= b.len() {
        let Ok(id) = TraceId::from_bytes(&b[at..at + 16]) else {
            break;
        };
        at += 16;
        let (Some(first), Some(span)) = (read_varint(b, &mut at), read_varint(b, &mut at)) else {
            break;
        };
        let first = min_start.saturating_add(first);
        out.push((
            id,
            Extent {
                first,
                last: first.saturating_add(span),
            },
        ));
    }
    out
}

/// The trace indexes present in every list (lists ascending by index).
pub fn intersect(lists: &[Vec<(u32, Extent)>]) -> Vec<u32> {
    let Some((head, rest)) = lists.split_first() else {
        return Vec::new();
    };
    head.iter()
        .map(|(i, _)| *i)
        .filter(|i| {
            rest.iter()
                .all(|l| l.binary_search_by_key(i, |(j, _)| *j).is_ok())
        })
        .collect()
}

/// Builds a Bloom filter: `flags | log2(bits) | bits`.
fn bloom(hashes: &mut Vec<u64>, flags: u8) -> Vec<u8> {
    hashes.sort_unstable();
    hashes.dedup();
    let bits = (hashes.len() * BLOOM_BITS_PER_ENTRY)
        .max(64)
        .next_power_of_two();
    let mut out = vec![0u8; 2 + bits / 8];
    out[0] = flags;
    out[1] = bits.trailing_zeros() as u8;
    for &h in hashes.iter() {
        for bit in probes(h, bits) {
            out[2 + bit / 8] |= 1 << (bit % 8);
        }
    }
    out
}

fn probes(h: u64, bits: usize) -> impl Iterator<Item = usize> {
    let (a, b) = (h as u32, ((h >> 32) as u32) | 1);
    let mask = bits - 1;
    (0..BLOOM_HASHES).map(move |i| (a.wrapping_add(i.wrapping_mul(b)) as usize) & mask)
}

/// A block's Bloom filter, as read.
pub struct Bloom<'a>(&'a [u8]);

impl<'a> Bloom<'a> {
    /// `None` for a damaged filter (the caller then decodes the block).
    pub fn new(b: &'a [u8]) -> Option<Bloom<'a>> {
        let log = *b.get(1)? as usize;
        (log < 40 && b.len() == 2 + (1usize << log) / 8).then_some(Bloom(b))
    }

    pub fn flags(&self) -> u8 {
        self.0[0]
    }

    pub fn may_contain(&self, h: u64) -> bool {
        let bits = 1usize << self.0[1];
        probes(h, bits).all(|bit| self.0[2 + bit / 8] & (1 << (bit % 8)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_round_trip_with_extents() {
        let list = vec![(3, 150), (0, 120), (3, 110), (7, 100), (0, 100)];
        let decoded = decode_list(&encode_list(list, 100), 100);
        let ext = |first, last| Extent { first, last };
        assert_eq!(
            decoded,
            vec![(0, ext(100, 120)), (3, ext(110, 150)), (7, ext(100, 100))]
        );
        let other = vec![(3, ext(0, 0)), (9, ext(0, 0))];
        assert_eq!(intersect(&[decoded, other]), vec![3]);
    }

    #[test]
    fn stored_lists_keep_their_meaning_and_damage_stops_decoding() {
        // A list as the encoder wrote it before it used prost's varints (LEB128): indexes 0
        // and 200, firsts 300 and 1000 (two bytes each), extents 120 and 0.
        let stored = [0x00, 0xAC, 0x02, 0x78, 0xC8, 0x01, 0xE8, 0x07, 0x00];
        assert_eq!(
            encode_list(vec![(0, 300), (200, 1000), (0, 420)], 0),
            stored
        );
        let ext = |first, last| Extent { first, last };
        assert_eq!(
            decode_list(&stored, 0),
            vec![(0, ext(300, 420)), (200, ext(1000, 1000))]
        );
        assert_eq!(decode_list(&stored[..8], 0), vec![(0, ext(300, 420))]);
        assert!(decode_list(&[0xff; 11], 0).is_empty());
        let mut table = vec![7; 16];
        table.push(0x80);
        assert!(decode_table(&table, 0).is_empty());
    }

    #[test]
    fn bloom_holds_what_was_added() {
        let mut hashes: Vec<u64> = (0..500)
            .map(|i| attribute_hash("k", &i.to_string()))
            .collect();
        let blob = bloom(&mut hashes, OPERATIONS_OVERFLOW);
        let b = Bloom::new(&blob).unwrap();
        assert_eq!(b.flags(), OPERATIONS_OVERFLOW);
        assert!((0..500).all(|i| b.may_contain(attribute_hash("k", &i.to_string()))));
        let false_hits = (500..10_500)
            .filter(|i| b.may_contain(attribute_hash("k", &i.to_string())))
            .count();
        assert!(false_hits < 30, "{false_hits} false positives in 10,000");
        assert!(Bloom::new(&blob[..blob.len() - 1]).is_none());
    }

    #[test]
    fn attribute_values_hash_as_search_compares_them() {
        let attrs: Attributes = vec![
            ("s".into(), AttrValue::String("x".into())),
            ("n".into(), serde_json::json!(3)),
            ("b".into(), serde_json::json!(true)),
            ("list".into(), serde_json::json!([1, 2])),
            (
                "long".into(),
                AttrValue::String("y".repeat(MAX_VALUE_BYTES + 1)),
            ),
        ];
        assert_eq!(
            attribute_hashes(&attrs),
            vec![
                attribute_hash("s", "x"),
                attribute_hash("n", "3"),
                attribute_hash("b", "true"),
                unindexed_key_hash("list"),
                unindexed_key_hash("long"),
            ]
        );
        // Parts are separated: ("ab", "c") is not ("a", "bc").
        assert_ne!(attribute_hash("ab", "c"), attribute_hash("a", "bc"));
    }
}
