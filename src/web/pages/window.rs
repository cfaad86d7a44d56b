//! The time window of a page: a preset (`?window=5m|1h|24h`, ending now) or a custom
//! `?since=&until=` pair (RFC 3339), kept in the URL so a view can be bookmarked.

use crate::model::window::now_unix_nanos;
use crate::model::TimeWindow;
use crate::percent;
use crate::web::api::parse_window;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct WindowQuery {
    pub window: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

/// Presets offered by the picker: (query value, label, seconds).
pub const PRESETS: &[(&str, &str, u64)] = &[
    ("5m", "Last 5 minutes", 300),
    ("1h", "Last hour", 3600),
    ("24h", "Last 24 hours", 86_400),
];

/// A resolved window and how the user asked for it.
#[derive(Clone, Debug)]
pub struct PageWindow {
    pub window: TimeWindow,
    /// `5m`, `1h`, `24h` or `custom`.
    pub preset: String,
    /// RFC 3339 bounds, as sent to the API.
    pub since: String,
    pub until: String,
}

impl PageWindow {
    pub fn from_query(q: &WindowQuery) -> Result<PageWindow, String> {
        let custom = q.since.as_deref().is_some_and(|s| !s.is_empty())
            || q.until.as_deref().is_some_and(|s| !s.is_empty());
        let preset = q.window.as_deref().filter(|w| !w.is_empty());
        // A preset wins over stale bounds (a form without script sends both); `custom`
        // without bounds is the hour that ends now.
        if preset == Some("custom") || (custom && preset.is_none()) {
            let window = parse_window(q.since.as_deref(), q.until.as_deref())?;
            return Ok(PageWindow::new(window, "custom"));
        }
        let name = preset.unwrap_or("1h");
        let Some(&(name, _, secs)) = PRESETS.iter().find(|p| p.0 == name) else {
            return Err(format!(
                "window must be one of 5m, 1h, 24h or custom, not {name:?}"
            ));
        };
        // Whole seconds (rounded up) keep the URLs and the picker readable.
        let now = (now_unix_nanos() / 1_000_000_000 + 1) * 1_000_000_000;
        Ok(PageWindow::new(TimeWindow::last(now, secs), name))
    }

    fn new(window: TimeWindow, preset: &str) -> PageWindow {
        PageWindow {
            since: rfc3339(window.since_unix_nanos),
            until: rfc3339(window.until_unix_nanos),
            window,
            preset: preset.to_string(),
        }
    }

    /// The explicit bounds as a query string (for the API and for links).
    pub fn query(&self) -> String {
        format!(
            "since={}&until={}",
            percent::encode(&self.since),
            percent::encode(&self.until)
        )
    }

    /// What the URL of this page keeps: the preset, or the custom bounds.
    pub fn page_query(&self) -> String {
        if self.preset == "custom" {
            format!("window=custom&{}", self.query())
        } else {
            format!("window={}", self.preset)
        }
    }

    pub fn presets(&self) -> &'static [(&'static str, &'static str, u64)] {
        PRESETS
    }

    pub fn is_custom(&self) -> bool {
        self.preset == "custom"
    }
}

pub use crate::model::window::rfc3339;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_custom_and_errors() {
        let w = PageWindow::from_query(&WindowQuery::default()).unwrap();
        assert_eq!(w.preset, "1h");
        assert_eq!(w.page_query(), "window=1h");
        let q = WindowQuery {
            window: None,
            since: Some("2026-01-01T00:00:00Z".into()),
            until: Some("2026-01-01T01:00:00Z".into()),
        };
        let w = PageWindow::from_query(&q).unwrap();
        assert!(w.is_custom());
        assert_eq!(w.since, "2026-01-01T00:00:00Z");
        assert_eq!(
            w.query(),
            "since=2026-01-01T00%3A00%3A00Z&until=2026-01-01T01%3A00%3A00Z"
        );
        let bare = WindowQuery {
            window: Some("custom".into()),
            ..Default::default()
        };
        assert!(PageWindow::from_query(&bare).unwrap().is_custom());
        let both = WindowQuery {
            window: Some("5m".into()),
            since: Some("2026-01-01T00:00:00Z".into()),
            until: None,
        };
        assert_eq!(PageWindow::from_query(&both).unwrap().preset, "5m");
        let bad = WindowQuery {
            window: Some("7y".into()),
            ..Default::default()
        };
        assert!(PageWindow::from_query(&bad).is_err());
    }
}
