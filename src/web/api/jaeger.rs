//! The read endpoints of Jaeger's query API under `/jaeger` (Grafana's Jaeger data source and
//! Jaeger UI call them): services, a service's operations, trace search, one trace, and the
//! dependency links of a window. Answers are Jaeger's envelope
//! (`{"data", "total", "limit", "offset", "errors"}`); a bad parameter is a 400 with the
//! reason in `errors`, and nothing else happens. Conversions are in `crate::export::jaeger`.

use crate::export::jaeger::{self, span_matches};
use crate::model::window::now_unix_nanos;
use crate::model::{TimeWindow, TraceId, TraceQuery};
use crate::store::StoreError;
use crate::web::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Traces a search answers by default, and at most.
pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 1_500;
/// A search stops adding traces once its answer holds this many spans.
pub const MAX_SPANS: usize = 20_000;
/// Newest traces of the service read at most when tags or durations narrow the search.
const POST_FILTER_SCAN: usize = 1_000;
/// A search reads traces for at most this long (what it found by then is answered).
const SEARCH_BUDGET: Duration = Duration::from_secs(5);
/// The window of a search without `start`, and of `/api/services`' look at the store.
const DEFAULT_LOOKBACK: Duration = Duration::from_secs(3_600);
/// `/api/dependencies` without `lookback`: a day, as Jaeger UI asks.
const DEFAULT_DEPENDENCY_LOOKBACK_MS: u64 = 86_400_000;
/// Traces sampled for a service's operations when none were seen since start.
const OPERATION_SAMPLE: usize = 20;

#[derive(Serialize)]
struct Envelope<T: Serialize> {
    data: T,
    total: usize,
    limit: usize,
    offset: usize,
    errors: Option<Vec<ErrorItem>>,
}

#[derive(Serialize)]
struct ErrorItem {
    code: u16,
    msg: String,
}

fn answer<T: Serialize>(data: T, total: usize, limit: usize) -> HttpResponse {
    HttpResponse::Ok().json(Envelope {
        data,
        total,
        limit,
        offset: 0,
        errors: None,
    })
}

/// An error in Jaeger's envelope (`data` null, the reason in `errors`).
#[derive(Debug, thiserror::Error)]
pub enum JaegerError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ResponseError for JaegerError {
    fn status_code(&self) -> StatusCode {
        let code = match self {
            JaegerError::BadRequest(_) => 400,
            JaegerError::NotFound(_) => 404,
            JaegerError::Store(e) => e.code().http_status(),
        };
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            if let Some(suppressed) = crate::lograte::ERRORS.allow("web.jaeger") {
                tracing::error!(error = %self, suppressed, "jaeger api request failed");
            }
        }
        HttpResponse::build(status).json(Envelope {
            data: Value::Null,
            total: 0,
            limit: 0,
            offset: 0,
            errors: Some(vec![ErrorItem {
                code: status.as_u16(),
                msg: self.to_string(),
            }]),
        })
    }
}

type Answer = Result<HttpResponse, JaegerError>;

fn bad(msg: impl Into<String>) -> JaegerError {
    JaegerError::BadRequest(msg.into())
}

/// The query string's pairs (a repeated key, such as `tag`, appears more than once).
fn pairs(req: &HttpRequest) -> Result<Vec<(String, String)>, JaegerError> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .map_err(|e| bad(format!("malformed query string: {e}")))
}

fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, v)| k == key && !v.trim().is_empty())
        .map(|(_, v)| v.trim())
}

fn number(pairs: &[(String, String)], key: &str) -> Result<Option<u64>, JaegerError> {
    param(pairs, key)
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                bad(format!(
                    "parameter '{key}' must be a non-negative integer, not {v:?}"
                ))
            })
        })
        .transpose()
}

/// A Go duration (`1.5s`, `100ms`, `250us`, `1m30s`; units ns, us, µs, ms, s, m, h).
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let err =
        || format!("invalid duration {text:?}: use a number with a unit, e.g. 1.5s, 100ms, 250us");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(err());
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        let value: f64 = rest[..digits].parse().map_err(|_| err())?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos = match &rest[..unit] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3_600e9,
            _ => return Err(err()),
        };
        total += value * nanos;
        rest = &rest[unit..];
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(err());
    }
    Ok(Duration::from_nanos(total as u64))
}

