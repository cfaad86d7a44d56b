//! What one round of `bench brokers` measures: a window of messages in flight shared by
//! publishers and consumers, latencies from the publish time each payload carries, and the
//! pooling of a broker's rounds into one cell of the table.

use crate::bench::percentile;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::Semaphore;

/// One cell's result.
#[derive(Clone, Copy, Default)]
pub(super) struct Cell {
    pub(super) rate: f64,
    pub(super) p50_micros: u64,
    pub(super) p99_micros: u64,
    pub(super) mean_in_flight: f64,
}

/// How long a round waits, after its measured part, for the messages still in flight.
const DRAIN_AT_MOST: Duration = Duration::from_secs(2);

/// The window, counters and samples one round shares between publishers and consumers.
pub(super) struct Meter {
    pub(super) window: Semaphore,
    published: AtomicU64,
    delivered: AtomicU64,
    /// Set when the measured part ends: publishers stop.
    closing: AtomicBool,
    /// Set once the messages in flight were delivered (or the drain gave up): consumers stop.
    pub(super) stop: AtomicBool,
    /// Messages published before this time (µs since the epoch) warm the round up: their
    /// latencies are not kept. Set when the round starts.
    measure_from: AtomicU64,
    latencies: Mutex<Vec<u64>>,
}

/// What a round's measured window saw.
pub(super) struct Window {
    elapsed: f64,
    mean_in_flight: f64,
    delivered: u64,
}

impl Meter {
    pub(super) fn new(n: usize) -> Arc<Meter> {
        Arc::new(Meter {
            window: Semaphore::new(n),
            published: AtomicU64::default(),
            delivered: AtomicU64::default(),
            closing: AtomicBool::default(),
            stop: AtomicBool::default(),
            measure_from: AtomicU64::new(u64::MAX),
            latencies: Mutex::default(),
        })
    }

    /// Waits for room in the window; false once the round's measured part is over.
    pub(super) async fn enter(&self) -> bool {
        loop {
            if self.closing.load(Ordering::Relaxed) {
                return false;
            }
            let permit = tokio::time::timeout(Duration::from_millis(50), self.window.acquire());
            if let Ok(Ok(p)) = permit.await {
                p.forget();
                self.published.fetch_add(1, Ordering::Relaxed);
                return true;
            }
        }
    }

    pub(super) fn delivered(&self, payload: &[u8]) {
        let t = payload
            .get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
            .unwrap_or(0);
        if t >= self.measure_from.load(Ordering::Relaxed) {
            let micros = now_micros().saturating_sub(t);
            self.latencies.lock().unwrap().push(micros);
        }
        self.delivered.fetch_add(1, Ordering::Relaxed);
        self.window.add_permits(1);
    }

    /// Runs the round: `warm_up` unmeasured (connections, a new queue), then `duration`
    /// measured, sampling the number in flight; then stops the publishers and waits (at most
    /// [`DRAIN_AT_MOST`]) for the messages in flight, whose latencies count: the slowest
    /// messages are the likeliest to be in flight at the end, and dropping them would flatter
    /// the p99 of every round. Deliveries count toward the rate only up to the end of the
    /// measured part.
    pub(super) async fn run_for(&self, warm_up: Duration, duration: Duration) -> Window {
        let warm_up_micros = u64::try_from(warm_up.as_micros()).unwrap_or(u64::MAX);
        self.measure_from.store(
            now_micros().saturating_add(warm_up_micros),
            Ordering::Relaxed,
        );
        tokio::time::sleep(warm_up).await;
        let before = self.delivered.load(Ordering::Relaxed);
        let started = tokio::time::Instant::now();
        let (mut sum, mut samples) = (0u64, 0u64);
        while started.elapsed() < duration {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let p = self.published.load(Ordering::Relaxed);
            sum += p.saturating_sub(self.delivered.load(Ordering::Relaxed));
            samples += 1;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let delivered = self.delivered.load(Ordering::Relaxed) - before;
        self.closing.store(true, Ordering::Relaxed);
        let draining = tokio::time::Instant::now();
        while self.published.load(Ordering::Relaxed) > self.delivered.load(Ordering::Relaxed)
            && draining.elapsed() < DRAIN_AT_MOST
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.stop.store(true, Ordering::Relaxed);
        Window {
            elapsed,
            mean_in_flight: sum as f64 / samples.max(1) as f64,
            delivered,
        }
    }

    pub(super) fn sample(&self, w: Window) -> Sample {
        Sample {
            latencies: std::mem::take(&mut *self.latencies.lock().unwrap()),
            delivered: w.delivered,
            elapsed: w.elapsed,
            in_flight_seconds: w.mean_in_flight * w.elapsed,
        }
    }
}

/// What one round of a broker measured; a broker's rounds of a cell add up.
#[derive(Default)]
pub(super) struct Sample {
    latencies: Vec<u64>,
    delivered: u64,
    elapsed: f64,
    /// The mean number in flight times the time it was measured over.
    in_flight_seconds: f64,
}

impl Sample {
    pub(super) fn add(&mut self, round: Sample) {
        self.latencies.extend(round.latencies);
        self.delivered += round.delivered;
        self.elapsed += round.elapsed;
        self.in_flight_seconds += round.in_flight_seconds;
    }

