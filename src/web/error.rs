//! API errors: one JSON shape, statuses from the shared table.

use crate::error::{ErrorCode, RETRY_AFTER_SECS};
use crate::store::StoreError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A task that should not fail did (a blocking render thread panicked).
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadRequest(_) => ErrorCode::BadRequest,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::Store(e) => e.code(),
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let code = self.code();
        let mut builder = HttpResponse::build(self.status_code());
        if code.retryable() {
            builder.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()));
        }
        if code == ErrorCode::Internal {
            if let Some(suppressed) = crate::lograte::ERRORS.allow("web.api_request") {
                tracing::error!(error = %self, suppressed, "api request failed");
            }
        }
        builder.json(crate::api::ErrorAnswer {
            error: code.as_str().to_string(),
            message: self.to_string(),
        })
    }
}

/// Bad query strings, path segments and JSON bodies get the API's JSON error (400) instead of
/// actix's `text/plain` "Query deserialize error": one setting for the whole `--http` app,
/// broker API included.
pub fn json_extractor_errors(cfg: &mut actix_web::web::ServiceConfig) {
    use actix_web::web::{JsonConfig, PathConfig, QueryConfig};
    let bad = |message: String| -> actix_web::Error { ApiError::BadRequest(message).into() };
    cfg.app_data(QueryConfig::default().error_handler(move |e, _| bad(e.to_string())))
        .app_data(PathConfig::default().error_handler(move |e, _| bad(e.to_string())))
        .app_data(JsonConfig::default().error_handler(move |e, _| bad(e.to_string())));
}
