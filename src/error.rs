//! One table from error codes to HTTP statuses and gRPC codes.

/// The category of every error the product reports to a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    NotFound,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    TooManyRequests,
    /// The request's body did not arrive in time.
    RequestTimeout,
    Unavailable,
    GatewayTimeout,
    Internal,
}

impl ErrorCode {
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::Unavailable => 503,
            ErrorCode::GatewayTimeout => 504,
            ErrorCode::Internal => 500,
        }
    }

    pub fn grpc_code(self) -> tonic::Code {
        match self {
            ErrorCode::BadRequest => tonic::Code::InvalidArgument,
            ErrorCode::NotFound => tonic::Code::NotFound,
            ErrorCode::Conflict => tonic::Code::AlreadyExists,
            // Sent without RetryInfo, which OTLP exporters take as "do not retry".
            ErrorCode::PayloadTooLarge => tonic::Code::ResourceExhausted,
            ErrorCode::UnsupportedMediaType => tonic::Code::InvalidArgument,
            // OTLP clients retry RESOURCE_EXHAUSTED only with RetryInfo; UNAVAILABLE always.
            ErrorCode::TooManyRequests => tonic::Code::Unavailable,
            ErrorCode::RequestTimeout => tonic::Code::DeadlineExceeded,
            ErrorCode::Unavailable => tonic::Code::Unavailable,
            ErrorCode::GatewayTimeout => tonic::Code::DeadlineExceeded,
            ErrorCode::Internal => tonic::Code::Internal,
        }
    }

    /// Whether the client should retry later; such answers carry `Retry-After`.
    pub fn retryable(self) -> bool {
        matches!(self, ErrorCode::TooManyRequests | ErrorCode::Unavailable)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::GatewayTimeout => "timeout",
            ErrorCode::Internal => "internal",
        }
    }
}

/// Seconds a client is asked to wait after a 429 or 503.
pub const RETRY_AFTER_SECS: u64 = 1;
