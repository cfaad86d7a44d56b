//! Time windows for topology and trace queries.

/// A half-open window `[since, until)` in unix nanoseconds. Invariant: `since <= until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWindow {
    pub since_unix_nanos: u64,
    pub until_unix_nanos: u64,
}

impl TimeWindow {
    pub fn new(since_unix_nanos: u64, until_unix_nanos: u64) -> Option<TimeWindow> {
        (since_unix_nanos <= until_unix_nanos).then_some(TimeWindow {
            since_unix_nanos,
            until_unix_nanos,
        })
    }

    /// The window that ends now and lasts `seconds`.
    pub fn last(now_unix_nanos: u64, seconds: u64) -> TimeWindow {
        TimeWindow {
            since_unix_nanos: now_unix_nanos.saturating_sub(seconds.saturating_mul(1_000_000_000)),
            until_unix_nanos: now_unix_nanos,
        }
    }

    /// Whole minutes touched by the window, as unix minutes `[first, last]`.
    pub fn minutes(&self) -> (i64, i64) {
        let first = (self.since_unix_nanos / 60_000_000_000) as i64;
        let last = (self.until_unix_nanos.saturating_sub(1) / 60_000_000_000) as i64;
        (first, last.max(first))
    }

    pub fn duration_secs(&self) -> f64 {
        (self.until_unix_nanos - self.since_unix_nanos) as f64 / 1e9
    }
}

pub fn now_unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(duration_nanos)
        .unwrap_or(0)
}

/// `d` in nanoseconds, saturating at `u64::MAX` (about 584 years) instead of keeping only the
/// low 64 bits: a longer duration (a retention of centuries, say) then means "forever".
pub fn duration_nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

pub fn unix_minute(unix_nanos: u64) -> i64 {
    (unix_nanos / 60_000_000_000) as i64
}

/// RFC 3339 in UTC, whole seconds unless there is a fraction.
pub fn rfc3339(unix_nanos: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(unix_nanos as i128)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_cover_the_window() {
        let w = TimeWindow::new(60_000_000_000, 180_000_000_000).unwrap();
        assert_eq!(w.minutes(), (1, 2));
        assert!(TimeWindow::new(2, 1).is_none());
        assert_eq!(
            TimeWindow::last(10_000_000_000, 5).since_unix_nanos,
            5_000_000_000
        );
        assert_eq!(TimeWindow::last(10, u64::MAX).since_unix_nanos, 0);
    }

    #[test]
    fn durations_beyond_u64_nanoseconds_saturate() {
        use std::time::Duration;
        assert_eq!(duration_nanos(Duration::from_millis(1500)), 1_500_000_000);
        assert_eq!(duration_nanos(Duration::from_nanos(u64::MAX)), u64::MAX);
        // 600 years: cut to its low 64 bits it would be about 15 years.
        let centuries = Duration::from_secs(600 * 365 * 24 * 3600);
        assert_eq!(duration_nanos(centuries), u64::MAX);
        assert_eq!(duration_nanos(Duration::MAX), u64::MAX);
    }
}