fn duration_param(pairs: &[(String, String)], key: &str) -> Result<Option<Duration>, JaegerError> {
    param(pairs, key)
        .map(|v| parse_go_duration(v).map_err(|e| bad(format!("parameter '{key}': {e}"))))
        .transpose()
}

/// Tags to match: `tags` as a JSON object (Grafana, Jaeger UI) and each `tag=key:value`.
fn tags(pairs: &[(String, String)]) -> Result<Vec<(String, String)>, JaegerError> {
    let mut out = Vec::new();
    if let Some(text) = param(pairs, "tags") {
        let map: serde_json::Map<String, Value> = serde_json::from_str(text).map_err(|e| {
            bad(format!("malformed 'tags' parameter: {e}; expected a JSON object such as {{\"http.status_code\":\"500\"}}"))
        })?;
        for (k, v) in map {
            let v = match v {
                Value::String(s) => s,
                Value::Number(_) | Value::Bool(_) => v.to_string(),
                _ => {
                    return Err(bad(format!(
                        "tag {k:?}: the value must be a string, number or boolean"
                    )))
                }
            };
            out.push((k, v));
        }
    }
    for (_, v) in pairs.iter().filter(|(k, _)| k == "tag") {
        match v.split_once(':') {
            Some((key, value)) if !key.trim().is_empty() => {
                out.push((key.trim().to_string(), value.to_string()))
            }
            _ => {
                return Err(bad(format!(
                    "malformed 'tag' parameter {v:?}: expected key:value"
                )))
            }
        }
    }
    Ok(out)
}

/// A search, checked.
struct Search {
    service: String,
    operation: Option<String>,
    tags: Vec<(String, String)>,
    window: TimeWindow,
    min_micros: u64,
    max_micros: u64,
    limit: usize,
}

impl Search {
    fn parse(pairs: &[(String, String)], now_micros: u64) -> Result<Search, JaegerError> {
        let service = param(pairs, "service")
            .ok_or_else(|| bad("parameter 'service' is required"))?
            .to_string();
        let end = number(pairs, "end")?.unwrap_or(now_micros);
        let start = match number(pairs, "start")? {
            Some(s) => s,
            None => {
                let lookback = match param(pairs, "lookback").filter(|l| *l != "custom") {
                    Some(l) => parse_go_duration(l)
                        .map_err(|e| bad(format!("parameter 'lookback': {e}")))?,
                    None => DEFAULT_LOOKBACK,
                };
                end.saturating_sub(lookback.as_micros() as u64)
            }
        };
        let window = TimeWindow::new(start.saturating_mul(1_000), end.saturating_mul(1_000))
            .ok_or_else(|| bad(format!("'start' ({start}) is after 'end' ({end})")))?;
        let min = duration_param(pairs, "minDuration")?;
        let max = duration_param(pairs, "maxDuration")?;
        if let (Some(a), Some(b)) = (min, max) {
            if a > b {
                return Err(bad("'minDuration' is larger than 'maxDuration'"));
            }
        }
        let limit = match number(pairs, "limit")? {
            None | Some(0) => DEFAULT_LIMIT,
            Some(n) => usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
        };
        Ok(Search {
            service,
            operation: param(pairs, "operation").map(str::to_string),
            tags: tags(pairs)?,
            window,
            min_micros: min.map_or(0, |d| d.as_micros() as u64),
            max_micros: max.map_or(u64::MAX, |d| d.as_micros() as u64),
            limit,
        })
    }

    fn post_filtered(&self) -> bool {
        !self.tags.is_empty() || self.min_micros > 0 || self.max_micros < u64::MAX
    }

