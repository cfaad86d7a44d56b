//! Waiting for a quiet machine before each cell of `bench brokers` (`--settle`).

use std::time::Duration;

/// Busy share of all CPUs under which the machine counts as quiet (see `--settle`).
const QUIET: f64 = 0.10;
/// The window over which it is measured.
const QUIET_WINDOW: Duration = Duration::from_millis(250);

/// Busy and total time of all CPUs together, from the first line of /proc/stat (user, nice,
/// system, idle, iowait, irq, softirq, steal; idle and iowait are not busy).
fn cpu_times(stat: &str) -> Option<(u64, u64)> {
    let fields = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = fields
        .split_whitespace()
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let total: u64 = v.iter().sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle, total))
}

/// The busy share between two readings of [`cpu_times`]; `None` if no time passed.
fn busy_share(before: (u64, u64), after: (u64, u64)) -> Option<f64> {
    let total = after.1.checked_sub(before.1).filter(|&t| t > 0)?;
    let busy = after.0.saturating_sub(before.0);
    Some(busy as f64 / total as f64)
}

/// Waits until the CPUs are quiet over one window, at most `limit`; how long it took, or
/// `None` if they never were (or /proc/stat cannot be read).
pub(super) async fn settle(limit: Duration) -> Option<Duration> {
    let started = tokio::time::Instant::now();
    let read = || {
        std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| cpu_times(&s))
    };
    let mut before = read()?;
    while started.elapsed() < limit {
        tokio::time::sleep(QUIET_WINDOW).await;
        let after = read()?;
        if busy_share(before, after).is_some_and(|b| b < QUIET) {
            return Some(started.elapsed());
        }
        before = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpus_busy_share_comes_from_proc_stat_without_idle_and_iowait() {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let before = cpu_times("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n").unwrap();
        assert_eq!(before, (150, 1000));
        let after = cpu_times("cpu  130 0 60 1550 60 0 0 0 0 0\n").unwrap();
        assert_eq!(after, (190, 1800));
        let share = busy_share(before, after).unwrap();
        assert!((share - 0.05).abs() < 1e-9, "{share}");
        assert_eq!(busy_share(after, after), None);
        assert_eq!(cpu_times("intr 1 2 3\n"), None);
        assert_eq!(cpu_times("cpu  1 2 x 4 5 6 7 8\n"), None);
    }
}
