//! `GET /traces/{trace_id}`: one trace as a waterfall with its asynchronous hops.

use super::waterfall::{self, Waterfall};
use crate::ingest::Ingest;
use crate::model::TraceId;
use crate::web::render::{render, PageError};
use actix_web::{web, HttpResponse};
use askama::Template;

#[derive(Template)]
#[template(path = "trace.html")]
pub struct TracePage {
    pub trace_id: String,
    pub view: Waterfall,
}

pub async fn page(
    path: web::Path<String>,
    ingest: web::Data<Ingest>,
) -> Result<HttpResponse, PageError> {
    let id = TraceId::from_hex(path.trim())
        .map_err(|e| PageError::BadRequest(format!("invalid trace id: {e}")))?;
    // Reading and laying out the trace both run on a blocking thread.
    let view = ingest
        .store
        .blocking(move |s| {
            let spans = s.trace(id)?;
            Ok((!spans.is_empty()).then(|| waterfall::build(spans)))
        })
        .await?;
    let Some(view) = view else {
        return Err(PageError::NotFound(format!("no trace {id} is stored")));
    };
    render(TracePage {
        trace_id: id.to_hex(),
        view,
    })
    .await
}
