//! A mergeable latency sketch: logarithmic buckets with signed counts.
//!
//! Relative error is under 2.5% (bucket ratio 1.05). Counts are signed so a sample can be
//! removed exactly (a client call first counted against an external peer and later paired with
//! its server moves to the service edge). Encoded as zigzag varints for storage.

use std::collections::BTreeMap;

const GAMMA: f64 = 1.05;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sketch {
    /// bucket index -> count; index 0 holds values of 0 and 1 microseconds.
    buckets: BTreeMap<i32, i64>,
}

impl Sketch {
    pub fn new() -> Sketch {
        Sketch::default()
    }

    fn index(micros: u64) -> i32 {
        if micros <= 1 {
            0
        } else {
            ((micros as f64).ln() / GAMMA.ln()).ceil() as i32
        }
    }

    /// The value a bucket stands for (its upper bound, within the relative error).
    fn value(index: i32) -> f64 {
        if index <= 0 {
            return if index == 0 { 1.0 } else { 0.0 };
        }
        GAMMA.powi(index) * 2.0 / (1.0 + GAMMA)
    }

    pub fn add(&mut self, micros: u64, weight: i64) {
        let entry = self.buckets.entry(Self::index(micros)).or_insert(0);
        *entry += weight;
        if *entry == 0 {
            self.buckets.remove(&Self::index(micros));
        }
    }

    pub fn merge(&mut self, other: &Sketch) {
        for (&i, &c) in &other.buckets {
            let entry = self.buckets.entry(i).or_insert(0);
            *entry += c;
            if *entry == 0 {
                self.buckets.remove(&i);
            }
        }
    }

    pub fn count(&self) -> i64 {
        self.buckets.values().filter(|c| **c > 0).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// The value at quantile `q` (0..=1) in microseconds, or `None` with no samples.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total <= 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as i64).max(1);
        let mut seen = 0;
        for (&i, &c) in &self.buckets {
            if c <= 0 {
                continue;
            }
            seen += c;
            if seen >= rank {
                return Some(Self::value(i));
            }
        }
        self.buckets.keys().next_back().map(|&i| Self::value(i))
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buckets.len() * 3);
        let mut last = 0i64;
        for (&i, &c) in &self.buckets {
            put_varint(&mut out, zigzag(i as i64 - last));
            put_varint(&mut out, zigzag(c));
            last = i as i64;
        }
        out
    }

    /// Decodes [`Sketch::encode`] output; a corrupt blob decodes to what could be read.
    pub fn decode(mut bytes: &[u8]) -> Sketch {
        let mut sketch = Sketch::new();
        let mut last = 0i64;
        while !bytes.is_empty() {
            let (Some(delta), Some(count)) = (get_varint(&mut bytes), get_varint(&mut bytes))
            else {
                break;
            };
            last += unzigzag(delta);
            sketch.buckets.insert(last as i32, unzigzag(count));
        }
        sketch
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_the_relative_error() {
        let mut s = Sketch::new();
        for v in 1..=10_000u64 {
            s.add(v, 1);
        }
        for (q, want) in [(0.5, 5_000.0), (0.9, 9_000.0), (0.99, 9_900.0)] {
            let got = s.quantile(q).unwrap();
            assert!((got - want).abs() / want < 0.05, "q{q}: {got} vs {want}");
        }
    }

    #[test]
    fn removal_and_merge_are_exact_and_encoding_round_trips() {
        let mut a = Sketch::new();
        a.add(100, 1);
        a.add(5_000, 2);
        let mut b = Sketch::new();
        b.add(5_000, -1);
        b.add(0, 1);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(Sketch::decode(&a.encode()), a);
        a.add(100, -1);
        a.add(5_000, -1);
        a.add(0, -1);
        assert!(a.is_empty());
        assert_eq!(Sketch::new().quantile(0.5), None);
    }
}
