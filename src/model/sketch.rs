//! A mergeable latency sketch: logarithmic buckets with signed counts.
//!
//! Relative error is under 2.5% (bucket ratio 1.05). Counts are signed so a sample can be
//! removed exactly (a client call first counted against an external peer and later paired with
//! its server moves to the service edge). Encoded as zigzag varints (LEB128) for storage.

use prost::encoding::{decode_varint, encode_varint};

const GAMMA: f64 = 1.05;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sketch {
    /// (bucket index, count) sorted by index, no zero counts; index 0 holds 0 and 1 µs.
    buckets: Vec<(i32, i64)>,
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
        self.add_bucket(Self::index(micros), weight);
    }

    fn add_bucket(&mut self, index: i32, weight: i64) {
        match self.buckets.binary_search_by_key(&index, |b| b.0) {
            Ok(pos) => {
                self.buckets[pos].1 += weight;
                if self.buckets[pos].1 == 0 {
                    self.buckets.remove(pos);
                }
            }
            Err(pos) => {
                if weight != 0 {
                    self.buckets.insert(pos, (index, weight));
                }
            }
        }
    }

    pub fn merge(&mut self, other: &Sketch) {
        if self.buckets.is_empty() {
            self.buckets.clone_from(&other.buckets);
            return;
        }
        let (a, b) = (&self.buckets, &other.buckets);
        let mut out = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let next = if j == b.len() || (i < a.len() && a[i].0 < b[j].0) {
                i += 1;
                a[i - 1]
            } else if i == a.len() || b[j].0 < a[i].0 {
                j += 1;
                b[j - 1]
            } else {
                i += 1;
                j += 1;
                (a[i - 1].0, a[i - 1].1 + b[j - 1].1)
            };
            if next.1 != 0 {
                out.push(next);
            }
        }
        self.buckets = out;
    }

    /// Each bucket's value (microseconds, within the relative error) and its count.
    pub fn samples(&self) -> impl Iterator<Item = (f64, i64)> + '_ {
        self.buckets.iter().map(|&(i, c)| (Self::value(i), c))
    }

    pub fn count(&self) -> i64 {
        self.buckets.iter().map(|b| b.1).filter(|c| *c > 0).sum()
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
        for &(i, c) in &self.buckets {
            if c <= 0 {
                continue;
            }
            seen += c;
            if seen >= rank {
                return Some(Self::value(i));
            }
        }
        self.buckets.last().map(|&(i, _)| Self::value(i))
    }

    /// The (bucket index, count) pairs, sorted by index, no zero counts: what a store that
    /// merges sketches itself keeps (ClickHouse: two array columns summed with `sumMap`).
    pub fn buckets(&self) -> &[(i32, i64)] {
        &self.buckets
    }

    /// A sketch from (bucket index, count) pairs in any order; counts of one index add up,
    /// and zero sums are left out (as [`Sketch::merge`] does).
    pub fn from_buckets(pairs: impl IntoIterator<Item = (i32, i64)>) -> Sketch {
        let mut sketch = Sketch::new();
        for (index, count) in pairs {
            sketch.add_bucket(index, count);
        }
        sketch
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buckets.len() * 3);
        let mut last = 0i64;
        for &(i, c) in &self.buckets {
            encode_varint(zigzag(i as i64 - last), &mut out);
            encode_varint(zigzag(c), &mut out);
            last = i as i64;
        }
        out
    }

    /// Decodes [`Sketch::encode`] output; a corrupt blob decodes to what could be read.
    pub fn decode(mut bytes: &[u8]) -> Sketch {
        let mut sketch = Sketch::new();
        let mut last = 0i64;
        while !bytes.is_empty() {
            let (Ok(delta), Ok(count)) = (decode_varint(&mut bytes), decode_varint(&mut bytes))
            else {
                break;
            };
            last += unzigzag(delta);
            sketch.add_bucket(last as i32, unzigzag(count));
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
    fn stored_bytes_keep_their_meaning_and_damage_does_not_panic() {
        // Buckets (-5, 1) and (100, 3) as the encoder wrote them before it used prost's
        // varints: zigzag deltas -5 and 105 (two bytes), zigzag counts 1 and 3.
        let stored = [0x09, 0x02, 0xD2, 0x01, 0x06];
        let sketch = Sketch {
            buckets: vec![(-5, 1), (100, 3)],
        };
        assert_eq!(Sketch::decode(&stored), sketch);
        assert_eq!(sketch.encode(), stored);
        let first = Sketch {
            buckets: vec![(-5, 1)],
        };
        assert_eq!(Sketch::decode(&stored[..3]), first);
        assert_eq!(Sketch::decode(&[0xff; 12]), Sketch::new());
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

    #[test]
    fn buckets_summed_in_any_order_give_the_merged_sketch() {
        let mut a = Sketch::new();
        a.add(100, 2);
        a.add(7_000, 1);
        let mut b = Sketch::new();
        b.add(7_000, -1);
        b.add(3, 4);
        let mut merged = a.clone();
        merged.merge(&b);
        // What a store summing the pairs of both answers (unsorted, a zero sum included).
        let pairs = b.buckets().iter().chain(a.buckets()).rev().copied();
        assert_eq!(Sketch::from_buckets(pairs), merged);
        assert_eq!(Sketch::from_buckets(merged.buckets().to_vec()), merged);
        assert!(Sketch::from_buckets([(4, 2), (4, -2)]).is_empty());
    }
}
