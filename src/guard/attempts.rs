//! Failed credentials (a wrong bearer token, a wrong token in the login form), limited per
//! client address and in total, so that the token cannot be guessed at network speed.
//!
//! - A client address (an IPv6 one by its /64, which one host can fill) that failed
//!   [`AttemptLimits::per_client`] times in a window is refused, before its credentials are
//!   even checked, until the window ends: 429 with `Retry-After`.
//! - Past [`AttemptLimits::total`] failures in a window from all addresses together (a
//!   guesser spread over many addresses), credentials are refused the same way, except from
//!   addresses that presented the right token within the last [`TRUSTED_FOR`] (they know it:
//!   nothing is learnt from letting them through, and a flood of wrong guesses does not lock
//!   the real clients out).
//!
//! Memory is fixed: [`SLOTS`] addresses in a table, an address looked up in [`PROBES`] slots
//! of a keyed hash (an attacker cannot aim at a slot); a new address takes an empty or expired
//! slot, else the one whose window started first. Without a failure in the last window, no
//! lock is taken: a server that is not being guessed at pays one atomic load per request.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses tracked at once.
pub const SLOTS: usize = 1024;
/// Slots an address may occupy.
const PROBES: usize = 4;
/// How long an address that presented the right token stays exempt from the total limit.
pub const TRUSTED_FOR: Duration = Duration::from_secs(3600);

/// How many failures are allowed, and over what time.
#[derive(Clone, Copy, Debug)]
pub struct AttemptLimits {
    pub per_client: u32,
    pub total: u32,
    pub window: Duration,
}

impl Default for AttemptLimits {
    fn default() -> AttemptLimits {
        AttemptLimits {
            per_client: 20,
            total: 200,
            window: Duration::from_secs(60),
        }
    }
}

/// One client address: its failures in its current window, and until when it is trusted
/// (times in milliseconds since the table's start).
#[derive(Clone, Copy, Debug)]
struct Slot {
    key: u128,
    window_start: u64,
    failures: u32,
    trusted_until: u64,
}

struct Table {
    slots: Vec<Option<Slot>>,
    total_start: u64,
    total_failures: u32,
}

/// The failure limiter of one server.
pub struct Attempts {
    limits: AttemptLimits,
    started: Instant,
    hasher: RandomState,
    /// When the last failure was recorded (ms since `started`, plus one; 0: never).
    last_failure: AtomicU64,
    table: Mutex<Table>,
}

/// The address a client is counted by: an IPv4 address, or an IPv6 address's /64.
fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(u32::from(v4)),
            None => (u128::from(v6) >> 64 << 64) | 1 << 32,
        },
    }
}

impl Attempts {
    pub fn new(limits: AttemptLimits) -> Attempts {
        Attempts {
            limits,
            started: Instant::now(),
            hasher: RandomState::new(),
            last_failure: AtomicU64::new(0),
            table: Mutex::new(Table {
                slots: vec![None; SLOTS],
                total_start: 0,
                total_failures: 0,
            }),
        }
    }

    fn now_ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.started).as_millis() as u64
    }

    fn window_ms(&self) -> u64 {
        self.limits.window.as_millis().max(1) as u64
    }

    /// Whether no failure was recorded in the last window (nothing to check).
    fn quiet(&self, now: u64) -> bool {
        let last = self.last_failure.load(Ordering::Relaxed);
        last == 0 || now >= last - 1 + self.window_ms()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `client` may present credentials now; else how many seconds until it may.
    pub fn allow(&self, client: Option<IpAddr>, now: Instant) -> Result<(), u64> {
        let now = self.now_ms(now);
        if self.quiet(now) {
            return Ok(());
        }
        let window = self.window_ms();
        let table = self.lock();
        let slot = client.and_then(|ip| table.find(&self.hasher, key(ip)));
        if let Some(s) = slot.filter(|s| now < s.window_start + window) {
            if s.failures >= self.limits.per_client {
                return Err(secs_until(now, s.window_start + window));
            }
        }
        let trusted = slot.is_some_and(|s| now < s.trusted_until);
        let total_end = table.total_start + window;
        if !trusted && now < total_end && table.total_failures >= self.limits.total {
            return Err(secs_until(now, total_end));
        }
        Ok(())
    }

    /// Counts a failure of `client` (and in the total).
    pub fn failed(&self, client: Option<IpAddr>, now: Instant) {
        let now = self.now_ms(now);
        let window = self.window_ms();
        let mut table = self.lock();
        if now >= table.total_start + window {
            table.total_start = now;
            table.total_failures = 0;
        }
        table.total_failures = table.total_failures.saturating_add(1);
        if let Some(ip) = client {
            let slot = table.slot(&self.hasher, key(ip), now, window);
            if now >= slot.window_start + window {
                slot.window_start = now;
                slot.failures = 0;
            }
            slot.failures = slot.failures.saturating_add(1);
        }
        self.last_failure.store(now + 1, Ordering::Relaxed);
    }

    /// Marks `client` as knowing the token (exempt from the total limit for a while). Only
    /// while failures are being counted: otherwise there is nothing to be exempt from.
    pub fn succeeded(&self, client: Option<IpAddr>, now: Instant) {
        let now_ms = self.now_ms(now);
        let Some(ip) = client else { return };
        if self.quiet(now_ms) {
            return;
        }
        let window = self.window_ms();
        let mut table = self.lock();
        let slot = table.slot(&self.hasher, key(ip), now_ms, window);
        slot.trusted_until = now_ms + TRUSTED_FOR.as_millis() as u64;
    }
}

