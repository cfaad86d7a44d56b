//! The router's time: when leases (visibility timeouts) and nack delays run out, when waiting
//! pulls and requests reach their deadline, when a tick has passed. The system clock in
//! production; in tests a manual clock that stands still until told to move, so lease expiry
//! and nack delays are tested without waiting for them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// A clock: the system's ([`Clock::system`], the default) or a manual one ([`Clock::manual`]).
/// Cheap to clone; clones of a manual clock move together.
#[derive(Clone, Default)]
pub struct Clock {
    manual: Option<Arc<Manual>>,
}

/// A manual clock: its start, and how far it was moved since.
struct Manual {
    wall: SystemTime,
    mono: Instant,
    advanced_nanos: AtomicU64,
}

impl Clock {
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that starts now (on a whole millisecond, as leases count) and moves only by
    /// [`Clock::advance`].
    pub fn manual() -> Clock {
        let now = SystemTime::now();
        let since_epoch = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_millis(since_epoch.as_millis() as u64);
        Clock {
            manual: Some(Arc::new(Manual {
                wall,
                mono: Instant::now(),
                advanced_nanos: AtomicU64::new(0),
            })),
        }
    }

    /// Moves a manual clock forward (the system clock moves by itself: no effect).
    pub fn advance(&self, by: Duration) {
        if let Some(m) = &self.manual {
            let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
            m.advanced_nanos.fetch_add(nanos, Ordering::Relaxed);
        }
    }

    /// The wall-clock time (timestamps, lease expiry, nack delays).
    pub fn now(&self) -> SystemTime {
        match &self.manual {
            None => SystemTime::now(),
            Some(m) => m.wall + m.advanced(),
        }
    }

    /// The monotonic time (deadlines of waiting pulls and requests, ticks).
    pub fn instant(&self) -> Instant {
        match &self.manual {
            None => Instant::now(),
            Some(m) => m.mono + m.advanced(),
        }
    }

    /// Time passed since `earlier` (an [`Clock::instant`] of this clock).
    pub fn since(&self, earlier: Instant) -> Duration {
        self.instant().saturating_duration_since(earlier)
    }

    /// Milliseconds since the epoch, the unit of lease expiry and nack delays.
    pub fn unix_ms(&self) -> u64 {
        super::unix_nanos(self.now()) / 1_000_000
    }
}

impl Manual {
    fn advanced(&self) -> Duration {
        Duration::from_nanos(self.advanced_nanos.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_its_clones_move_with_it() {
        let clock = Clock::manual();
        let (wall, mono, ms) = (clock.now(), clock.instant(), clock.unix_ms());
        assert_eq!(clock.now(), wall);
        assert_eq!(clock.instant(), mono);
        clock.clone().advance(Duration::from_millis(1_500));
        assert_eq!(clock.now(), wall + Duration::from_millis(1_500));
        assert_eq!(clock.since(mono), Duration::from_millis(1_500));
        assert_eq!(clock.unix_ms(), ms + 1_500);
    }
}
