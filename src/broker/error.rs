//! The broker's error: one enum for the router, its handle and the HTTP API, each variant
//! mapped to an [`ErrorCode`] (and so to an HTTP status).

use crate::error::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("message exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Timeout(String),
    #[error("too many waiting pulls; retry later")]
    TooManyWaiters,
    #[error("too many message bytes in flight; retry later")]
    TooManyBytes,
    #[error("too many listings being read; retry later")]
    TooManyListings,
    #[error("the broker queue is full")]
    Busy,
    #[error("the broker is shutting down")]
    Closed,
    #[error("write failed: {0}")]
    Write(String),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl BrokerError {
    pub fn code(&self) -> ErrorCode {
        match self {
            BrokerError::BadRequest(_) => ErrorCode::BadRequest,
            BrokerError::NotFound(_) => ErrorCode::NotFound,
            BrokerError::Conflict(_) => ErrorCode::Conflict,
            BrokerError::TooLarge { .. } => ErrorCode::PayloadTooLarge,
            BrokerError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            BrokerError::TooManyWaiters
            | BrokerError::TooManyBytes
            | BrokerError::TooManyListings => ErrorCode::TooManyRequests,
            BrokerError::Timeout(_) => ErrorCode::GatewayTimeout,
            // A rolled-back batch is transient: the client should retry it.
            BrokerError::Busy
            | BrokerError::Closed
            | BrokerError::Write(_)
            | BrokerError::Sqlite(_) => ErrorCode::Unavailable,
            BrokerError::Io(_) => ErrorCode::Internal,
        }
    }
}
