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

/// The window of a query without bounds: the hour that ends now.
pub const DEFAULT_WINDOW_SECS: u64 = 3600;

/// Windows that end now, offered by name: (name, label, seconds).
pub const PRESETS: &[(&str, &str, u64)] = &[
    ("5m", "Last 5 minutes", 300),
    ("15m", "Last 15 minutes", 900),
    ("1h", "Last hour", 3600),
    ("6h", "Last 6 hours", 21_600),
    ("24h", "Last 24 hours", 86_400),
    ("7d", "Last 7 days", 604_800),
];

/// Which end of a window a typed time is: a date alone means the start of that day for
/// `since` and the end of it (the next midnight) for `until`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bound {
    Since,
    Until,
}

/// One bound: an RFC 3339 timestamp, or as people type it, in UTC: a date alone
/// (`2026-01-02`), or a date and time without a zone (`2026-01-02 15:04`, `2026-01-02T15:04:05`).
fn parse_bound(bound: Bound, text: &str) -> Result<u64, String> {
    use time::format_description::{parse_borrowed, well_known::Rfc3339};
    let parse = parse_borrowed::<1>;
    let name = match bound {
        Bound::Since => "since",
        Bound::Until => "until",
    };
    let text = text.trim();
    let local = |pattern: &str| {
        let f = parse(pattern).ok()?;
        let typed = text.replacen(' ', "T", 1);
        time::PrimitiveDateTime::parse(typed.trim_end_matches('Z'), &f).ok()
    };
    let day = || {
        let day = time::Date::parse(text, &parse("[year]-[month]-[day]").ok()?).ok()?;
        let day = match bound {
            Bound::Since => day,
            Bound::Until => day.next_day()?,
        };
        Some(day.midnight())
    };
    let parsed = time::OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .or_else(|| {
            let at = local("[year]-[month]-[day]T[hour]:[minute]:[second]")
                .or_else(|| local("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]"))
                .or_else(|| local("[year]-[month]-[day]T[hour]:[minute]"))
                .or_else(day)?;
            Some(at.assume_utc())
        });
    let t = parsed.ok_or_else(|| {
        format!(
            "{name} must be a date and time such as 2026-01-02T15:04:05Z or a date such as \
             2026-01-02 (UTC), not {text:?}"
        )
    })?;
    u64::try_from(t.unix_timestamp_nanos()).map_err(|_| format!("{name} is before 1970"))
}

/// The preset names, for messages: `5m, 15m, 1h, ...`.
pub fn preset_names() -> String {
    PRESETS.iter().map(|p| p.0).collect::<Vec<_>>().join(", ")
}

/// Parses `since`/`until` (RFC 3339, or a date with an optional time in UTC; empty means
/// absent): `until` defaults to `now`, `since`
/// to [`DEFAULT_WINDOW_SECS`] before `until`.
pub fn parse_window(
    since: Option<&str>,
    until: Option<&str>,
    now_unix_nanos: u64,
) -> Result<TimeWindow, String> {
    let until = match until.filter(|s| !s.is_empty()) {
        Some(u) => parse_bound(Bound::Until, u)?,
        None => now_unix_nanos,
    };
    let since = match since.filter(|s| !s.is_empty()) {
        Some(s) => parse_bound(Bound::Since, s)?,
        None => until.saturating_sub(DEFAULT_WINDOW_SECS * 1_000_000_000),
    };
    TimeWindow::new(since, until).ok_or_else(|| "since must not be after until".to_string())
}