    pub(super) fn cell(mut self) -> Cell {
        self.latencies.sort_unstable();
        let elapsed = self.elapsed.max(f64::MIN_POSITIVE);
        Cell {
            rate: self.delivered as f64 / elapsed,
            p50_micros: percentile(&self.latencies, 0.5),
            p99_micros: percentile(&self.latencies, 0.99),
            mean_in_flight: self.in_flight_seconds / elapsed,
        }
    }
}

pub(super) fn now_micros() -> u64 {
    crate::broker::unix_nanos(SystemTime::now()) / 1_000
}

/// A message of `size` bytes whose first 8 are its publish time.
pub(super) fn payload(size: usize) -> Vec<u8> {
    let mut p = now_micros().to_le_bytes().to_vec();
    p.resize(size.max(8), b'x');
    p
}

pub(super) fn concurrency(n: usize) -> (usize, usize) {
    (n.min(100), n.min(4))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(latencies: &[u64], delivered: u64, elapsed: f64, mean: f64) -> Sample {
        Sample {
            latencies: latencies.to_vec(),
            delivered,
            elapsed,
            in_flight_seconds: mean * elapsed,
        }
    }

    #[test]
    fn rounds_pool_their_samples_rates_and_time_in_flight() {
        let mut total = Sample::default();
        // A quiet round and a noisy one: the pooled percentiles see both.
        total.add(round(&[100; 98], 1000, 1.0, 1.0));
        total.add(round(&[100, 100, 5000, 9000], 4000, 3.0, 3.0));
        let c = total.cell();
        // Deliveries over time, not the mean of the rounds' rates (1333).
        assert_eq!(c.rate, 1250.0);
        assert_eq!(c.p50_micros, 100);
        // 102 samples: the 99th percentile is the 101st smallest.
        assert_eq!(c.p99_micros, 5000);
        // Mean in flight weighted by time: (1 * 1 + 3 * 3) / 4.
        assert_eq!(c.mean_in_flight, 2.5);
    }

    #[test]
    fn messages_published_while_a_round_warms_up_are_delivered_but_not_measured() {
        let m = Meter::new(10);
        m.measure_from
            .store(now_micros() - 1_000, Ordering::Relaxed);
        let warming = now_micros() - 2_000;
        m.delivered(&warming.to_le_bytes());
        m.delivered(&now_micros().to_le_bytes());
        assert_eq!(m.latencies.lock().unwrap().len(), 1);
        assert_eq!(m.delivered.load(Ordering::Relaxed), 2);
        // Both gave their place in the window back.
        assert_eq!(m.window.available_permits(), 12);
    }

    /// Paused time: the timers fire in order, however slow the machine.
    fn paused_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
    }

    /// The round's start of measurement, once `run_for` has set it.
    async fn measure_from(m: &Meter) -> u64 {
        loop {
            match m.measure_from.load(Ordering::Relaxed) {
                u64::MAX => tokio::task::yield_now().await,
                from => return from,
            }
        }
    }

    #[test]
    fn a_round_counts_deliveries_and_keeps_latencies_only_after_its_warm_up() {
        let rt = paused_runtime();
        let m = Meter::new(10);
        let feeder = m.clone();
        let (window, m) = rt.block_on(async move {
            let feed = tokio::spawn(async move {
                let from = measure_from(&feeder).await;
                // Published in the warm-up and delivered in it.
                feeder.delivered(&(from - 1).to_le_bytes());
                // Published after the warm-up, delivered in the measured part.
                tokio::time::sleep(Duration::from_millis(500)).await;
                feeder.delivered(&from.to_le_bytes());
            });
            let window = m
                .run_for(Duration::from_millis(400), Duration::from_millis(1200))
                .await;
            feed.await.unwrap();
            (window, m)
        });
        assert_eq!(window.delivered, 1);
        assert_eq!(m.latencies.lock().unwrap().len(), 1);
        assert_eq!(m.delivered.load(Ordering::Relaxed), 2);
        assert!(m.closing.load(Ordering::Relaxed) && m.stop.load(Ordering::Relaxed));
    }

    #[test]
    fn a_round_waits_for_the_messages_in_flight_and_keeps_their_latencies() {
        let rt = paused_runtime();
        let m = Meter::new(10);
        let late = m.clone();
        let (window, m) = rt.block_on(async move {
            // One message published in the measured part and delivered 300 ms after its end.
            assert!(late.enter().await);
            let feed = tokio::spawn(async move {
                let from = measure_from(&late).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
                assert!(!late.stop.load(Ordering::Relaxed));
                late.delivered(&from.to_le_bytes());
            });
            let window = m
                .run_for(Duration::from_millis(100), Duration::from_millis(100))
                .await;
            feed.await.unwrap();
            (window, m)
        });
        // Not in the rate (delivered after the measured part), but its latency is kept.
        assert_eq!(window.delivered, 0);
        assert_eq!(m.latencies.lock().unwrap().len(), 1);
        assert!(m.stop.load(Ordering::Relaxed));
    }

    #[test]
    fn a_cell_with_no_rounds_is_empty_not_a_division_by_zero() {
        let c = Sample::default().cell();
        assert_eq!((c.rate, c.p99_micros, c.mean_in_flight), (0.0, 0, 0.0));
    }
}
