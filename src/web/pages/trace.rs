//! `GET /traces/{trace_id}`: one trace as a waterfall with its asynchronous hops.

use super::waterfall::{self, Waterfall};
use crate::model::TraceId;
use crate::web::render::{render, PageError};
use crate::web::state::AppState;
use actix_web::{web, HttpResponse};
use askama::Template;

#[derive(Template)]
#[template(path = "trace.html")]
pub struct TracePage {
    pub trace_id: String,
    pub view: Waterfall,
    /// Other traces with a span linking into this one: (trace id, "service: operation").
    pub linked_from: Vec<(String, String)>,
}

pub async fn page(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let id = TraceId::from_hex(path.trim())
        .map_err(|e| PageError::BadRequest(format!("invalid trace id: {e}")))?;
    // Reading and laying out the trace both run on a blocking thread.
    let view = state
        .store
        .blocking(move |s| {
            let spans = s.trace(id)?;
            let Some(start) = spans.iter().map(|s| s.start_unix_nanos).min() else {
                return Ok(None);
            };
            let linked_from = s
                .linking_spans(id, start, 20)?
                .into_iter()
                .map(|l| (l.trace_id.to_hex(), format!("{}: {}", l.service, l.name)))
                .collect();
            Ok(Some((waterfall::build(spans), linked_from)))
        })
        .await?;
    let Some((view, linked_from)) = view else {
        return Err(PageError::NotFound(format!("no trace {id} is stored")));
    };
    render(TracePage {
        trace_id: id.to_hex(),
        view,
        linked_from,
    })
    .await
}