    fn matches(&self, trace: &Value) -> bool {
        let spans = trace["spans"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        spans.iter().any(|s| {
            span_matches(
                trace,
                s,
                &self.service,
                self.operation.as_deref(),
                (self.min_micros, self.max_micros),
                &self.tags,
            )
        })
    }
}

pub async fn services(state: web::Data<AppState>) -> Answer {
    let mut names = state.operations.services();
    let window = TimeWindow::last(now_unix_nanos(), DEFAULT_LOOKBACK.as_secs());
    let rows = state.store.blocking(move |s| s.topology(window)).await?;
    names.extend(
        rows.nodes
            .into_iter()
            .filter(|n| n.key.kind == crate::model::NodeKind::Service)
            .map(|n| n.key.name),
    );
    names.sort();
    names.dedup();
    let total = names.len();
    Ok(answer(names, total, 0))
}

/// A service's operations: those seen since start, or, when none were (a restart), those of
/// its newest traces.
async fn operations_of(
    state: &AppState,
    service: String,
) -> Result<Vec<(String, &'static str)>, JaegerError> {
    let known = state.operations.of(&service);
    if !known.is_empty() {
        return Ok(known
            .into_iter()
            .map(|(n, k)| (n, jaeger::span_kind(k)))
            .collect());
    }
    let ops: Vec<(String, &'static str)> = state
        .store
        .blocking(move |s| {
            let found = s.search_traces(&TraceQuery {
                service: Some(service.clone()),
                limit: OPERATION_SAMPLE,
                ..TraceQuery::default()
            })?;
            let mut ops = std::collections::BTreeSet::new();
            for t in found.traces {
                for span in s.trace(t.trace_id)? {
                    if span.service == service {
                        ops.insert((span.name, jaeger::span_kind(span.kind)));
                    }
                }
            }
            Ok(ops.into_iter().collect())
        })
        .await?;
    Ok(ops)
}

/// `/api/services/{service}/operations`: the names, sorted.
pub async fn service_operations(path: web::Path<String>, state: web::Data<AppState>) -> Answer {
    let mut names: Vec<String> = operations_of(&state, path.into_inner())
        .await?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    names.dedup();
    let total = names.len();
    Ok(answer(names, total, 0))
}

#[derive(Serialize)]
struct OperationItem {
    name: String,
    #[serde(rename = "spanKind")]
    span_kind: &'static str,
}

/// `/api/operations?service=&spanKind=`: names with their span kinds.
pub async fn operations(req: HttpRequest, state: web::Data<AppState>) -> Answer {
    let pairs = pairs(&req)?;
    let service = param(&pairs, "service")
        .ok_or_else(|| bad("parameter 'service' is required"))?
        .to_string();
    let kind = param(&pairs, "spanKind").map(str::to_string);
    let items: Vec<OperationItem> = operations_of(&state, service)
        .await?
        .into_iter()
        .filter(|(_, k)| kind.as_deref().is_none_or(|want| want == *k))
        .map(|(name, span_kind)| OperationItem { name, span_kind })
        .collect();
    let total = items.len();
    Ok(answer(items, total, 0))
}

/// `/api/traces?service=&operation=&tags=&start=&end=&minDuration=&maxDuration=&limit=`:
/// the newest matching traces, whole. `start` and `end` are microseconds since the epoch.
pub async fn search(req: HttpRequest, state: web::Data<AppState>) -> Answer {
    let pairs = pairs(&req)?;
    let q = Search::parse(&pairs, now_unix_nanos() / 1_000)?;
    let limit = q.limit;
    let traces = state
        .store
        .blocking(move |s| {
            let started = Instant::now();
            let found = s.search_traces(&TraceQuery {
                service: Some(q.service.clone()),
                operation: q.operation.clone(),
                errors_only: q.tags.iter().any(|(k, v)| k == "error" && v == "true"),
                window: Some(q.window),
                limit: if q.post_filtered() {
                    POST_FILTER_SCAN
                } else {
                    q.limit
                },
                ..TraceQuery::default()
            })?;
            let (mut out, mut spans) = (Vec::new(), 0);
            for summary in found.traces {
                if out.len() >= q.limit || spans >= MAX_SPANS || started.elapsed() > SEARCH_BUDGET {
                    break;
                }
                let stored = s.trace(summary.trace_id)?;
                if stored.is_empty() {
                    continue;
                }
                let trace = jaeger::trace(&stored);
                if q.post_filtered() && !q.matches(&trace) {
                    continue;
                }
                spans += stored.len();
                out.push(trace);
            }
            Ok(out)
        })
        .await?;
    let total = traces.len();
    Ok(answer(traces, total, limit))
}

/// A trace id as Jaeger shows it: up to 32 hex digits (shorter ones are left-padded).
fn trace_id(text: &str) -> Result<TraceId, JaegerError> {
    let text = text.trim();
    if text.is_empty() || text.len() > 32 {
        return Err(bad(format!(
            "invalid trace id {text:?}: expected up to 32 hex digits"
        )));
    }
    TraceId::from_hex(&format!("{text:0>32}"))
        .map_err(|e| bad(format!("invalid trace id {text:?}: {e}")))
}

/// `/api/traces/{id}`: one trace (404 in Jaeger's envelope when it is not stored).
pub async fn trace(path: web::Path<String>, state: web::Data<AppState>) -> Answer {
    let id = trace_id(&path)?;
    let spans = state.store.blocking(move |s| s.trace(id)).await?;
    if spans.is_empty() {
        return Err(JaegerError::NotFound("trace not found".into()));
    }
    Ok(answer(vec![jaeger::trace(&spans)], 1, 0))
}

/// `/api/dependencies?endTs=&lookback=` (milliseconds): service-to-service links of the
/// window, calls and messages through brokers.
pub async fn dependencies(req: HttpRequest, state: web::Data<AppState>) -> Answer {
    let pairs = pairs(&req)?;
    let now_ms = now_unix_nanos() / 1_000_000;
    let end_ms = number(&pairs, "endTs")?.unwrap_or(now_ms);
    let lookback = number(&pairs, "lookback")?.unwrap_or(DEFAULT_DEPENDENCY_LOOKBACK_MS);
    if lookback == 0 {
        return Err(bad("parameter 'lookback' must be positive"));
    }
    let end = end_ms.saturating_mul(1_000_000);
    let window = TimeWindow::new(end.saturating_sub(lookback.saturating_mul(1_000_000)), end)
        .ok_or_else(|| bad("invalid window"))?;
    let rows = state.store.blocking(move |s| s.topology(window)).await?;
    let links = jaeger::dependencies(&rows);
    let total = links.len();
    Ok(answer(links, total, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Vec<(String, String)> {
        web::Query::<Vec<(String, String)>>::from_query(s)
            .unwrap()
            .into_inner()
    }

    #[test]
    fn go_durations_parse_and_nonsense_is_refused() {
        let d = |s| parse_go_duration(s).unwrap();
        assert_eq!(d("1.5s"), Duration::from_millis(1_500));
        assert_eq!(d("100ms"), Duration::from_millis(100));
        assert_eq!(d("250us"), Duration::from_micros(250));
        assert_eq!(d("1m30s"), Duration::from_secs(90));
        assert_eq!(d("0"), Duration::ZERO);
        for bad in ["", "5", "1x", "ms", "1.2.3s", "-1s"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn searches_parse_with_jaeger_defaults_and_bounds() {
        let s = Search::parse(&q("service=a&limit=99999&tags=%7B%22k%22%3A3%7D&tag=x:y:z&start=10&end=20&minDuration=1ms"), 1_000).unwrap();
        assert_eq!(s.limit, MAX_LIMIT);
        assert_eq!(
            s.tags,
            vec![("k".into(), "3".into()), ("x".into(), "y:z".into())]
        );
        assert_eq!(
            (s.window.since_unix_nanos, s.window.until_unix_nanos),
            (10_000, 20_000)
        );
        assert_eq!(s.min_micros, 1_000);
        assert!(s.post_filtered());
        let d = Search::parse(&q("service=a&lookback=custom"), 7_200_000_000).unwrap();
        assert_eq!(d.limit, DEFAULT_LIMIT);
        assert_eq!(d.window.since_unix_nanos, 3_600_000_000_000);
        let err = |s: &str| Search::parse(&q(s), 1_000).err().unwrap().to_string();
        assert!(err("operation=x").contains("'service' is required"));
        assert!(err("service=a&start=5&end=4").contains("after"));
        assert!(err("service=a&limit=ten").contains("'limit'"));
        assert!(err("service=a&tags=%5B1%5D").contains("'tags'"));
        assert!(err("service=a&minDuration=2s&maxDuration=1s").contains("minDuration"));
        assert!(err("service=a&maxDuration=fast").contains("maxDuration"));
    }

    #[test]
    fn short_trace_ids_are_padded_and_bad_ones_refused() {
        assert_eq!(trace_id("ab").unwrap().to_hex(), format!("{:0>32}", "ab"));
        assert!(trace_id("xyz").is_err());
        assert!(trace_id(&"a".repeat(33)).is_err());
    }
}
