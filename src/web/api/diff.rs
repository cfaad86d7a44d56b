//! `GET /api/topology/diff` (JSON, or DOT with `format=dot`) and `GET /api/topology/diff.dot`:
//! what changed between a base window and a newer one. Both topologies are built by the same
//! builder as `/api/topology`, each on a blocking thread of its own, at the same time.

use crate::export;
use crate::model::window::now_unix_nanos;
use crate::model::window_pair;
use crate::model::TimeWindow;
use crate::store::StoreError;
use crate::topology::diff::{self, Thresholds};
use crate::topology::{self};
use crate::web::error::ApiError;
use crate::web::state::AppState;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct DiffParams {
    pub base_since: Option<String>,
    pub base_until: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub rate_change: Option<String>,
    pub error_change: Option<String>,
    pub latency_change: Option<String>,
    /// `json` (the default) or `dot`.
    pub format: Option<String>,
}

/// The two windows (see [`window_pair::parse`]).
pub fn windows(q: &DiffParams, now_unix_nanos: u64) -> Result<(TimeWindow, TimeWindow), String> {
    window_pair::parse(
        [q.base_since.as_deref(), q.base_until.as_deref()],
        [q.since.as_deref(), q.until.as_deref()],
        now_unix_nanos,
    )
}

fn number(name: &str, text: &Option<String>) -> Result<Option<f64>, String> {
    match text.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(t) => t
            .parse::<f64>()
            .map(Some)
            .map_err(|_| format!("{name} must be a number such as 0.5, not {t:?}")),
    }
}

pub fn thresholds(q: &DiffParams) -> Result<Thresholds, String> {
    Thresholds::with(
        number("rate_change", &q.rate_change)?,
        number("error_change", &q.error_change)?,
        number("latency_change", &q.latency_change)?,
    )
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Dot,
}

async fn answer(
    q: &DiffParams,
    state: &AppState,
    format: Format,
) -> Result<HttpResponse, ApiError> {
    let (base, new) = windows(q, now_unix_nanos()).map_err(ApiError::BadRequest)?;
    let t = thresholds(q).map_err(ApiError::BadRequest)?;
    // The two windows are read and built at once, each on a blocking thread of its own (the
    // store hands each its own reader): the answer waits for the slower one, not the sum.
    let read = |w: TimeWindow| {
        state
            .store
            .blocking(move |s| Ok(topology::build(s.topology(w)?, w)))
    };
    let (old, topo) = tokio::try_join!(read(base), read(new))?;
    let body = state
        .store
        .blocking(move |_| {
            let d = diff::diff(&old, &topo, &t);
            Ok(match format {
                Format::Dot => export::diff_dot::to_dot(&topo, &d).into_bytes(),
                Format::Json => serde_json::to_vec(&d)
                    .map_err(|e| StoreError::Backend(format!("diff JSON: {e}")))?,
            })
        })
        .await?;
    Ok(match format {
        Format::Json => HttpResponse::Ok()
            .content_type("application/json")
            .body(body),
        Format::Dot => HttpResponse::Ok()
            .content_type("text/vnd.graphviz; charset=utf-8")
            .insert_header((
                "Content-Disposition",
                "inline; filename=\"switchyard-diff.dot\"",
            ))
            .body(body),
    })
}

pub async fn diff_json(
    q: web::Query<DiffParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let format = match q.format.as_deref().map(str::trim) {
        None | Some("") | Some("json") => Format::Json,
        Some("dot") => Format::Dot,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "format must be json or dot, not {other:?}"
            )))
        }
    };
    answer(&q, &state, format).await
}

pub async fn diff_dot(
    q: web::Query<DiffParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    answer(&q, &state, Format::Dot).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> DiffParams {
        let get = |k: &str| pairs.iter().find(|p| p.0 == k).map(|p| p.1.to_string());
        DiffParams {
            base_since: get("base_since"),
            base_until: get("base_until"),
            since: get("since"),
            until: get("until"),
            rate_change: get("rate_change"),
            error_change: get("error_change"),
            latency_change: get("latency_change"),
            format: None,
        }
    }

    #[test]
    fn bad_windows_and_thresholds_are_named() {
        let err = windows(&params(&[("base_since", "yesterday")]), 1).unwrap_err();
        assert!(err.starts_with("base_since must be a date"), "{err}");
        let err = thresholds(&params(&[("rate_change", "half")])).unwrap_err();
        assert!(err.starts_with("rate_change must be a number"), "{err}");
        let err = thresholds(&params(&[("latency_change", "-1")])).unwrap_err();
        assert!(
            err.starts_with("latency_change must be a number >= 0"),
            "{err}"
        );
        let t = thresholds(&params(&[("error_change", "0.2")])).unwrap();
        assert_eq!(t.error_change, 0.2);
    }
}