fn secs_until(now_ms: u64, end_ms: u64) -> u64 {
    end_ms.saturating_sub(now_ms).div_ceil(1000).max(1)
}

impl Table {
    fn find(&self, hasher: &RandomState, key: u128) -> Option<Slot> {
        let start = hasher.hash_one(key) as usize;
        (0..PROBES)
            .filter_map(|i| self.slots[(start + i) % SLOTS])
            .find(|s| s.key == key)
    }

    /// The slot of `key`, taking one (empty, expired, or the oldest) if it has none.
    fn slot(&mut self, hasher: &RandomState, key: u128, now: u64, window: u64) -> &mut Slot {
        let start = hasher.hash_one(key) as usize;
        let probes: [usize; PROBES] = std::array::from_fn(|i| (start + i) % SLOTS);
        let free = |s: &Option<Slot>| match s {
            None => true,
            Some(s) => now >= s.window_start + window && now >= s.trusted_until,
        };
        let i = probes
            .iter()
            .copied()
            .find(|&i| self.slots[i].is_some_and(|s| s.key == key))
            .or_else(|| probes.iter().copied().find(|&i| free(&self.slots[i])))
            .or_else(|| {
                probes
                    .iter()
                    .copied()
                    .min_by_key(|&i| self.slots[i].map_or(0, |s| s.window_start))
            })
            .unwrap_or(probes[0]);
        let slot = &mut self.slots[i];
        if !matches!(slot, Some(s) if s.key == key) {
            *slot = None;
        }
        slot.get_or_insert(Slot {
            key,
            window_start: now,
            failures: 0,
            trusted_until: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    const LIMITS: AttemptLimits = AttemptLimits {
        per_client: 3,
        total: 10,
        window: Duration::from_secs(60),
    };

    #[test]
    fn a_client_is_refused_after_its_failures_until_the_window_ends() {
        let a = Attempts::new(LIMITS);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(a.allow(ip("10.0.0.1"), t0), Ok(()));
            a.failed(ip("10.0.0.1"), t0);
        }
        assert_eq!(a.allow(ip("10.0.0.1"), t0), Err(60));
        let later = t0 + Duration::from_secs(45);
        assert_eq!(a.allow(ip("10.0.0.1"), later), Err(15));
        // Another address is not affected, nor is this one once the window is over.
        assert_eq!(a.allow(ip("10.0.0.2"), t0), Ok(()));
        assert_eq!(a.allow(ip("10.0.0.1"), t0 + LIMITS.window), Ok(()));
    }

    #[test]
    fn an_ipv6_host_counts_as_its_64() {
        let a = Attempts::new(LIMITS);
        let t0 = Instant::now();
        for host in ["2001:db8::1", "2001:db8::2", "2001:db8::ffff:3"] {
            a.failed(ip(host), t0);
        }
        assert!(a.allow(ip("2001:db8::9"), t0).is_err());
        assert_eq!(a.allow(ip("2001:db8:0:1::1"), t0), Ok(()));
    }

    #[test]
    fn past_the_total_only_clients_that_know_the_token_get_through() {
        let a = Attempts::new(LIMITS);
        let t0 = Instant::now();
        a.failed(ip("10.9.0.1"), t0);
        a.succeeded(ip("192.168.1.1"), t0);
        for i in 0..10 {
            a.failed(ip(&format!("10.1.0.{i}")), t0);
        }
        assert_eq!(a.allow(ip("10.2.0.1"), t0), Err(60));
        assert_eq!(a.allow(None, t0), Err(60));
        assert_eq!(a.allow(ip("192.168.1.1"), t0), Ok(()));
        assert_eq!(a.allow(ip("10.2.0.1"), t0 + LIMITS.window), Ok(()));
    }

    #[test]
    fn the_table_stays_its_size_under_a_flood_of_addresses() {
        let a = Attempts::new(AttemptLimits {
            total: u32::MAX,
            ..LIMITS
        });
        let t0 = Instant::now();
        for i in 0..(SLOTS as u32 * 8) {
            let addr = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            a.failed(Some(IpAddr::V4(addr)), t0);
        }
        assert_eq!(a.lock().slots.len(), SLOTS);
        // The newest addresses are still counted.
        let last = std::net::Ipv4Addr::from(0x0a00_0000 + SLOTS as u32 * 8 - 1);
        for _ in 0..2 {
            a.failed(Some(IpAddr::V4(last)), t0);
        }
        assert!(a.allow(Some(IpAddr::V4(last)), t0).is_err());
    }

    #[test]
    fn without_failures_nothing_is_locked_or_counted() {
        let a = Attempts::new(LIMITS);
        let t0 = Instant::now();
        a.succeeded(ip("10.0.0.1"), t0);
        assert!(a.lock().slots.iter().all(Option::is_none));
        assert_eq!(a.allow(ip("10.0.0.1"), t0), Ok(()));
    }
}
