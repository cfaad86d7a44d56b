//! Histograms with fixed bucket bounds in seconds, as Prometheus exposes them: one counted
//! with atomics (request durations: the hot path only bumps them), one plain (edge series,
//! updated by the store's writer under the graph's lock).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket bounds in seconds, with the `le` label text of each (written once, not per scrape).
#[derive(Debug, PartialEq)]
pub struct Bounds {
    pub seconds: &'static [f64],
    pub le: &'static [&'static str],
}

/// Request durations: 1 ms to 10 s.
pub const DURATION_BOUNDS: &Bounds = &Bounds {
    seconds: &[
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ],
    le: &[
        "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
        "10",
    ],
};

/// Publish-to-consume delays: 1 ms to a minute, in fewer buckets (one histogram per
/// destination).
pub const DELAY_BOUNDS: &Bounds = &Bounds {
    seconds: &[0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0],
    le: &["0.001", "0.01", "0.05", "0.1", "0.5", "1", "5", "10", "60"],
};

/// Tempo's service-graph buckets (its `histogram_buckets` default), so that panels and alerts
/// written for Tempo's series read the same `le` values.
pub const TEMPO_BOUNDS: &Bounds = &Bounds {
    seconds: &[0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8],
    le: &["0.1", "0.2", "0.4", "0.8", "1.6", "3.2", "6.4", "12.8"],
};

/// The index of the first bound at or above `seconds` (`bounds.len()`: the `+Inf` bucket).
fn bucket(bounds: &Bounds, seconds: f64) -> usize {
    bounds
        .seconds
        .iter()
        .position(|b| seconds <= *b)
        .unwrap_or(bounds.seconds.len())
}

/// A histogram as read at one scrape: cumulative counts per bound (`+Inf` last).
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub bounds: &'static Bounds,
    /// Cumulative: `cumulative[i]` counts the samples at or below `bounds[i]`; the last
    /// entry (one past the bounds) is every sample.
    pub cumulative: Vec<u64>,
    pub sum_seconds: f64,
}

impl Snapshot {
    pub fn count(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }
}

/// Counted with atomics: `observe` is three relaxed additions.
#[derive(Debug)]
pub struct AtomicHistogram {
    bounds: &'static Bounds,
    counts: Vec<AtomicU64>,
    sum_nanos: AtomicU64,
}

impl AtomicHistogram {
    pub fn new(bounds: &'static Bounds) -> AtomicHistogram {
        AtomicHistogram {
            bounds,
            counts: (0..=bounds.seconds.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let i = bucket(self.bounds, d.as_secs_f64());
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut total = 0;
        let cumulative = self
            .counts
            .iter()
            .map(|c| {
                total += c.load(Ordering::Relaxed);
                total
            })
            .collect();
        Snapshot {
            bounds: self.bounds,
            cumulative,
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// A plain histogram (per bucket, not cumulative), for series kept under a lock.
#[derive(Clone, Debug)]
pub struct Histogram {
    bounds: &'static Bounds,
    counts: Vec<u64>,
    sum_micros: u64,
}

impl Histogram {
    pub fn new(bounds: &'static Bounds) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.seconds.len() + 1],
            sum_micros: 0,
        }
    }

    /// Adds a latency sketch's samples (each bucket's value, within its 2.5% relative error,
    /// decides its `le`; samples taken back, counted negative, are left out) and their exact
    /// sum.
    pub fn add_sketch(&mut self, sketch: &crate::model::sketch::Sketch, sum_micros: u64) {
        for (micros, count) in sketch.samples() {
            if count > 0 {
                let i = bucket(self.bounds, micros / 1e6);
                if let Some(c) = self.counts.get_mut(i) {
                    *c += count as u64;
                }
            }
        }
        self.sum_micros = self.sum_micros.saturating_add(sum_micros);
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut total = 0;
        Snapshot {
            bounds: self.bounds,
            cumulative: self
                .counts
                .iter()
                .map(|c| {
                    total += c;
                    total
                })
                .collect(),
            sum_seconds: self.sum_micros as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sketch::Sketch;

    #[test]
    fn each_le_label_is_its_bound() {
        for b in [DURATION_BOUNDS, DELAY_BOUNDS, TEMPO_BOUNDS] {
            assert_eq!(b.le.len(), b.seconds.len());
            for (le, s) in b.le.iter().zip(b.seconds) {
                assert_eq!(le.parse::<f64>().unwrap(), *s);
            }
            assert!(b.seconds.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn atomic_histogram_counts_cumulatively() {
        let h = AtomicHistogram::new(DURATION_BOUNDS);
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.cumulative[0], 1);
        assert_eq!(s.cumulative[2], 2);
        assert_eq!(s.cumulative[DURATION_BOUNDS.seconds.len() - 1], 2);
        assert_eq!(s.count(), 3);
        assert!((s.sum_seconds - 60.0035).abs() < 1e-9);
    }

    #[test]
    fn sketches_land_in_their_buckets_and_taken_back_samples_do_not() {
        let mut sk = Sketch::new();
        sk.add(150_000, 1);
        sk.add(150_000, 1);
        sk.add(20_000_000, 1);
        sk.add(5_000_000, -1);
        let mut h = Histogram::new(TEMPO_BOUNDS);
        h.add_sketch(&sk, 20_300_000);
        let s = h.snapshot();
        assert_eq!(s.cumulative[0], 0);
        assert_eq!(s.cumulative[1], 2);
        assert_eq!(s.cumulative[TEMPO_BOUNDS.seconds.len() - 1], 2);
        assert_eq!(s.count(), 3);
        assert!((s.sum_seconds - 20.3).abs() < 1e-9);
    }
}
