//! Trace search input shared by `/traces` and `/api/traces`: the same filters under the same
//! names, parsed once, names matched case-insensitively against what is stored, and the
//! duration bounds applied to the newest matches.

use crate::model::{NodeKind, TimeWindow};
use crate::model::{TraceQuery, TraceSummary};
use crate::store::{Store, StoreError};
use std::sync::{Arc, Mutex};

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

/// Names offered by the search's pickers and matched case-insensitively: services and
/// destinations of the topology in the window, operations of the newest stored spans.
#[derive(Clone, Debug, Default)]
pub struct Names {
    pub services: Vec<String>,
    pub destinations: Vec<String>,
    pub operations: Vec<String>,
}

/// Operations offered at most.
const MAX_OPERATIONS: usize = 500;
/// Names are read from this window when the search covers everything stored (a longer one
/// would make every search page pay for a long topology read).
const NAMES_WINDOW_SECS: u64 = 3600;

/// The names of a window's minutes (first, last) read at a store's write generation: the
/// window's nodes are read by whole minutes and the operations from the newest blocks, so the
/// same minutes at the same generation have the same names.
type NamesKey = (i64, i64, u64);

/// Name lists kept at most (each a few hundred names at most but for a very large topology).
const NAMES_KEPT: usize = 8;

// A std Mutex: held only to look up or insert in an eight-entry list, never across an await.
static KEPT_NAMES: Mutex<Vec<(NamesKey, Arc<Names>)>> = Mutex::new(Vec::new());

fn kept_names(key: NamesKey) -> Option<Arc<Names>> {
    let kept = KEPT_NAMES.lock().ok()?;
    kept.iter().find(|(k, _)| *k == key).map(|(_, n)| n.clone())
}

fn keep_names(key: NamesKey, names: &Arc<Names>) {
    if let Ok(mut kept) = KEPT_NAMES.lock() {
        kept.retain(|(k, _)| *k != key);
        kept.insert(0, (key, names.clone()));
        kept.truncate(NAMES_KEPT);
    }
}

/// Reads the names for `window` (or the last hour) on a blocking thread, or answers with the
/// list read for the same minutes while the store has committed nothing since (every search
/// page asks, and a preset window ends at a new instant each time).
pub async fn names(store: &Store, window: Option<TimeWindow>) -> Result<Arc<Names>, StoreError> {
    let window = window.unwrap_or_else(|| {
        TimeWindow::last(crate::model::window::now_unix_nanos(), NAMES_WINDOW_SECS)
    });
    // The generation is read before the data: names read after it are at least as new.
    let (first, last) = window.minutes();
    let key = store.generation().map(|g| (first, last, g));
    if let Some(names) = key.and_then(kept_names) {
        return Ok(names);
    }
    let names = Arc::new(read_names(store, window).await?);
    if let Some(key) = key {
        keep_names(key, &names);
    }
    Ok(names)
}

async fn read_names(store: &Store, window: TimeWindow) -> Result<Names, StoreError> {
    store
        .blocking(move |s| {
            let mut names = Names::default();
            for key in s.node_keys(window)? {
                match key.kind {
                    NodeKind::Service => names.services.push(key.name),
                    NodeKind::Destination => names.destinations.push(key.name),
                    NodeKind::External => {}
                }
            }
            names.services.sort();
            names.services.dedup();
            names.destinations.sort();
            names.destinations.dedup();
            names.operations = s.recent_operations(MAX_OPERATIONS)?;
            Ok(names)
        })
        .await
}

/// The stored spelling of `typed` among `known`, ignoring case (the typed text when none, or
/// when it is stored as typed).
fn stored_spelling(typed: &str, known: &[String]) -> String {
    if known.iter().any(|k| k == typed) {
        return typed.to_string();
    }
    let lower = typed.to_lowercase();
    known
        .iter()
        .find(|k| k.to_lowercase() == lower)
        .cloned()
        .unwrap_or_else(|| typed.to_string())
}

impl Filters {
    /// Matches the service, destination and operation against the stored names, ignoring
    /// case; returns what was read differently (`(typed, stored)`), to say so on the page.
    pub fn match_names(&mut self, names: &Names) -> Vec<(String, String)> {
        let mut changed = Vec::new();
        for (value, known) in [
            (&mut self.service, &names.services),
            (&mut self.destination, &names.destinations),
            (&mut self.operation, &names.operations),
        ] {
            if let Some(v) = value.as_mut() {
                let stored = stored_spelling(v.trim(), known);
                if stored != *v && known.contains(&stored) {
                    changed.push((std::mem::replace(v, stored.clone()), stored));
                }
            }
        }
        changed
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
    let micros = f.min_ms.map(|m| m * 1000.0).unwrap_or(0.0)
        ..=f.max_ms.map(|m| m * 1000.0).unwrap_or(f64::INFINITY);
    let post_filtered = f.post_filtered();
    store
        .blocking(move |s| {
            let found = if post_filtered {
                s.search_traces_within(&query, micros, limit)?
            } else {
                s.search_traces(&query)?
            };
            Ok(Found {
                traces: found.traces.into_iter().take(limit).collect(),
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

    #[test]
    fn names_match_their_stored_spelling_ignoring_case() {
        let names = Names {
            services: vec!["Orders".into(), "billing".into()],
            destinations: vec!["order.created".into()],
            operations: vec!["order.created send".into()],
        };
        let mut f = Filters {
            service: Some("orders".into()),
            destination: Some("ORDER.created".into()),
            operation: Some("order.created send".into()),
            ..Filters::default()
        };
        let changed = f.match_names(&names);
        assert_eq!(f.service.as_deref(), Some("Orders"));
        assert_eq!(f.destination.as_deref(), Some("order.created"));
        assert_eq!(changed.len(), 2);
        let mut unknown = Filters {
            service: Some("nobody".into()),
            ..Filters::default()
        };
        assert!(unknown.match_names(&names).is_empty());
        assert_eq!(unknown.service.as_deref(), Some("nobody"));
    }
}
