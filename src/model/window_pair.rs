//! Two windows to compare: a newer one read like any window, and a base window that defaults
//! to the period of the same length just before it.

use super::window::parse_window;
use super::TimeWindow;

/// The far ends a lone bound is read against (2554 is past u64 nanoseconds).
const EPOCH: &str = "1970-01-01T00:00:00Z";
const FAR: &str = "2500-01-01T00:00:00Z";

/// `[base_since, base_until]` and `[since, until]` as typed (empty means absent). The newer
/// window is read as [`parse_window`] reads one (the hour that ends `now` by default); the
/// base window defaults to the same length just before it, and either base bound alone keeps
/// that length. Errors name the parameter (`base_since must be ...`).
pub fn parse(
    base: [Option<&str>; 2],
    new: [Option<&str>; 2],
    now_unix_nanos: u64,
) -> Result<(TimeWindow, TimeWindow), String> {
    let new = parse_window(new[0], new[1], now_unix_nanos)?;
    let len = new.until_unix_nanos - new.since_unix_nanos;
    // Each base bound is read alone, as a window's own bound, so its message names it.
    let since = |text: &str| {
        parse_window(Some(text), Some(FAR), now_unix_nanos)
            .map(|w| w.since_unix_nanos)
            .map_err(|e| format!("base_{e}"))
    };
    let until = |text: &str| {
        parse_window(Some(EPOCH), Some(text), now_unix_nanos)
            .map(|w| w.until_unix_nanos)
            .map_err(|e| format!("base_{e}"))
    };
    let (s, u) = match (given(base[0]), given(base[1])) {
        (Some(s), Some(u)) => (since(s)?, until(u)?),
        (Some(s), None) => {
            let s = since(s)?;
            (s, s.saturating_add(len))
        }
        (None, Some(u)) => {
            let u = until(u)?;
            (u.saturating_sub(len), u)
        }
        (None, None) => (
            new.since_unix_nanos.saturating_sub(len),
            new.since_unix_nanos,
        ),
    };
    let base = TimeWindow::new(s, u)
        .ok_or_else(|| "base_since must not be after base_until".to_string())?;
    Ok((base, new))
}

/// A bound typed, or `None` when absent or blank.
fn given(v: Option<&str>) -> Option<&str> {
    v.filter(|s| !s.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000_000_000;

    #[test]
    fn the_base_defaults_to_the_period_just_before() {
        let now = 100 * HOUR;
        let (base, new) = parse([None, None], [None, None], now).unwrap();
        assert_eq!(
            (new.since_unix_nanos, new.until_unix_nanos),
            (99 * HOUR, now)
        );
        assert_eq!(
            (base.since_unix_nanos, base.until_unix_nanos),
            (98 * HOUR, 99 * HOUR)
        );
        let (base, new) = parse(
            [None, Some("")],
            [Some("2026-01-02T10:00:00Z"), Some("2026-01-02T12:00:00Z")],
            now,
        )
        .unwrap();
        assert_eq!(base.until_unix_nanos, new.since_unix_nanos);
        assert_eq!(base.until_unix_nanos - base.since_unix_nanos, 2 * HOUR);
        // One base bound alone keeps the newer window's length, in the future too.
        let (base, new) = parse(
            [Some("2026-01-01T10:00:00Z"), None],
            [Some("2026-01-02T10:00:00Z"), Some("2026-01-02T11:00:00Z")],
            now,
        )
        .unwrap();
        assert_eq!(base.since_unix_nanos + 24 * HOUR, new.since_unix_nanos);
        assert_eq!(base.until_unix_nanos + 24 * HOUR, new.until_unix_nanos);
        let (base, _) = parse([None, Some("2026-01-01T10:00:00Z")], [None, None], now).unwrap();
        assert_eq!(base.until_unix_nanos - base.since_unix_nanos, HOUR);
    }

    #[test]
    fn bad_bounds_are_named() {
        let err = parse([Some("yesterday"), None], [None, None], HOUR).unwrap_err();
        assert!(err.starts_with("base_since must be a date"), "{err}");
        let err = parse([None, Some("soon")], [None, None], HOUR).unwrap_err();
        assert!(err.starts_with("base_until must be a date"), "{err}");
        let err = parse([Some("2026-01-03"), Some("2026-01-01")], [None, None], HOUR).unwrap_err();
        assert_eq!(err, "base_since must not be after base_until");
        let err = parse([None, None], [Some("2026-01-03"), Some("2026-01-01")], HOUR).unwrap_err();
        assert_eq!(err, "since must not be after until");
    }
}
