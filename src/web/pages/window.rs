//! The time window of a page: a preset (`?window=5m|15m|1h|6h|24h|7d`, ending now) or a custom
//! `?since=&until=` pair (RFC 3339, or a date with an optional time in UTC), kept in the URL so
//! a view can be bookmarked, and carried by the links that lead to other pages.

use crate::model::window::{self, now_unix_nanos, rfc3339, PRESETS};
use crate::model::TimeWindow;
use crate::percent;
use crate::web::render::{render_status, PageError};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use askama::Template;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct WindowQuery {
    pub window: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

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
        let (window, preset) = window::resolve(
            q.window.as_deref(),
            q.since.as_deref(),
            q.until.as_deref(),
            now_unix_nanos(),
        )?;
        Ok(PageWindow::new(window, preset))
    }

    /// A custom window with these bounds (unix nanos), e.g. around one trace.
    pub fn custom(since_unix_nanos: u64, until_unix_nanos: u64) -> PageWindow {
        let window = TimeWindow::new(since_unix_nanos, until_unix_nanos.max(since_unix_nanos))
            .unwrap_or(TimeWindow::last(until_unix_nanos, 0));
        PageWindow::new(window, "custom")
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

    /// The window picker as the user filled it in, for a page that could not read it: the
    /// preset if it is one, else custom with the bounds as typed (the default window under
    /// them is never queried).
    fn as_typed(q: &WindowQuery) -> PageWindow {
        let typed = |v: &Option<String>| v.as_deref().unwrap_or_default().trim().to_string();
        let preset = q.window.as_deref().map(str::trim).unwrap_or_default();
        let preset = match PRESETS.iter().find(|p| p.0 == preset) {
            Some(p) if typed(&q.since).is_empty() && typed(&q.until).is_empty() => p.0,
            _ => "custom",
        };
        PageWindow {
            window: TimeWindow::last(now_unix_nanos(), window::DEFAULT_WINDOW_SECS),
            preset: preset.to_string(),
            since: typed(&q.since),
            until: typed(&q.until),
        }
    }
}

/// A page whose window could not be read: its heading, the window picker holding what was
/// typed, and what was wrong with it; nothing is queried.
#[derive(Template)]
#[template(path = "window_error.html")]
struct WindowErrorPage {
    heading: String,
    kind: &'static str,
    on_map: bool,
    window: PageWindow,
    error: String,
}

/// The window of `q`, or (as `Err`) the 400 page that says what is wrong with it, for the
/// map (`kind` "map") or a node page (`kind` "service" or "destination", `heading` its name).
pub async fn page_window(
    q: &WindowQuery,
    kind: &'static str,
    heading: &str,
) -> Result<Result<PageWindow, HttpResponse>, PageError> {
    let error = match PageWindow::from_query(q) {
        Ok(w) => return Ok(Ok(w)),
        Err(e) => e,
    };
    let page = WindowErrorPage {
        heading: heading.to_string(),
        kind,
        on_map: kind == "map",
        window: PageWindow::as_typed(q),
        error,
    };
    render_status(page, StatusCode::BAD_REQUEST).await.map(Err)
}

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
        let typed = PageWindow::as_typed(&WindowQuery {
            window: Some("custom".into()),
            since: Some(" 2026-02-30 ".into()),
            until: None,
        });
        assert_eq!(
            (
                typed.preset.as_str(),
                typed.since.as_str(),
                typed.until.as_str()
            ),
            ("custom", "2026-02-30", "")
        );
        assert_eq!(PageWindow::as_typed(&bad).preset, "custom");
    }
}
