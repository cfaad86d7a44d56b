//! Rate-limited error logs: a failure that repeats (a full disk fails every write, every
//! retention pass and every checkpoint) writes at most one line per key per interval, and the
//! next line it writes says how many were suppressed meanwhile. A full disk once wrote 5,500
//! lines in 45 s; with a limiter each failing path writes about one a minute.
//!
//! Usage: `if let Some(suppressed) = lograte::ERRORS.allow("store.write") { tracing::error!(
//! error = %e, suppressed, "...") }`. Keys are `&'static str`, so the table is bounded by the
//! number of call sites.
//!
//! Invariants: the first occurrence of a key is always allowed; after an allowed line, the
//! key is allowed again once `interval` has passed since it; the count returned with an
//! allowed line is exactly the number of refused calls of that key since the previous
//! allowed one.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The limiter of the error paths of the store, the broker and the receivers.
pub static ERRORS: LogLimiter = LogLimiter::new(Duration::from_secs(60));

#[derive(Debug)]
struct Entry {
    last: Instant,
    suppressed: u64,
}

/// At most one log line per key per interval (see the module doc).
#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    // A std Mutex: held for one map lookup, never across an await or any IO.
    keys: Mutex<BTreeMap<&'static str, Entry>>,
}

impl LogLimiter {
    pub const fn new(interval: Duration) -> LogLimiter {
        LogLimiter {
            interval,
            keys: Mutex::new(BTreeMap::new()),
        }
    }

    /// `Some(suppressed)` when a line for `key` may be written now (with the number of lines
    /// suppressed since the last one), `None` when it should be dropped.
    pub fn allow(&self, key: &'static str) -> Option<u64> {
        self.allow_at(key, Instant::now())
    }

    /// [`LogLimiter::allow`] at the time `now` (the clock is injected for tests).
    pub fn allow_at(&self, key: &'static str, now: Instant) -> Option<u64> {
        let Ok(mut keys) = self.keys.lock() else {
            // A poisoned table: logging every line is better than logging none.
            return Some(0);
        };
        match keys.get_mut(key) {
            None => {
                keys.insert(
                    key,
                    Entry {
                        last: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
            Some(e) if now.saturating_duration_since(e.last) >= self.interval => {
                let suppressed = std::mem::take(&mut e.suppressed);
                e.last = now;
                Some(suppressed)
            }
            Some(e) => {
                e.suppressed += 1;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_key_per_interval_with_the_count_of_suppressed_ones() {
        let limiter = LogLimiter::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(limiter.allow_at("disk", at(0)), Some(0));
        // 5,500 failures within the minute: all suppressed.
        for i in 0..5_500u64 {
            assert_eq!(limiter.allow_at("disk", at(i % 59 + 1)), None);
        }
        // Another key is independent.
        assert_eq!(limiter.allow_at("other", at(30)), Some(0));
        assert_eq!(limiter.allow_at("other", at(31)), None);
        // The interval has passed: one line, which counts the suppressed ones.
        assert_eq!(limiter.allow_at("disk", at(60)), Some(5_500));
        assert_eq!(limiter.allow_at("disk", at(61)), None);
        assert_eq!(limiter.allow_at("disk", at(119)), None);
        assert_eq!(limiter.allow_at("disk", at(120)), Some(2));
        // A quiet key logs again at once, with nothing suppressed.
        assert_eq!(limiter.allow_at("disk", at(1_000)), Some(0));
        assert_eq!(limiter.allow_at("other", at(1_000)), Some(1));
    }

    #[test]
    fn a_clock_going_backwards_suppresses_without_panicking() {
        let limiter = LogLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now() + Duration::from_secs(100);
        assert_eq!(limiter.allow_at("k", t0), Some(0));
        assert_eq!(limiter.allow_at("k", t0 - Duration::from_secs(50)), None);
        assert_eq!(limiter.allow_at("k", t0 + Duration::from_secs(10)), Some(1));
    }
}
