//! Templates to responses: the one helper every page goes through, and the HTML error page.
//!
//! Rendering runs on a blocking thread (a trace page can hold thousands of rows). Pages get a
//! Content-Security-Policy that allows only scripts served from `/static/`, so nothing that
//! slips into the markup from span data can run.

use crate::error::ErrorCode;
use crate::store::StoreError;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse, ResponseError};
use askama::Template;

/// Scripts only from our own origin (no inline script); inline styles are allowed for the
/// computed bar positions of the trace view.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; \
object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Renders `page` off the async runtime into a `text/html` response.
pub async fn render<T: Template + Send + 'static>(page: T) -> Result<HttpResponse, PageError> {
    render_status(page, StatusCode::OK).await
}

/// Renders `page` with another status: a whole page that says what was wrong with the
/// request (a bad date in a search form), rather than a bare error page.
pub async fn render_status<T: Template + Send + 'static>(
    page: T,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let html = web::block(move || page.render())
        .await
        .map_err(|e| PageError::Render(e.to_string()))?
        .map_err(|e| PageError::Render(e.to_string()))?;
    Ok(html_response(status, html))
}

fn html_response(status: StatusCode, html: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .body(html)
}

/// Errors of HTML pages: the same statuses as the API, shown as a page.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("page rendering failed: {0}")]
    Render(String),
}

impl From<crate::web::error::ApiError> for PageError {
    fn from(e: crate::web::error::ApiError) -> Self {
        use crate::web::error::ApiError;
        match e {
            ApiError::BadRequest(m) => PageError::BadRequest(m),
            ApiError::NotFound(m) => PageError::NotFound(m),
            ApiError::Store(s) => PageError::Store(s),
            ApiError::Internal(m) => PageError::Render(m),
        }
    }
}

impl PageError {
    fn code(&self) -> ErrorCode {
        match self {
            PageError::BadRequest(_) => ErrorCode::BadRequest,
            PageError::NotFound(_) => ErrorCode::NotFound,
            PageError::Store(e) => e.code(),
            PageError::Render(_) => ErrorCode::Internal,
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    status: u16,
    title: &'static str,
    message: String,
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if self.code() == ErrorCode::Internal {
            if let Some(suppressed) = crate::lograte::ERRORS.allow("web.page_request") {
                tracing::error!(error = %self, suppressed, "page request failed");
            }
        }
        let page = ErrorPage {
            status: status.as_u16(),
            title: status.canonical_reason().unwrap_or("Error"),
            message: self.to_string(),
        };
        // A small fixed page: rendering it inline stays far below the runtime budget.
        let html = page
            .render()
            .unwrap_or_else(|_| "<!doctype html><title>Error</title>".to_string());
        let mut resp = html_response(status, html);
        if self.code().retryable() {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(crate::error::RETRY_AFTER_SECS),
            );
        }
        resp
    }
}
