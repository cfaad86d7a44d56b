//! Trace search input shared by `/traces` and `/api/traces`: the same filters under the same
//! names, parsed once, and the duration bounds applied to the newest matches.

use crate::model::TimeWindow;
use crate::model::{TraceQuery, TraceSummary};
use crate::store::{Store, StoreError};

/// Duration bounds are checked on the summaries of this many newest matches at most.
pub const POST_FILTER_SCAN: usize = 1000;

/// The filters as sent (query-string text; empty fields mean none).
#[derive(Clone, Copy, Debug, Default)]
pub struct FilterText<'a> {
    pub service: Option<&'a str>,
    pub destination: Option<&'a str>,
    pub operation: Option<&'a str>,
    /// `key=value`.
    pub attr: Option<&'a str>,
    /// `error`: only traces with an error span (other values are ignored, as they always were).
    pub status: Option<&'a str>,
    /// Duration bounds in milliseconds.
    pub min_ms: Option<&'a str>,
    pub max_ms: Option<&'a str>,
}

/// Parsed filters.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    pub service: Option<String>,
    pub destination: Option<String>,
    pub operation: Option<String>,
    pub attribute: Option<(String, String)>,
    pub errors_only: bool,
    pub min_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

fn nonempty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty()).map(str::to_string)
}

fn parse_ms(name: &str, value: Option<&str>) -> Result<Option<f64>, String> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|ms| ms.is_finite() && *ms >= 0.0)
            .map(Some)
            .ok_or_else(|| format!("{name} must be a number of milliseconds")),
    }
}

/// `key=value` (split at the first `=`; the key trimmed, the value as typed).
fn parse_attr(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err("attr must be key=value, e.g. messaging.system=rabbitmq".to_string()),
    }
}

impl Filters {
    pub fn parse(t: &FilterText<'_>) -> Result<Filters, String> {
        Ok(Filters {
            service: nonempty(t.service),
            destination: nonempty(t.destination),
            operation: nonempty(t.operation),
            attribute: nonempty(t.attr).map(|a| parse_attr(&a)).transpose()?,
            errors_only: t.status == Some("error"),
            min_ms: parse_ms("min_ms", t.min_ms)?,
            max_ms: parse_ms("max_ms", t.max_ms)?,
        })
    }

    /// Whether duration bounds narrow the newest matches after the search.
    pub fn post_filtered(&self) -> bool {
        self.min_ms.is_some() || self.max_ms.is_some()
    }
}

/// What a search found, newest first.
pub struct Found {
    pub traces: Vec<TraceSummary>,
    /// False when the store's search stopped at its bound before it was sure.
    pub complete: bool,
}

/// Runs the search on a blocking thread: at most `limit` traces within the duration bounds.
pub async fn run(
    store: &Store,
    f: &Filters,
    window: Option<TimeWindow>,
    limit: usize,
) -> Result<Found, StoreError> {
    let query = TraceQuery {
        service: f.service.clone(),
        destination: f.destination.clone(),
        operation: f.operation.clone(),
        attribute: f.attribute.clone(),
        errors_only: f.errors_only,
        window,
        limit: if f.post_filtered() {
            POST_FILTER_SCAN
        } else {
            limit
        },
    };
    let (min_us, max_us) = (
        f.min_ms.map(|m| m * 1000.0).unwrap_or(0.0),
        f.max_ms.map(|m| m * 1000.0).unwrap_or(f64::INFINITY),
    );
    store
        .blocking(move |s| {
            let found = s.search_traces(&query)?;
            Ok(Found {
                traces: found
                    .traces
                    .into_iter()
                    .filter(|t| (min_us..=max_us).contains(&(t.duration_micros as f64)))
                    .take(limit)
                    .collect(),
                complete: found.complete,
            })
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_refuse_what_they_cannot_mean() {
        let f = Filters::parse(&FilterText {
            service: Some(" "),
            attr: Some(" tenant =a=b"),
            status: Some("error"),
            min_ms: Some("1.5"),
            ..FilterText::default()
        })
        .unwrap();
        assert_eq!(f.service, None);
        assert_eq!(f.attribute, Some(("tenant".into(), "a=b".into())));
        assert!(f.errors_only && f.post_filtered());
        assert_eq!(f.min_ms, Some(1.5));
        let bad = |t: FilterText<'_>| Filters::parse(&t).unwrap_err();
        assert!(bad(FilterText {
            attr: Some("novalue"),
            ..Default::default()
        })
        .contains("key=value"));
        assert!(bad(FilterText {
            max_ms: Some("-1"),
            ..Default::default()
        })
        .contains("max_ms"));
    }
}