/// A window as a page asks for it: a preset name (see [`PRESETS`]; the default `1h`) or
/// `custom` bounds. A preset wins over stale bounds (a form without script sends both); bounds
/// without a preset, or `custom` without bounds, are custom. Returns the window and the preset
/// name it was resolved as (`custom` for bounds). A preset ends at `now` rounded up to a whole
/// second, which keeps URLs readable.
pub fn resolve(
    preset: Option<&str>,
    since: Option<&str>,
    until: Option<&str>,
    now_unix_nanos: u64,
) -> Result<(TimeWindow, &'static str), String> {
    let custom = since.is_some_and(|s| !s.is_empty()) || until.is_some_and(|s| !s.is_empty());
    let preset = preset.filter(|w| !w.is_empty());
    if preset == Some("custom") || (custom && preset.is_none()) {
        return Ok((parse_window(since, until, now_unix_nanos)?, "custom"));
    }
    let name = preset.unwrap_or("1h");
    let Some(&(name, _, secs)) = PRESETS.iter().find(|p| p.0 == name) else {
        return Err(format!(
            "window must be one of {} or custom, not {name:?}",
            preset_names()
        ));
    };
    let now = (now_unix_nanos / 1_000_000_000 + 1) * 1_000_000_000;
    Ok((TimeWindow::last(now, secs), name))
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

    const NOW: u64 = 1_767_229_200_500_000_000; // 2026-01-01T01:00:00.5Z

    #[test]
    fn windows_parse_and_validate() {
        let w = parse_window(
            Some("2026-01-01T00:00:00Z"),
            Some("2026-01-01T01:00:00+00:00"),
            NOW,
        )
        .unwrap();
        assert_eq!(w.until_unix_nanos - w.since_unix_nanos, 3_600_000_000_000);
        assert_eq!(rfc3339(w.since_unix_nanos), "2026-01-01T00:00:00Z");
        assert!(parse_window(Some("yesterday"), None, NOW)
            .unwrap_err()
            .contains("2026-01-02T15:04:05Z"));
        assert!(parse_window(
            Some("2026-01-02T00:00:00Z"),
            Some("2026-01-01T00:00:00Z"),
            NOW
        )
        .is_err());
        assert!(parse_window(Some("1969-12-31T23:59:59Z"), None, NOW)
            .unwrap_err()
            .contains("before 1970"));
        let default = parse_window(None, Some(""), NOW).unwrap();
        assert_eq!(default, TimeWindow::last(NOW, DEFAULT_WINDOW_SECS));
    }

    #[test]
    fn presets_and_custom_bounds_resolve() {
        let (w, name) = resolve(None, None, None, NOW).unwrap();
        assert_eq!(name, "1h");
        assert_eq!(rfc3339(w.until_unix_nanos), "2026-01-01T01:00:01Z");
        assert_eq!(w.duration_secs(), 3600.0);
        let since = Some("2026-01-01T00:00:00Z");
        assert_eq!(resolve(None, since, None, NOW).unwrap().1, "custom");
        assert_eq!(resolve(Some("5m"), since, None, NOW).unwrap().1, "5m");
        let (bare, name) = resolve(Some("custom"), None, None, NOW).unwrap();
        assert_eq!((bare.until_unix_nanos, name), (NOW, "custom"));
        assert!(resolve(Some("7y"), None, None, NOW)
            .unwrap_err()
            .contains("5m, 15m, 1h, 6h, 24h, 7d"));
        let (w, name) = resolve(Some("7d"), None, None, NOW).unwrap();
        assert_eq!((name, w.duration_secs()), ("7d", 604_800.0));
    }

    #[test]
    fn dates_without_a_time_or_zone_are_understood_in_utc() {
        let day = parse_window(Some("2026-01-01"), Some("2026-01-01"), NOW).unwrap();
        assert_eq!(rfc3339(day.since_unix_nanos), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339(day.until_unix_nanos), "2026-01-02T00:00:00Z");
        for (typed, read) in [
            ("2026-01-01 09:30", "2026-01-01T09:30:00Z"),
            (" 2026-01-01T09:30:15 ", "2026-01-01T09:30:15Z"),
            ("2026-01-01T09:30:15.5", "2026-01-01T09:30:15.5Z"),
            ("2026-01-01T09:30:15Z", "2026-01-01T09:30:15Z"),
        ] {
            let w = parse_window(Some(typed), Some("2026-01-02"), NOW).unwrap();
            assert_eq!(rfc3339(w.since_unix_nanos), read, "{typed}");
        }
        for bad in ["2026-13-01", "01/02/2026", "2026-01-01T25:00", "<script>"] {
            let e = parse_window(Some(bad), None, NOW).unwrap_err();
            assert!(e.starts_with("since must be"), "{bad}: {e}");
        }
    }
}
